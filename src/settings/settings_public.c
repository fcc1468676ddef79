/* publicSettings into the config: secretsManagementSettings, authenticationSettings (beside
 * it, or misplaced inside it), the shape of observedCertificates, and certificates that
 * would overwrite each other. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "settings/settings_int.h"

#define SMS "secretsManagementSettings"
#define POLL_PATH SMS ".pollingIntervalInS"
#define EXPIRY_PATH SMS ".expiryWarningInDays"
#define METRICS_PATH SMS ".metricsTextfileDir"
#define OBS_PATH SMS ".observedCertificates"
#define POLL_MIN 60
#define POLL_MAX 31536000 /* a year: beyond that a certificate expires between two polls */
#define MIX_HINT "expected all URL strings (v1.0) or all objects with a url (v3.0), not a mix"

static const char *const public_keys[] = {SMS, "authenticationSettings", "loggingSettings", NULL};
static const char *const sms_keys[] = {
    "pollingIntervalInS", "linkOnRenewal", "requireInitialSync", "aclEnabled",
    "expiryWarningInDays", "metricsTextfileDir",
    "certificateStoreName", "certificateStoreLocation", "observedCertificates",
    "authenticationSettings", NULL};
static const char *const auth_keys[] = {"msiEndpoint", "msiClientId", NULL};
static const char *const override_keys[] = {"msiClientId", "msiEndpoint", NULL};

/* kind NULL: the endpoint; otherwise the client id. */
static enum kvvm_err auth_key(struct sctx *c, const char *base, const json_t *auth,
                              const char *key, char **out, enum kvvm_client_id_kind *kind)
{
  char p[SETTINGS_PATH_MAX];
  const json_t *v = settings_get(auth, key);
  if (!v)
    return KVVM_OK;
  settings_key(p, base, key);
  enum kvvm_err rc = settings_want(c, p, v, JSON_STRING, "a string");
  if (rc != KVVM_OK)
    return rc;
  if (kind)
    return settings_client_id(c, p, json_string_value(v), out, kind);
  return settings_msi_endpoint(c, p, json_string_value(v), out);
}

static enum kvvm_err auth_object(struct sctx *c, const char *path, json_t *auth)
{
  struct kvvm_config *cfg = c->cfg;
  enum kvvm_err rc = settings_want(c, path, auth, JSON_OBJECT,
                                   "an object with msiEndpoint and msiClientId");
  if (rc != KVVM_OK)
    return rc;
  settings_warn_unknown(c, path, auth, auth_keys);
  rc = auth_key(c, path, auth, "msiEndpoint", &cfg->msi_endpoint, NULL);
  if (rc == KVVM_OK)
    rc = auth_key(c, path, auth, "msiClientId", &cfg->msi_client_id, &cfg->client_id_kind);
  return rc;
}

/* Microsoft documents only msiClientId inside an override (Linux v4). One endpoint serves
 * every identity of the VM, so an endpoint given here is a misreading, not a need. */
enum kvvm_err settings_auth_override(struct sctx *c, const char *path, json_t *obj,
                                     struct kvvm_cert_cfg *cert)
{
  char p[SETTINGS_PATH_MAX], k[SETTINGS_PATH_MAX];
  json_t *ov = settings_get(obj, "authenticationOverride");
  if (!ov)
    return KVVM_OK;
  settings_key(p, path, "authenticationOverride");
  enum kvvm_err rc = settings_want(c, p, ov, JSON_OBJECT, "an object with msiClientId");
  if (rc != KVVM_OK)
    return rc;
  settings_warn_unknown(c, p, ov, override_keys);
  if (settings_get(ov, "msiEndpoint"))
    settings_warn(c, settings_key(k, p, "msiEndpoint"), "is not read: every certificate asks "
                  "the identity endpoint of authenticationSettings; ignored");
  if (!settings_get(ov, "msiClientId")) {
    settings_warn(c, p, "names no msiClientId; ignored (the certificate uses the identity of "
                  "authenticationSettings)");
    return KVVM_OK;
  }
  rc = auth_key(c, p, ov, "msiClientId", &cert->msi_client_id, &cert->client_id_kind);
  if (rc == KVVM_OK)
    cert->id_key = kvvm_xstrdup(settings_key(k, p, "msiClientId"));
  return rc;
}

