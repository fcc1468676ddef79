/* Private to the settings module (src/settings*.c): the parse context and the helpers its
 * files share. Nothing here leaves the library (hidden visibility, no kvvm_ prefix). */
#ifndef KVVM_SETTINGS_INT_H
#define KVVM_SETTINGS_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "kvvm/settings.h"

/* Key paths and quoted values in messages are cut at these lengths: a message names the
 * place and shows enough of the value to recognise it, never a whole settings body. */
#define SETTINGS_PATH_MAX 192
#define SETTINGS_QUOTE_MAX 136

#define SETTINGS_EXAMPLE_URL "https://myvault.vault.azure.net/secrets/mycert"
#define SETTINGS_IMDS_URL "http://169.254.169.254/metadata/identity/oauth2/token"

/* Where certificates go, as one object (secretsManagementSettings or a certificate) says. */
struct store_spec {
  bool has_loc;
  enum kvvm_store_loc loc;
  char *dir;   /* normalised absolute folder, for KVVM_LOC_PATH only */
  bool has_name;
  char *name;  /* validated store name; NULL for MY */
};

struct sctx {
  const struct kvvm_settings_opts *opts;
  struct kvvm_config *cfg;
  char *why;
  size_t whylen;
  size_t n_warn;
  struct store_spec global;  /* store keys beside observedCertificates */
  bool linux_keys;           /* a Linux-only key was seen (for the shape that is logged) */
  bool warned_name_ignored;
  size_t n_errors;           /* problems found; each certificate is checked even after one */
  size_t n_shown;            /* of those, the ones that fit in why (whole lines only) */
};

/* Certificates go to the Windows certificate store (opts->store_kind). */
static inline bool settings_windows(const struct sctx *c)
{
  return c->opts && c->opts->store_kind == KVVM_STORE_WINDOWS;
}

/* settings.c: messages, types, key paths. */
enum kvvm_err settings_fail(struct sctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(gnu_printf, 3, 4)));
void settings_warn(struct sctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(gnu_printf, 3, 4)));
const char *settings_quote(const char *s, char *buf, size_t n);
const char *settings_type(const json_t *v);
const char *settings_key(char *buf, const char *base, const char *key);
const char *settings_index(char *buf, const char *base, size_t i);
json_t *settings_get(const json_t *obj, const char *key);
enum kvvm_err settings_want(struct sctx *c, const char *path, const json_t *v, json_type t,
                            const char *expect);
enum kvvm_err settings_bool(struct sctx *c, const char *path, const json_t *v, bool *out);
void settings_warn_unknown(struct sctx *c, const char *path, json_t *obj,
                           const char *const *known);
bool settings_is_token(const char *s);

/* settings_url.c: vault URLs, the identity endpoint and the client id. */
enum kvvm_err settings_url(struct sctx *c, const char *path, const char *raw,
                           struct kvvm_cert_cfg *cert);
enum kvvm_err settings_msi_endpoint(struct sctx *c, const char *path, const char *raw,
                                    char **out);
enum kvvm_err settings_client_id(struct sctx *c, const char *path, const char *raw,
                                 char **out, enum kvvm_client_id_kind *kind);

/* settings_cert.c: one observed certificate and where it is stored. On Windows a Linux-only
 * key is warned about (path names it) and not applied. */
void settings_linux_only(struct sctx *c, const char *path, const char *effect);
enum kvvm_err settings_store_parse(struct sctx *c, const char *base, const json_t *obj,
                                   struct store_spec *spec);
void settings_store_clear(struct store_spec *spec);
enum kvvm_err settings_cert_string(struct sctx *c, const char *path, const json_t *v,
                                   struct kvvm_cert_cfg *cert);
enum kvvm_err settings_cert_object(struct sctx *c, const char *path, json_t *obj,
                                   struct kvvm_cert_cfg *cert);

/* settings_public.c: publicSettings into the config, and a certificate's
 * authenticationOverride (read as authenticationSettings.msiClientId is). */
enum kvvm_err settings_public(struct sctx *c, json_t *pub);
enum kvvm_err settings_auth_override(struct sctx *c, const char *path, json_t *obj,
                                     struct kvvm_cert_cfg *cert);

#endif
