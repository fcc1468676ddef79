/* Settings: the agent's envelope around publicSettings, the helpers every settings file
 * shares (messages that name the key path, the value and the expectation), and the
 * normalised config's life cycle: free, canonical JSON, load from <seq>.settings. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kvvm/cms.h"
#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "settings/settings_int.h"

/* Room kept in why for the count line and the "more not shown" line. */
#define WHY_RESERVE 96

#define HANDLER_PATH "runtimeSettings[0].handlerSettings"
#define EMPTY_HINT "secretsManagementSettings.observedCertificates is required"

enum kvvm_err settings_fail(struct sctx *c, const char *path, const char *fmt, ...)
{
  char msg[1024];
  size_t n = 0;
  va_list ap;
  if (path)
    n = (size_t)snprintf(msg, sizeof msg, "%s: ", path);
  va_start(ap, fmt);
  vsnprintf(msg + n, sizeof msg - n, fmt, ap);
  va_end(ap);
  KVVM_ERR("settings: %s", msg);
  /* Every problem is reported, not only the first: a user fixes them all in one go. */
  /* After the first, whole lines only, with room left for the count and a "more" line
   * (count_problems): a reader must never get half a problem, nor miss that some were left
   * out. The first goes in however small why is. */
  if (c->why && c->whylen) {
    size_t used = c->n_errors ? strlen(c->why) : 0;
    if (!c->n_errors || used + strlen(msg) + 1 + WHY_RESERVE < c->whylen) {
      snprintf(c->why + used, c->whylen - used, "%s%s", c->n_errors ? "\n" : "", msg);
      c->n_shown++;
    }
  }
  c->n_errors++;
  return KVVM_E_SETTINGS;
}

void settings_warn(struct sctx *c, const char *path, const char *fmt, ...)
{
  char msg[1024];
  size_t n = (size_t)snprintf(msg, sizeof msg, "%s: ", path);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg + n, sizeof msg - n, fmt, ap);
  va_end(ap);
  if (!c->opts || !c->opts->quiet)
    KVVM_WARN("settings: %s", msg);
  struct kvvm_config *cfg = c->cfg;
  cfg->warnings = kvvm_xrealloc(cfg->warnings, (c->n_warn + 2) * sizeof *cfg->warnings);
  cfg->warnings[c->n_warn++] = kvvm_xstrdup(msg);
  cfg->warnings[c->n_warn] = NULL;
}

/* Bytes in the UTF-8 sequence a lead byte starts (input was validated by jansson). */
static size_t utf8_len(unsigned char ch)
{
  if (ch >= 0xf0)
    return 4;
  if (ch >= 0xe0)
    return 3;
  return ch >= 0xc0 ? 2 : 1;
}

/* The value in double quotes, control characters escaped and long values cut, so that
 * a message stays one readable line of valid UTF-8. n must be at least 16. */
const char *settings_quote(const char *s, char *buf, size_t n)
{
  size_t o = 0;
  buf[o++] = '"';
  while (*s) {
    unsigned char ch = (unsigned char)*s;
    size_t len = utf8_len(ch);
    if (o + len + 8 >= n)
      break;
    if (ch < 0x20 || ch == 0x7f)
      o += (size_t)snprintf(buf + o, n - o, "\\x%02x", ch);
    else if (ch == '"' || ch == '\\')
      o += (size_t)snprintf(buf + o, n - o, "\\%c", ch);
    else
      for (size_t k = 0; k < len && s[k]; k++)
        buf[o++] = s[k];
    s += len;
  }
  snprintf(buf + o, n - o, "%s\"", *s ? "..." : "");
  return buf;
}

const char *settings_type(const json_t *v)
{
  switch (v ? json_typeof(v) : JSON_NULL) {
  case JSON_OBJECT:
    return "an object";
  case JSON_ARRAY:
    return "an array";
  case JSON_STRING:
    return "a string";
  case JSON_INTEGER:
  case JSON_REAL:
    return "a number";
  case JSON_TRUE:
  case JSON_FALSE:
    return "a boolean";
  default:
    return "null";
  }
}

const char *settings_key(char *buf, const char *base, const char *key)
{
  snprintf(buf, SETTINGS_PATH_MAX, "%s%s%s", base, *base ? "." : "", key);
  return buf;
}