static enum kvvm_err authentication(struct sctx *c, const json_t *pub, const json_t *sms)
{
  json_t *outer = settings_get(pub, "authenticationSettings");
  json_t *inner = settings_get(sms, "authenticationSettings");
  const char *inner_path = SMS ".authenticationSettings";
  if (outer && inner)
    return settings_fail(c, inner_path, "is given both here and beside " SMS "; keep only the "
                         "one beside it");
  if (!inner)
    return outer ? auth_object(c, "authenticationSettings", outer) : KVVM_OK;
  settings_warn(c, inner_path, "belongs beside " SMS ", not inside it; read it anyway");
  return auth_object(c, inner_path, inner);
}

static enum kvvm_err seconds_from_string(struct sctx *c, const char *s, long long *out)
{
  char q[SETTINGS_QUOTE_MAX];
  const char *p = s;
  char *end;
  settings_quote(s, q, sizeof q);
  while (isspace((unsigned char)*p))
    p++;
  if (!isdigit((unsigned char)*p) && !(*p == '-' && isdigit((unsigned char)p[1])))
    return settings_fail(c, POLL_PATH, "%s is not a number; expected a whole number of "
                         "seconds such as \"3600\"", q);
  errno = 0;
  *out = strtoll(p, &end, 10);
  if (errno == ERANGE)
    *out = LLONG_MAX;
  while (isspace((unsigned char)*end))
    end++;
  if (*end)
    return settings_fail(c, POLL_PATH, "%s is not a whole number of seconds; expected digits "
                         "only, such as \"3600\"", q);
  return KVVM_OK;
}

static enum kvvm_err polling_value(struct sctx *c, long long s)
{
  if (s <= 0)
    return settings_fail(c, POLL_PATH, "%lld is not a positive number of seconds; expected at "
                         "least %d (the default is 3600)", s, POLL_MIN);
  if (s > POLL_MAX)
    return settings_fail(c, POLL_PATH, "%lld seconds is more than a year (%d); expected e.g. "
                         "3600", s, POLL_MAX);
  if (s < POLL_MIN) {
    settings_warn(c, POLL_PATH, "%lld seconds is below the minimum; raised to %d", s, POLL_MIN);
    s = POLL_MIN;
  }
  c->cfg->polling_s = (unsigned)s;
  return KVVM_OK;
}

static enum kvvm_err polling(struct sctx *c, const json_t *v)
{
  long long s = 0;
  enum kvvm_err rc = KVVM_OK;
  if (!v)
    return KVVM_OK;
  if (json_is_integer(v))
    s = json_integer_value(v);
  else if (json_is_string(v))
    rc = seconds_from_string(c, json_string_value(v), &s);
  else if (json_is_real(v))
    return settings_fail(c, POLL_PATH, "%g is not a whole number of seconds; expected e.g. "
                         "3600", json_real_value(v));
  else
    return settings_fail(c, POLL_PATH, "got %s, expected a number of seconds such as 3600 or "
                         "\"3600\"", settings_type(v));
  return rc == KVVM_OK ? polling_value(c, s) : rc;
}

/* kvvm's own key: how many days before expiry a certificate whose vault has no newer
 * version is flagged in its substatus (Microsoft's extension has no such warning). */
static enum kvvm_err expiry_days(struct sctx *c, const json_t *v)
{
  long long d = -1;
  const char *t = json_string_value(v);
  if (!v)
    return KVVM_OK;
  if (json_is_integer(v))
    d = json_integer_value(v);
  else if (t && *t && strlen(t) <= 3 && strspn(t, "0123456789") == strlen(t))
    d = atoll(t);
  else
    return settings_fail(c, EXPIRY_PATH, "got %s, expected a whole number of days from 0 to "
                         "365 such as 30", t ? "a string that is not a number" :
                         settings_type(v));
  if (d < 0 || d > 365)
    return settings_fail(c, EXPIRY_PATH, "%lld is outside 0-365 days (0 turns the warning "
                         "off)", d);
  c->cfg->expiry_warning_days = (unsigned)d;
  return KVVM_OK;
}

