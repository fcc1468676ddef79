/* What Key Vault sends and what we send it, checked without a network: vault hosts and
 * their clouds, secret URLs, the 401 challenge and the SecretBundle (keyvault.md §3). */
#include <ctype.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kvvm/cloud.h"
#include "kvvm/kv.h"
#include "kvvm/mem.h"
#include "kvvm/settings.h"

#define NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
#define HOST_CHARS "abcdefghijklmnopqrstuvwxyz0123456789.-"

static bool ends_with_ci(const char *s, const char *suffix)
{
  size_t n = strlen(s), m = strlen(suffix);
  return n > m && strcasecmp(s + n - m, suffix) == 0;
}

const char *kvvm_kv_resource_for_host(const char *host, char *why, size_t whylen)
{
  if (kvvm_cloud_is_hsm(host)) {
    snprintf(why, whylen, "%.100s is a managed HSM, which holds keys, not secrets or "
             "certificates", host);
    return NULL;
  }
  size_t label = 0;
  const char *resource = kvvm_cloud_resource(host, &label);
  if (resource && label > 0 && strspn(host, HOST_CHARS) == strlen(host))
    return resource;
  snprintf(why, whylen, "%.100s is not a Key Vault host (*%s)", host, KVVM_CLOUD_SUFFIXES);
  return NULL;
}

/* What Key Vault issues: 32 lower-case hex digits. Anything else would reach file names
 * (a version "pfx" would make the versioned PEM and the exported .pfx one file). */
static bool version_ok(const char *s)
{
  return strlen(s) == KVVM_SECRET_VERSION_LEN && strspn(s, "0123456789abcdef") == KVVM_SECRET_VERSION_LEN;
}

static enum kvvm_err bad_url(const char *url, const char *reason, char *why, size_t whylen)
{
  snprintf(why, whylen, "secret URL %.200s %s", url, reason);
  return KVVM_E_SETTINGS;
}

/* path is what follows the host: /secrets/<name>[/<version>]. */
static enum kvvm_err split_path(const char *url, const char *path, char **name, char **version,
                                char *why, size_t whylen)
{
  if (strncmp(path, "/secrets/", 9) != 0)
    return bad_url(url, "is not https://<vault>/secrets/<name>[/<version>]", why, whylen);
  path += 9;
  size_t n = strcspn(path, "/");
  const char *v = path[n] ? path + n + 1 : NULL;
  if (n < 1 || n > 127 || strspn(path, NAME_CHARS) < n)
    return bad_url(url, "names no valid secret (1-127 letters, digits and hyphens)", why,
                   whylen);
  if (v && !version_ok(v))
    return bad_url(url, "has an invalid version segment", why, whylen);
  *name = kvvm_xasprintf("%.*s", (int)n, path);
  *version = kvvm_xstrdup(v);
  return KVVM_OK;
}

enum kvvm_err kvvm_kv_check_url(const char *url, char **host, char **name, char **version,
                                char *why, size_t whylen)
{
  char reason[200], refused[220];
  *host = *name = *version = NULL;
  if (!url || strncmp(url, "https://", 8) != 0)
    return bad_url(url ? url : "(none)", "does not start with https://", why, whylen);
  if (strpbrk(url, "?#"))
    return bad_url(url, "carries a query or fragment; kvvm adds api-version itself", why,
                   whylen);
  size_t n = strcspn(url + 8, "/");
  char *h = kvvm_xasprintf("%.*s", (int)n, url + 8);
  enum kvvm_err rc = KVVM_E_SETTINGS;
  if (!kvvm_kv_resource_for_host(h, reason, sizeof reason)) {
    snprintf(refused, sizeof refused, "is refused: %s", reason);
    bad_url(url, refused, why, whylen);
  } else {
    rc = split_path(url, url + 8 + n, name, version, why, whylen);
  }
  if (rc == KVVM_OK)
    *host = h;
  else
    free(h);
  return rc;
}