const char *settings_index(char *buf, const char *base, size_t i)
{
  snprintf(buf, SETTINGS_PATH_MAX, "%s[%zu]", base, i);
  return buf;
}

/* null is read as absent: templates fill unused optional parameters with it. */
json_t *settings_get(const json_t *obj, const char *key)
{
  json_t *v = json_object_get(obj, key);
  return json_is_null(v) ? NULL : v;
}

enum kvvm_err settings_want(struct sctx *c, const char *path, const json_t *v, json_type t,
                            const char *expect)
{
  if (json_typeof(v) == t)
    return KVVM_OK;
  return settings_fail(c, path, "got %s, expected %s", settings_type(v), expect);
}

enum kvvm_err settings_bool(struct sctx *c, const char *path, const json_t *v, bool *out)
{
  char q[SETTINGS_QUOTE_MAX];
  if (!v)
    return KVVM_OK;
  if (json_is_boolean(v)) {
    *out = json_is_true(v);
    return KVVM_OK;
  }
  if (!json_is_string(v))
    return settings_fail(c, path, "got %s, expected true or false", settings_type(v));
  const char *s = json_string_value(v);
  if (strcasecmp(s, "true") == 0 || strcasecmp(s, "false") == 0) {
    *out = strcasecmp(s, "true") == 0;
    return KVVM_OK;
  }
  return settings_fail(c, path, "%s is not a boolean; expected true or false",
                       settings_quote(s, q, sizeof q));
}

static const char *case_match(const char *key, const char *const *known)
{
  for (; *known; known++)
    if (strcasecmp(key, *known) == 0)
      return *known;
  return NULL;
}

static bool listed(const char *key, const char *const *known)
{
  for (; *known; known++)
    if (strcmp(key, *known) == 0)
      return true;
  return false;
}

void settings_warn_unknown(struct sctx *c, const char *path, json_t *obj,
                           const char *const *known)
{
  const char *key;
  json_t *v;
  char q[SETTINGS_QUOTE_MAX];
  json_object_foreach(obj, key, v) {
    if (listed(key, known))
      continue;
    const char *hint = case_match(key, known);
    settings_warn(c, path, "unknown key %s ignored%s%s%s", settings_quote(key, q, sizeof q),
                  hint ? " (keys are case-sensitive: did you mean " : "", hint ? hint : "",
                  hint ? "?)" : "");
  }
}

/* A name that becomes part of a file name: letters, digits, -, _, .; no leading dot. */
bool settings_is_token(const char *s)
{
  size_t n = strlen(s);
  if (n == 0 || n > 255 || s[0] == '.')
    return false;
  return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n;
}

static bool blank(const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (!isspace((unsigned char)s[i]))
      return false;
  return true;
}

static enum kvvm_err json_error(struct sctx *c, const char *what, const json_error_t *e)
{
  if (json_error_code(e) == json_error_duplicate_key)
    return settings_fail(c, what, "a key appears twice in one object (%s, line %d, column %d);"
                         " each key may be given once", e->text, e->line, e->column);
  return settings_fail(c, what, "not valid JSON: %s (line %d, column %d)", e->text, e->line,
                       e->column);
}

static enum kvvm_err load_root(struct sctx *c, const char *text, size_t len, json_t **root)
{
  json_error_t e;
  if (len > KVVM_SETTINGS_MAX_BYTES)
    return settings_fail(c, NULL, "settings are %zu bytes; the limit is %d bytes (1 MiB)", len,
                         KVVM_SETTINGS_MAX_BYTES);
  if (!text || blank(text, len))
    return settings_fail(c, NULL, "settings are empty (the extension was deployed without "
                         "settings); " EMPTY_HINT);
  *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
  if (!*root)
    return json_error(c, "settings", &e);
  return settings_want(c, "settings", *root, JSON_OBJECT,
                       "an object {\"runtimeSettings\": [...]}");
}

/* `\"` back to `"` and `\\` to `\`: one level of the escaping PowerShell adds. */
static char *unescape_quotes(const char *s, size_t n, size_t *out_len)
{
  char *u = kvvm_xmalloc(n + 1);
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\\' && i + 1 < n && (s[i + 1] == '"' || s[i + 1] == '\\'))
      i++;
    u[o++] = s[i];
  }
  u[o] = '\0';
  *out_len = o;
  return u;
}

