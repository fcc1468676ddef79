/* Settings: the agent's <seq>.settings envelope, the Windows v1.0 and v3.0 shapes and the
 * Linux keys of Microsoft's Key Vault VM extension, normalised into one immutable config.
 * Lenient where users demonstrably are (design.md, Settings); precise where not: every
 * error names the key path, the value seen and what was expected. */
#ifndef KVVM_SETTINGS_H
#define KVVM_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include "kvvm/err.h"
#include "kvvm/paths.h"

enum kvvm_schema { KVVM_SCHEMA_V1, KVVM_SCHEMA_V3 };  /* flat string list vs objects */
enum kvvm_store_loc { KVVM_LOC_LOCAL_MACHINE, KVVM_LOC_CURRENT_USER, KVVM_LOC_PATH };
enum kvvm_client_id_kind { KVVM_ID_NONE, KVVM_ID_CLIENT_ID, KVVM_ID_RESOURCE_ID };

struct kvvm_acl_entry {
  char *user;   /* NULL when only a group is named */
  char *group;  /* NULL when only a user is named */
};

/* A secret version id as Key Vault issues it: 32 lower-case hex digits (a URL may write
 * them in upper case; settings keep them in lower case). */
#define KVVM_SECRET_VERSION_LEN 32

/* kvvm's fileLayout: split files beside the bundle, in a folder per version behind one
 * stable link (design.md, Store mapping on Linux). */
enum kvvm_file_layout {
  KVVM_LAYOUT_NONE,     /* the bundle (and the .pfx) only */
  KVVM_LAYOUT_CERTBOT,  /* cert.pem, chain.pem, fullchain.pem, privkey.pem */
  KVVM_LAYOUT_CSI       /* <stable>.crt (leaf and chain), <stable>.key */
};

struct kvvm_cert_cfg {
  char *url;          /* normalised: https://<host>/secrets/<name>[/<version>] */
  char *vault_host;   /* lower case, no port */
  char *vault_name;   /* first DNS label of the host */
  char *secret_name;
  char *version;      /* NULL: follow the latest version */
  char *resource;     /* token audience of the vault's cloud, e.g. https://vault.azure.net */
  enum kvvm_store_loc location;
  char *store_name;   /* as given; NULL when MY or absent */
  char *store_dir;    /* files: the resolved absolute folder the files go to; Windows:
                         <LocalMachine|CurrentUser>\<name>, e.g. LocalMachine\MY */
  char *link_name;    /* customSymbolicLinkName, validated; NULL for <vault>.<secret> */
  char **accounts;    /* Windows `accounts`, NULL-terminated (may be empty) */
  struct kvvm_acl_entry *acls;  /* Linux `acls` */
  size_t n_acls;
  bool key_exportable;
  enum kvvm_file_layout layout;  /* kvvm's fileLayout; always NONE on Windows */
  bool link_on_renewal;  /* the top-level linkOnRenewal, copied for the store */
  /* authenticationOverride: this certificate's own identity instead of authenticationSettings'.
   * id_key is the key path of its msiClientId (for messages), NULL without an override;
   * with one, msi_client_id NULL means the system-assigned identity. */
  char *id_key;
  char *msi_client_id;
  enum kvvm_client_id_kind client_id_kind;
};

struct kvvm_config {
  enum kvvm_schema schema;
  unsigned polling_s;          /* >= 60; default 3600 */
  bool require_initial_sync;
  bool link_on_renewal;        /* accepted and logged; links always follow renewal on Linux */
  bool acl_enabled;            /* accepted; acls apply whether or not it is given */
  char *msi_endpoint;          /* NULL: IDENTITY_ENDPOINT or IMDS */
  char *msi_client_id;         /* NULL or as given */
  enum kvvm_client_id_kind client_id_kind;
  unsigned expiry_warning_days; /* kvvm's expiryWarningInDays: flag a certificate this close
                                  to expiry with no newer version; 0 = off; default 30 */
  char *metrics_dir;           /* kvvm's metricsTextfileDir: the folder of kvvm.prom for
                                  node_exporter's textfile collector; NULL: no file */
  bool metrics_if_exists;      /* metrics_dir is this system's default folder: written only
                                  while it exists (node_exporter installed) */
  bool has_protected;          /* protectedSettings were present (decrypted in a later module) */
  char *protected_thumbprint;  /* as given, or NULL */
  struct kvvm_cert_cfg *certs;
  size_t n_certs;
  char **warnings;             /* lenient readings, in words, NULL-terminated (may be empty) */
};

/* Settings text larger than this is refused (the agent's files are a few KiB). Nesting depth
 * is bounded by jansson's parser (2048 levels); only the known levels are ever walked. */
#define KVVM_SETTINGS_MAX_BYTES (1024 * 1024)

/* Store root used for LocalMachine (and CurrentUser under it). The default is
 * /var/lib/waagent/Microsoft.Azure.KeyVault.Store; tests pass their own. */
struct kvvm_settings_opts {
  const char *default_store_root;
  /* The agent's Lib.Dir holding <THUMB>.crt/.prv (the parent of the package folder);
   * NULL: protected settings are noted but not decrypted. */
  const char *certs_dir;
  /* KVVM_STORE_FILES when left zero, so callers that predate Windows read as before. */
  enum kvvm_store_kind store_kind;
  /* Leave out the log lines about the shape seen and lenient readings (kvvmd's pass worker
   * reads again, every pass, the settings kvvmd has logged once). */
  bool quiet;
};

/* Parse the text of a <seq>.settings file. On error returns KVVM_E_SETTINGS, writes the
 * reason (key path, value, expectation) into why, and *out stays NULL. Warnings about
 * lenient readings are logged and kept in config->warnings. */
KVVM_API enum kvvm_err kvvm_settings_parse(const char *text, size_t len,
                                           const struct kvvm_settings_opts *opts,
                                           struct kvvm_config **out, char *why, size_t whylen);
/* Read and parse <config_dir>/<seq>.settings. Besides the errors of kvvm_settings_parse:
 * KVVM_E_NOENT when the file does not exist (why says so; not logged: callers decide),
 * KVVM_E_IO when it cannot be read. */
KVVM_API enum kvvm_err kvvm_settings_load(const char *config_dir, long seq,
                                          const struct kvvm_settings_opts *opts,
                                          struct kvvm_config **out, char *why, size_t whylen);
/* The normalised config as canonical JSON (sorted keys, no secrets): compared to tell
 * whether settings changed, and printed by `kvvm check-settings`. Caller frees. */
KVVM_API char *kvvm_config_to_json(const struct kvvm_config *cfg);
KVVM_API void kvvm_config_free(struct kvvm_config *cfg);
/* fileLayout's value as settings write it: "none", "certbot", "csi" (also in folder names). */
KVVM_API const char *kvvm_file_layout_word(enum kvvm_file_layout l);

#endif