/* The next auth-param of a challenge: key and value (quotes dropped) as new strings. */
static const char *next_param(const char *p, char **key, char **value)
{
  p += strspn(p, " \t,");
  size_t k = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-");
  if (!k || p[k] != '=')
    return NULL;
  const char *v = p + k + 1;
  size_t n;
  if (*v == '"') {
    const char *end = strchr(++v, '"');
    if (!end)
      return NULL;
    n = (size_t)(end - v);
  } else {
    n = strcspn(v, ", \t");
  }
  *key = kvvm_xasprintf("%.*s", (int)k, p);
  *value = kvvm_xasprintf("%.*s", (int)n, v);
  return v + n + (v[n] == '"');
}

/* resource= or scope= (scope wins, as in the SDKs; its "/.default" is dropped). */
static char *challenge_resource(const char *h)
{
  char *resource = NULL, *scope = NULL, *k = NULL, *v = NULL;
  const char *p = h + 6;
  while (p && *p) {
    p = next_param(p, &k, &v);
    if (p && strcasecmp(k, "resource") == 0 && !resource)
      resource = v, v = NULL;
    else if (p && strcasecmp(k, "scope") == 0 && !scope)
      scope = v, v = NULL;
    free(k), k = NULL;
    free(v), v = NULL;
  }
  if (scope && ends_with_ci(scope, "/.default"))
    scope[strlen(scope) - 9] = '\0';
  if (scope) {
    free(resource);
    return scope;
  }
  return resource;
}

enum kvvm_err kvvm_kv_check_challenge(const char *h, const char *host, char **resource,
                                      char *why, size_t whylen)
{
  *resource = NULL;
  if (!h || strncasecmp(h, "Bearer", 6) != 0 || (h[6] && h[6] != ' ' && h[6] != '\t')) {
    snprintf(why, whylen, "Key Vault's 401 carries no Bearer challenge");
    return KVVM_E_AUTH;
  }
  char *res = challenge_resource(h), *dot = NULL;
  const char *rhost = res && strncasecmp(res, "https://", 8) == 0 ? res + 8 : NULL;
  size_t n = rhost ? strcspn(rhost, "/:") : 0;
  if (n)
    dot = kvvm_xasprintf(".%.*s", (int)n, rhost);
  /* The SDKs' rule: a token is only ever sent for a resource whose domain the vault is in. */
  if (!dot || !ends_with_ci(host, dot)) {
    snprintf(why, whylen, "Key Vault's challenge names resource %.100s, which is not the "
             "domain of %.100s: refused", res ? res : "(none)", host);
    free(res);
    free(dot);
    return KVVM_E_AUTH;
  }
  free(dot);
  *resource = res;
  return KVVM_OK;
}

void kvvm_kv_secret_clear(struct kvvm_secret *s)
{
  if (!s)
    return;
  kvvm_free_secret(s->value, s->value_len);
  free(s->content_type);
  free(s->id);
  free(s->version);
  free(s->kid);
  memset(s, 0, sizeof *s);
}

static char *json_dup(json_t *o, const char *key)
{
  return kvvm_xstrdup(json_string_value(json_object_get(o, key)));
}