/* kvvm's own key: where kvvm.prom goes. Absent or true: the system's default folder, used
 * only while it exists; false or "": no file; else an absolute folder, created if missing. */
static enum kvvm_err metrics_dir(struct sctx *c, const json_t *v)
{
  char q[SETTINGS_QUOTE_MAX];
  struct kvvm_config *cfg = c->cfg;
  const char *s = json_string_value(v);
  if (!v || json_is_true(v)) {
    if (!cfg->metrics_dir && v)
      return settings_fail(c, METRICS_PATH, "is true, but this system has no default folder "
                           "for node_exporter; name a folder, e.g. C:\\Program Files\\"
                           "windows_exporter\\textfile_inputs");
    return KVVM_OK;
  }
  free(cfg->metrics_dir);
  cfg->metrics_dir = NULL;
  cfg->metrics_if_exists = false;
  if (json_is_false(v) || (s && !*s))
    return KVVM_OK;
  if (!s)
    return settings_fail(c, METRICS_PATH, "got %s, expected the absolute path of a folder, or "
                         "false for no metrics file", settings_type(v));
  settings_quote(s, q, sizeof q);
  if (!kvvm_path_is_absolute(s) || strpbrk(s, "\n\r"))
    return settings_fail(c, METRICS_PATH, "%s is not an absolute folder path; expected one "
                         "such as \"/var/lib/prometheus/node-exporter\", or false for no "
                         "metrics file", q);
  cfg->metrics_dir = kvvm_xstrdup(s);
  return KVVM_OK;
}

static enum kvvm_err flags(struct sctx *c, const json_t *sms)
{
  struct kvvm_config *cfg = c->cfg;
  enum kvvm_err rc = settings_bool(c, SMS ".requireInitialSync",
                                   settings_get(sms, "requireInitialSync"),
                                   &cfg->require_initial_sync);
  if (rc == KVVM_OK)
    rc = settings_bool(c, SMS ".linkOnRenewal", settings_get(sms, "linkOnRenewal"),
                       &cfg->link_on_renewal);
  if (rc == KVVM_OK)
    rc = settings_bool(c, SMS ".aclEnabled", settings_get(sms, "aclEnabled"),
                       &cfg->acl_enabled);
  c->linux_keys = c->linux_keys || settings_get(sms, "aclEnabled");
  if (rc == KVVM_OK && settings_windows(c) && settings_get(sms, "aclEnabled"))
    settings_linux_only(c, SMS ".aclEnabled", "no POSIX ACL is set; use accounts on Windows");
  return rc;
}

/* LNX-V1 documents a bare string; WIN-2024 documents "[https://...\"]", a string that was
 * meant to be an array: a bracket inside means the array was lost, so it is refused. */
static enum kvvm_err single_string(struct sctx *c, const json_t *v)
{
  char q[SETTINGS_QUOTE_MAX];
  const char *s = json_string_value(v);
  while (isspace((unsigned char)*s))
    s++;
  if (*s == '[')
    return settings_fail(c, OBS_PATH, "%s is a string, not an array; write a JSON array of "
                         "URLs such as [\"%s\"]", settings_quote(json_string_value(v), q,
                         sizeof q), SETTINGS_EXAMPLE_URL);
  settings_warn(c, OBS_PATH, "is a single string, not an array; read as a list of one URL");
  c->cfg->schema = KVVM_SCHEMA_V1;
  c->cfg->certs = kvvm_xcalloc(1, sizeof *c->cfg->certs);
  c->cfg->n_certs = 1;
  c->cfg->certs[0].link_on_renewal = c->cfg->link_on_renewal;
  return settings_cert_string(c, OBS_PATH, v, &c->cfg->certs[0]);
}