static json_t *load_escaped(const char *s, size_t n, json_error_t *e)
{
  size_t un;
  char *u = unescape_quotes(s, n, &un);
  json_t *o = json_loadb(u, un, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, e);
  free(u);
  return o;
}

/* publicSettings as a string that holds JSON (the PowerShell mistake): decoded once. */
static enum kvvm_err decode_string(struct sctx *c, const json_t *v, json_t **pub)
{
  const char *path = HANDLER_PATH ".publicSettings";
  const char *s = json_string_value(v), *how = "a JSON string holding JSON";
  size_t n = json_string_length(v);
  json_error_t e;
  if (blank(s, n))
    return settings_fail(c, path, "is an empty string; " EMPTY_HINT);
  json_t *o = json_loadb(s, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
  if (!o && strstr(s, "\\\"")) {
    o = load_escaped(s, n, &e);
    how = "a JSON string holding JSON with backslash-escaped quotes";
  }
  if (!o)
    return json_error(c, path, &e);
  *pub = o;
  if (!json_is_object(o))
    return settings_fail(c, path, "is a string holding %s; expected an object",
                         settings_type(o));
  settings_warn(c, path, "arrived as %s (the PowerShell quoting mistake); decoded it once. "
                "Build the settings as a hashtable or read the file with Get-Content -Raw", how);
  return KVVM_OK;
}

static enum kvvm_err decode_public(struct sctx *c, json_t *v, json_t **pub)
{
  if (!v)
    return settings_fail(c, HANDLER_PATH ".publicSettings", "is null or missing (the "
                         "extension was deployed without settings); " EMPTY_HINT);
  if (json_is_string(v))
    return decode_string(c, v, pub);
  if (json_is_object(v)) {
    *pub = json_incref(v);
    return KVVM_OK;
  }
  return settings_fail(c, HANDLER_PATH ".publicSettings", "got %s, expected an object",
                       settings_type(v));
}

static bool is_thumbprint(const char *s)
{
  return strlen(s) == 40 && strspn(s, "0123456789abcdefABCDEF") == 40;
}

/* kvvm needs no protected settings (Microsoft's extension uses none either), so they are
 * decrypted only to prove they are readable and to name what is ignored; a failure is a
 * warning, never a reason to stop. The plaintext is wiped and never logged. */
static void decrypt_protected(struct sctx *c, const char *b64, size_t len)
{
  const char *thumb = c->cfg->protected_thumbprint;
  char *crt = kvvm_xasprintf("%s/%s.crt", c->opts->certs_dir, thumb);
  char *prv = kvvm_xasprintf("%s/%s.prv", c->opts->certs_dir, thumb);
  unsigned char *plain = NULL;
  size_t plen = 0;
  char why[256] = "";
  if (kvvm_cms_decrypt_base64(b64, len, crt, prv, &plain, &plen, why, sizeof(why)) != KVVM_OK) {
    settings_warn(c, HANDLER_PATH ".protectedSettings", "could not be decrypted with the "
                  "agent's certificate %s (%s); kvvm uses no protected settings, so they are "
                  "ignored", thumb, why[0] ? why : "unreadable");
    goto out;
  }
  json_t *obj = json_loadb((const char *)plain, plen, 0, NULL);
  size_t n = json_is_object(obj) ? json_object_size(obj) : 0;
  if (!json_is_object(obj))
    settings_warn(c, HANDLER_PATH ".protectedSettings", "decrypted, but not a JSON object; "
                  "ignored");
  else if (n)
    settings_warn(c, HANDLER_PATH ".protectedSettings", "decrypted; kvvm reads no protected "
                  "settings, so its %zu key(s) are ignored", n);
  json_decref(obj);
out:
  kvvm_free_secret(plain, plen);
  free(crt);
  free(prv);
}

/* Only whether protected settings exist and which certificate decrypts them is kept here;
 * the value itself is decrypted later and never copied, logged or printed. */
static enum kvvm_err protected_settings(struct sctx *c, const json_t *hs)
{
  const json_t *p = settings_get(hs, "protectedSettings");
  const json_t *t = settings_get(hs, "protectedSettingsCertThumbprint");
  char q[SETTINGS_QUOTE_MAX];
  if (p && !json_is_string(p))
    return settings_fail(c, HANDLER_PATH ".protectedSettings", "got %s, expected a base64 "
                         "string", settings_type(p));
  if (t && !json_is_string(t))
    return settings_fail(c, HANDLER_PATH ".protectedSettingsCertThumbprint",
                         "got %s, expected 40 hex digits", settings_type(t));
  if (t && !is_thumbprint(json_string_value(t)))
    return settings_fail(c, HANDLER_PATH ".protectedSettingsCertThumbprint",
                         "%s is not a SHA-1 thumbprint; expected 40 hex digits",
                         settings_quote(json_string_value(t), q, sizeof q));
  c->cfg->has_protected = p && json_string_length(p) > 0;
  if (c->cfg->has_protected && !t)
    return settings_fail(c, HANDLER_PATH, "protectedSettings are present without "
                         "protectedSettingsCertThumbprint, so they cannot be decrypted");
  c->cfg->protected_thumbprint = t ? kvvm_xstrdup(json_string_value(t)) : NULL;
  if (c->cfg->has_protected && c->opts && c->opts->certs_dir)
    decrypt_protected(c, json_string_value(p), json_string_length(p));
  return KVVM_OK;
}

static const char *const root_keys[] = {"runtimeSettings", NULL};
static const char *const element_keys[] = {"handlerSettings", NULL};
static const char *const handler_keys[] = {"publicSettings", "protectedSettings",
                                           "protectedSettingsCertThumbprint", NULL};

static enum kvvm_err envelope(struct sctx *c, json_t *root, json_t **pub)
{
  json_t *rs = settings_get(root, "runtimeSettings");
  enum kvvm_err rc;
  settings_warn_unknown(c, "settings", root, root_keys);
  if (!rs)
    return settings_fail(c, "runtimeSettings", "is missing; expected the guest agent's "
                         "envelope {\"runtimeSettings\": [{\"handlerSettings\": {...}}]}");
  if ((rc = settings_want(c, "runtimeSettings", rs, JSON_ARRAY, "an array")) != KVVM_OK)
    return rc;
  if (json_array_size(rs) != 1)
    return settings_fail(c, "runtimeSettings", "has %zu elements; expected exactly one",
                         json_array_size(rs));
  json_t *el = json_array_get(rs, 0);
  if ((rc = settings_want(c, "runtimeSettings[0]", el, JSON_OBJECT, "an object")) != KVVM_OK)
    return rc;
  settings_warn_unknown(c, "runtimeSettings[0]", el, element_keys);
  json_t *hs = settings_get(el, "handlerSettings");
  if (!hs)
    return settings_fail(c, HANDLER_PATH, "is missing; expected an object");
  if ((rc = settings_want(c, HANDLER_PATH, hs, JSON_OBJECT, "an object")) != KVVM_OK)
    return rc;
  settings_warn_unknown(c, HANDLER_PATH, hs, handler_keys);
  if ((rc = protected_settings(c, hs)) != KVVM_OK)
    return rc;
  return decode_public(c, settings_get(hs, "publicSettings"), pub);
}

static struct kvvm_config *config_new(void)
{
  struct kvvm_config *cfg = kvvm_xcalloc(1, sizeof *cfg);
  cfg->polling_s = 3600;
  cfg->expiry_warning_days = 30;
  cfg->metrics_if_exists = kvvm_paths_metrics_dir() != NULL;
  cfg->metrics_dir = cfg->metrics_if_exists ? kvvm_xstrdup(kvvm_paths_metrics_dir()) : NULL;
  cfg->warnings = kvvm_xcalloc(1, sizeof *cfg->warnings);
  return cfg;
}

/* Several problems: say how many, then one per line, then how many did not fit. */
static void count_problems(struct sctx *c)
{
  if (c->n_errors < 2 || !c->why || !c->whylen)
    return;
  char *list = kvvm_xstrdup(c->why);
  if (c->n_shown < c->n_errors)
    snprintf(c->why, c->whylen, "%zu problems:\n%s\n(and %zu more not shown here; the log "
             "lists every one)", c->n_errors, list, c->n_errors - c->n_shown);
  else
    snprintf(c->why, c->whylen, "%zu problems:\n%s", c->n_errors, list);
  free(list);
}

enum kvvm_err kvvm_settings_parse(const char *text, size_t len,
                                  const struct kvvm_settings_opts *opts,
                                  struct kvvm_config **out, char *why, size_t whylen)
{
  struct sctx c = {.opts = opts, .why = why, .whylen = whylen, .cfg = config_new()};
  json_t *root = NULL, *pub = NULL;
  enum kvvm_err rc;
  *out = NULL;
  if (why && whylen)
    why[0] = '\0';
  if ((rc = load_root(&c, text, len, &root)) != KVVM_OK)
    goto out;
  if ((rc = envelope(&c, root, &pub)) != KVVM_OK)
    goto out;
  if ((rc = settings_public(&c, pub)) != KVVM_OK) {
    count_problems(&c);
    goto out;
  }
  *out = c.cfg;
  c.cfg = NULL;
out:
  json_decref(pub);
  json_decref(root);
  settings_store_clear(&c.global);
  kvvm_config_free(c.cfg);
  return rc;
}

enum kvvm_err kvvm_settings_load(const char *config_dir, long seq,
                                 const struct kvvm_settings_opts *opts,
                                 struct kvvm_config **out, char *why, size_t whylen)
{
  struct sctx c = {.why = why, .whylen = whylen};
  char *path = kvvm_xasprintf("%s/%ld.settings", config_dir, seq);
  char *text = NULL;
  size_t len = 0;
  struct kvvm_file_info fi;
  enum kvvm_err rc;
  *out = NULL;
  if (kvvm_file_info(path, &fi) == KVVM_OK && fi.size > KVVM_SETTINGS_MAX_BYTES) {
    rc = settings_fail(&c, path, "is %llu bytes; the limit is %d bytes (1 MiB)",
                       (unsigned long long)fi.size, KVVM_SETTINGS_MAX_BYTES);
    goto out;
  }
  rc = kvvm_file_read(path, KVVM_SETTINGS_MAX_BYTES, &text, &len);
  if (rc != KVVM_OK) {
    if (why && whylen)
      snprintf(why, whylen, "%s: %s", path,
               rc == KVVM_E_NOENT ? "does not exist" : "cannot be read");
    goto out;
  }
  rc = kvvm_settings_parse(text, len, opts, out, why, whylen);
out:
  free(text);
  free(path);
  return rc;
}

static void cert_free(struct kvvm_cert_cfg *cert)
{
  free(cert->url);
  free(cert->vault_host);
  free(cert->vault_name);
  free(cert->secret_name);
  free(cert->version);
  free(cert->resource);
  free(cert->store_name);
  free(cert->store_dir);
  free(cert->link_name);
  free(cert->id_key);
  free(cert->msi_client_id);
  kvvm_strv_free(cert->accounts);
  for (size_t i = 0; i < cert->n_acls; i++) {
    free(cert->acls[i].user);
    free(cert->acls[i].group);
  }
  free(cert->acls);
}

void kvvm_config_free(struct kvvm_config *cfg)
{
  if (!cfg)
    return;
  for (size_t i = 0; i < cfg->n_certs; i++)
    cert_free(&cfg->certs[i]);
  free(cfg->certs);
  free(cfg->msi_endpoint);
  free(cfg->msi_client_id);
  free(cfg->metrics_dir);
  free(cfg->protected_thumbprint);
  kvvm_strv_free(cfg->warnings);
  free(cfg);
}

static json_t *jstr(const char *s)
{
  return s ? json_string(s) : json_null();
}

static const char *loc_word(enum kvvm_store_loc loc)
{
  if (loc == KVVM_LOC_CURRENT_USER)
    return "CurrentUser";
  return loc == KVVM_LOC_PATH ? "path" : "LocalMachine";
}

static json_t *acls_json(const struct kvvm_cert_cfg *cert)
{
  json_t *a = json_array();
  for (size_t i = 0; i < cert->n_acls; i++)
    json_array_append_new(a, json_pack("{s:o,s:o}", "user", jstr(cert->acls[i].user),
                                       "group", jstr(cert->acls[i].group)));
  return a;
}

const char *kvvm_file_layout_word(enum kvvm_file_layout l)
{
  if (l == KVVM_LAYOUT_CERTBOT)
    return "certbot";
  return l == KVVM_LAYOUT_CSI ? "csi" : "none";
}

static const char *id_kind_word(enum kvvm_client_id_kind k)
{
  if (k == KVVM_ID_CLIENT_ID)
    return "clientId";
  return k == KVVM_ID_RESOURCE_ID ? "resourceId" : "none";
}

static json_t *cert_json(const struct kvvm_cert_cfg *cert)
{
  json_t *o = json_object(), *acc = json_array();
  for (char **a = cert->accounts; a && *a; a++)
    json_array_append_new(acc, json_string(*a));
  json_object_set_new(o, "url", jstr(cert->url));
  json_object_set_new(o, "vaultHost", jstr(cert->vault_host));
  json_object_set_new(o, "vaultName", jstr(cert->vault_name));
  json_object_set_new(o, "secretName", jstr(cert->secret_name));
  json_object_set_new(o, "version", jstr(cert->version));
  json_object_set_new(o, "resource", jstr(cert->resource));
  json_object_set_new(o, "location", json_string(loc_word(cert->location)));
  json_object_set_new(o, "storeName", jstr(cert->store_name));
  json_object_set_new(o, "storeDir", jstr(cert->store_dir));
  json_object_set_new(o, "linkName", jstr(cert->link_name));
  json_object_set_new(o, "accounts", acc);
  json_object_set_new(o, "acls", acls_json(cert));
  json_object_set_new(o, "keyExportable", json_boolean(cert->key_exportable));
  if (cert->layout != KVVM_LAYOUT_NONE)   /* only when given, as below */
    json_object_set_new(o, "fileLayout", json_string(kvvm_file_layout_word(cert->layout)));
  /* Only when given: settings written before the key existed keep their canonical form, so
   * an upgrade does not read them as changed. */
  if (cert->id_key)
    json_object_set_new(o, "authenticationOverride", json_pack(
        "{s:o,s:s}", "msiClientId", jstr(cert->msi_client_id), "msiClientIdKind",
        id_kind_word(cert->client_id_kind)));
  return o;
}

char *kvvm_config_to_json(const struct kvvm_config *cfg)
{
  if (!cfg)
    return NULL;
  json_t *o = json_object(), *certs = json_array();
  for (size_t i = 0; i < cfg->n_certs; i++)
    json_array_append_new(certs, cert_json(&cfg->certs[i]));
  json_object_set_new(o, "schema", json_string(cfg->schema == KVVM_SCHEMA_V1 ? "v1" : "v3"));
  json_object_set_new(o, "pollingIntervalInS", json_integer(cfg->polling_s));
  json_object_set_new(o, "expiryWarningInDays", json_integer(cfg->expiry_warning_days));
  json_object_set_new(o, "metricsTextfileDir", cfg->metrics_dir ? json_string(cfg->metrics_dir)
                                                                 : json_false());
  json_object_set_new(o, "metricsTextfileDirIfExists", json_boolean(cfg->metrics_if_exists));
  json_object_set_new(o, "requireInitialSync", json_boolean(cfg->require_initial_sync));
  json_object_set_new(o, "linkOnRenewal", json_boolean(cfg->link_on_renewal));
  json_object_set_new(o, "aclEnabled", json_boolean(cfg->acl_enabled));
  json_object_set_new(o, "msiEndpoint", jstr(cfg->msi_endpoint));
  json_object_set_new(o, "msiClientId", jstr(cfg->msi_client_id));
  json_object_set_new(o, "msiClientIdKind", json_string(id_kind_word(cfg->client_id_kind)));
  json_object_set_new(o, "hasProtectedSettings", json_boolean(cfg->has_protected));
  json_object_set_new(o, "protectedSettingsCertThumbprint", jstr(cfg->protected_thumbprint));
  json_object_set_new(o, "certificates", certs);
  char *s = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
  json_decref(o);
  return s;
}