static int64_t json_time(json_t *o, const char *key)
{
  json_t *v = json_object_get(o, key);
  return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static void read_attributes(json_t *a, struct kvvm_secret *s)
{
  json_t *en = json_object_get(a, "enabled");
  s->enabled = !json_is_false(en);  /* absent: Key Vault's default, enabled */
  s->nbf = json_time(a, "nbf");
  s->exp = json_time(a, "exp");
  s->created = json_time(a, "created");
  s->updated = json_time(a, "updated");
}

/* The version is the last segment of id = https://<vault>/secrets/<name>/<version>. */
static bool read_id(json_t *j, struct kvvm_secret *s)
{
  s->id = json_dup(j, "id");
  if (!s->id || strncmp(s->id, "https://", 8) != 0 || !strstr(s->id, "/secrets/"))
    return false;
  const char *slash = strrchr(s->id, '/');
  if (!version_ok(slash + 1) || slash - s->id < 9 || strncmp(slash - 8, "/secrets", 8) == 0)
    return false;
  s->version = kvvm_xstrdup(slash + 1);
  return true;
}

/* jansson owns the value's buffer and frees it unwiped: copy it, then clear it. */
static void take_value(json_t *v, struct kvvm_secret *s)
{
  const char *text = json_string_value(v);
  if (!text)
    return;
  s->value_len = json_string_length(v);
  s->value = kvvm_xmalloc(s->value_len + 1);
  memcpy(s->value, text, s->value_len + 1);
  kvvm_wipe((void *)(uintptr_t)text, s->value_len);
}

/* value stays NULL when absent (a disabled version may come without one); the caller
 * decides whether that is a fault. */
enum kvvm_err kvvm_kv_parse_bundle(const char *body, size_t len, struct kvvm_secret *s,
                                   char *why, size_t whylen)
{
  json_t *j = json_loadb(body, len, 0, NULL);
  const char *reason = NULL;
  memset(s, 0, sizeof *s);
  take_value(json_object_get(j, "value"), s);
  if (!json_is_object(j))
    reason = "is not a JSON object";
  else if (!read_id(j, s))
    reason = "has no id of the form https://<vault>/secrets/<name>/<version>";
  if (!reason) {
    s->content_type = json_dup(j, "contentType");
    s->kid = json_dup(j, "kid");
    s->managed = json_is_true(json_object_get(j, "managed"));
    read_attributes(json_object_get(j, "attributes"), s);
  } else {
    kvvm_kv_secret_clear(s);
    snprintf(why, whylen, "the answer %s", reason);
  }
  json_decref(j);
  return reason ? KVVM_E_NET : KVVM_OK;
}

#define CUT_NOTE " ... (cut)"

/* The rest of s holds something besides blanks. */
static bool more_words(const char *s)
{
  return s && s[strspn(s, " \t\r\n")] != '\0';
}

/* The quoted form of s in out (n bytes), at most max characters before the cut note. */
static void quote(const char *s, const char *token, char *out, size_t n, size_t max)
{
  size_t i = 0;
  bool cut = false;
  if (s && token && *token && strstr(s, token))
    s = "(withheld: it quotes the token)";  /* whatever the service echoes */
  if (max + sizeof CUT_NOTE > n)
    max = n - sizeof CUT_NOTE;
  for (; s && *s && !cut; s++) {
    char c = strchr("\r\n\t", *s) ? ' ' : (*s >= 0x20 && *s < 0x7f) ? *s : '?';
    if (c == ' ' && (i == 0 || out[i - 1] == ' '))
      continue;
    cut = i == max && more_words(s);
    if (i < max)
      out[i++] = c;
  }
  size_t whole = i;
  while (cut && whole > 0 && out[whole - 1] != ' ')  /* back to the end of the last word */
    whole--;
  i = whole > 0 ? whole : i;   /* one word longer than max is cut inside */
  while (i > 0 && out[i - 1] == ' ')
    i--;
  out[i] = '\0';
  if (cut)
    strcat(out, CUT_NOTE);
}

void kvvm_kv_parse_error(const char *body, size_t len, const char *token,
                         struct kvvm_kv_error *e)
{
  json_t *doc = json_loadb(body ? body : "", body ? len : 0, 0, NULL);
  json_t *err = json_object_get(doc, "error");
  const char *inner = json_string_value(json_object_get(json_object_get(err, "innererror"),
                                                        "code"));
  quote(json_string_value(json_object_get(err, "code")), token, e->code, sizeof e->code,
        sizeof e->code - 1);
  quote(inner, token, e->inner, sizeof e->inner, sizeof e->inner - 1);
  quote(json_string_value(json_object_get(err, "message")), token, e->message,
        sizeof e->message, KVVM_KV_QUOTE_MAX);
  json_decref(doc);
}