static enum kvvm_err shape(struct sctx *c, const json_t *arr)
{
  char p[SETTINGS_PATH_MAX];
  const json_t *first = json_array_get(arr, 0);
  json_type t = json_typeof(first);
  if (t != JSON_STRING && t != JSON_OBJECT)
    return settings_fail(c, settings_index(p, OBS_PATH, 0), "got %s, expected a secret URL "
                         "string (v1.0) or an object with a url (v3.0)", settings_type(first));
  for (size_t i = 1; i < json_array_size(arr); i++) {
    const json_t *e = json_array_get(arr, i);
    if (json_typeof(e) == t)
      continue;
    settings_index(p, OBS_PATH, i);
    if (json_is_string(e) || json_is_object(e))
      return settings_fail(c, p, "got %s, but element 0 is %s; " MIX_HINT, settings_type(e),
                           settings_type(first));
    return settings_fail(c, p, "got %s, expected %s like element 0", settings_type(e),
                         settings_type(first));
  }
  c->cfg->schema = t == JSON_STRING ? KVVM_SCHEMA_V1 : KVVM_SCHEMA_V3;
  return KVVM_OK;
}

static enum kvvm_err certificates(struct sctx *c, const json_t *sms)
{
  char p[SETTINGS_PATH_MAX];
  struct kvvm_config *cfg = c->cfg;
  const json_t *oc = settings_get(sms, "observedCertificates");
  if (!oc)
    return settings_fail(c, OBS_PATH, "is missing; expected a list of secret URLs such as "
                         "[\"%s\"]", SETTINGS_EXAMPLE_URL);
  if (json_is_string(oc))
    return single_string(c, oc);
  if (!json_is_array(oc))
    return settings_fail(c, OBS_PATH, "got %s, expected an array of secret URLs (v1.0) or of "
                         "objects with a url (v3.0)", settings_type(oc));
  if (json_array_size(oc) == 0)
    return settings_fail(c, OBS_PATH, "is empty; expected at least one secret URL such as "
                         "[\"%s\"]", SETTINGS_EXAMPLE_URL);
  enum kvvm_err rc = shape(c, oc);
  if (rc != KVVM_OK)
    return rc;
  cfg->n_certs = json_array_size(oc);
  cfg->certs = kvvm_xcalloc(cfg->n_certs, sizeof *cfg->certs);
  for (size_t i = 0; i < cfg->n_certs; i++) {
    json_t *e = json_array_get(oc, i);
    settings_index(p, OBS_PATH, i);
    enum kvvm_err r = json_is_string(e) ? settings_cert_string(c, p, e, &cfg->certs[i]) :
                                          settings_cert_object(c, p, e, &cfg->certs[i]);
    cfg->certs[i].link_on_renewal = cfg->link_on_renewal;
    if (rc == KVVM_OK)
      rc = r;
  }
  return rc;
}

struct dup_key {
  char *key;
  size_t i;
};

static int dup_cmp(const void *a, const void *b)
{
  const struct dup_key *x = a, *y = b;
  int r = strcmp(x->key, y->key);
  return r ? r : (x->i > y->i) - (x->i < y->i);
}

static const char *stable_name(const struct kvvm_cert_cfg *cert, char *buf, size_t n)
{
  if (cert->link_name)
    return cert->link_name;
  snprintf(buf, n, "%s.%s", cert->vault_name, cert->secret_name);
  return buf;
}

/* Store folder and stable file name; names compare without case, as Key Vault's do. In a
 * Windows store there is no file name, only the certificate: the key is the store (its
 * names are case-insensitive too) and the URL. */
static char *dup_key_of(const struct sctx *c, const struct kvvm_cert_cfg *cert)
{
  char name[512];
  bool win = settings_windows(c);
  char *k = win ? kvvm_xasprintf("%s %s", cert->store_dir, cert->url) :
                  kvvm_xasprintf("%s/%s", cert->store_dir, stable_name(cert, name, sizeof name));
  for (char *p = k + (win ? 0 : strlen(cert->store_dir)); *p; p++)
    *p = (char)tolower((unsigned char)*p);
  return k;
}

static enum kvvm_err dup_fail(struct sctx *c, size_t a, size_t b)
{
  char p[SETTINGS_PATH_MAX], name[512];
  const struct kvvm_cert_cfg *x = &c->cfg->certs[a], *y = &c->cfg->certs[b];
  settings_index(p, OBS_PATH, b);
  if (strcasecmp(x->url, y->url) == 0)
    return settings_fail(c, p, "%s is already observed by observedCertificates[%zu] into the "
                         "same store %s; list it once", y->url, a, y->store_dir);
  return settings_fail(c, p, "%s would write the same file %s/%s as observedCertificates[%zu] "
                       "(%s); give one of them another customSymbolicLinkName or store",
                       y->url, y->store_dir, stable_name(y, name, sizeof name), a, x->url);
}

static enum kvvm_err duplicates(struct sctx *c)
{
  size_t n = c->cfg->n_certs, first = n, later = n;
  struct dup_key *keys = kvvm_xcalloc(n, sizeof *keys);
  enum kvvm_err rc = KVVM_OK;
  for (size_t i = 0; i < n; i++) {
    keys[i].key = dup_key_of(c, &c->cfg->certs[i]);
    keys[i].i = i;
  }
  qsort(keys, n, sizeof *keys, dup_cmp);
  for (size_t k = 1; k < n; k++)
    if (strcmp(keys[k - 1].key, keys[k].key) == 0 && keys[k].i < later) {
      first = keys[k - 1].i;
      later = keys[k].i;
    }
  if (later < n)
    rc = dup_fail(c, first, later);
  for (size_t i = 0; i < n; i++)
    free(keys[i].key);
  free(keys);
  return rc;
}

static void log_shape(const struct sctx *c)
{
  const struct kvvm_config *cfg = c->cfg;
  const char *shape;
  if (cfg->schema == KVVM_SCHEMA_V1)
    shape = c->linux_keys ? "Linux v1/v2 shape (observedCertificates as URL strings, store "
                            "folder)" : "Windows v1.0 shape (observedCertificates as URL strings)";
  else
    shape = c->linux_keys ? "Linux v3 shape (observedCertificates as objects with Linux keys)" :
                            "Windows v3.0 shape (observedCertificates as objects)";
  if (!c->opts || !c->opts->quiet)
    KVVM_INFO("settings: %s, %zu certificate(s), polling every %u s", shape, cfg->n_certs,
              cfg->polling_s);
}

enum kvvm_err settings_public(struct sctx *c, json_t *pub)
{
  json_t *sms = settings_get(pub, SMS);
  enum kvvm_err rc;
  settings_warn_unknown(c, "publicSettings", pub, public_keys);
  if (settings_get(pub, "loggingSettings"))
    settings_warn(c, "loggingSettings", "is not supported (kvvm logs to the handler's log "
                  "folder); ignored");
  if (!sms)
    return settings_fail(c, SMS, "is missing; expected an object whose observedCertificates "
                         "lists the secret URLs to install");
  if ((rc = settings_want(c, SMS, sms, JSON_OBJECT, "an object")) != KVVM_OK)
    return rc;
  settings_warn_unknown(c, SMS, sms, sms_keys);
  rc = authentication(c, pub, sms);
  if (rc == KVVM_OK)
    rc = polling(c, settings_get(sms, "pollingIntervalInS"));
  if (rc == KVVM_OK)
    rc = expiry_days(c, settings_get(sms, "expiryWarningInDays"));
  if (rc == KVVM_OK)
    rc = metrics_dir(c, settings_get(sms, "metricsTextfileDir"));
  if (rc == KVVM_OK)
    rc = flags(c, sms);
  if (rc == KVVM_OK)
    rc = settings_store_parse(c, SMS, sms, &c->global);
  if (rc == KVVM_OK)
    rc = certificates(c, sms);
  if (rc == KVVM_OK)
    rc = duplicates(c);
  if (rc == KVVM_OK)
    log_shape(c);
  return rc;
}
