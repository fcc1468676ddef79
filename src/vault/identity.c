/* Managed identity tokens: choosing the source, the request, the retries and the cache.
 * What each answer means comes from keyvault.md §4; the Arc file checks live in
 * identity_arc_linux.c. Tokens never reach a log line: only sources, statuses and the
 * service's error words do. */
#include <ctype.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kvvm/clock.h"
#include "kvvm/http.h"
#include "kvvm/identity.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "vault/identity_int.h"

#define IMDS_URL "http://169.254.169.254/metadata/identity/oauth2/token"
#define IMDS_API "2018-02-01"
#define ARC_API "2020-06-01"
/* IMDS answers from this host in milliseconds; a slow connect means it is not there. */
#define CONNECT_TIMEOUT_MS 5000
#define TIMEOUT_MS 20000
/* 404, 429, 5xx and network failures: 5 tries, ~15 s of backoff in all (the IMDS guidance,
 * how-to-use-vm-token.md). 410 (host agent upgrading) keeps trying for at least 70 s. */
#define MAX_TRIES 5
#define GONE_MIN_MS 70000
#define BACKOFF_BASE_MS 1000
#define BACKOFF_CAP_MS 16000
#define RETRY_AFTER_CAP_S 60
#define QUOTE_MAX 200

struct source {
  char *endpoint;           /* http://host[:port]/path, no query */
  const char *api_version;
  bool loopback;            /* may answer an Arc `Basic realm=` challenge */
  char name[300];           /* for messages */
};

struct cached {
  struct cached *next;
  char *key;                /* endpoint|client id|resource */
  char *token;
  /* When the token stops being handed out, on the monotonic clock: its lifetime is measured
   * once, when it arrives, so a wall clock stepped later (NTP after boot, a VM resumed)
   * neither keeps an expired token nor drops a fresh one. */
  int64_t use_until_ms;
};

static struct cached *cache;

/* The identity a request asks for, and the settings key that chose it (for advice). */
struct ident {
  const char *client_id;    /* NULL: the system-assigned identity */
  enum kvvm_client_id_kind kind;
  const char *key;
};

static struct ident ident_of(const struct kvvm_config *cfg, const struct kvvm_cert_cfg *cert)
{
  if (cert && cert->id_key)
    return (struct ident){cert->msi_client_id, cert->client_id_kind, cert->id_key};
  return (struct ident){cfg->msi_client_id, cfg->client_id_kind,
                        "authenticationSettings.msiClientId"};
}

enum verdict { V_DONE, V_RETRY, V_FAIL };

static bool is_loopback_host(const char *url)
{
  const char *h = url + strlen("http://");
  size_t n = h[0] == '[' ? strcspn(h, "]") + 1 : strcspn(h, ":/?#");
  return (n == 9 && strncasecmp(h, "localhost", 9) == 0) || (n == 5 && !strncmp(h, "[::1]", 5)) ||
         (n >= 7 && strncmp(h, "127.", 4) == 0 && strspn(h, "0123456789.") == n);
}

static enum kvvm_err arc_source(const struct ident *id, const char *env, struct source *src,
                                char *why, size_t whylen)
{
  if (strncasecmp(env, "http://", 7) != 0 || !is_loopback_host(env)) {
    snprintf(why, whylen, "IDENTITY_ENDPOINT %.200s is not an http:// endpoint on this "
             "machine; the Azure Arc agent listens on http://localhost:40342", env);
    return KVVM_E_SETTINGS;
  }
  if (id->client_id) {
    snprintf(why, whylen, "Azure Arc offers only the machine's system-assigned identity; "
             "remove %s", id->key);
    return KVVM_E_SETTINGS;
  }
  src->endpoint = kvvm_xasprintf("%.*s", (int)strcspn(env, "?#"), env);
  src->api_version = ARC_API;
  src->loopback = true;
  snprintf(src->name, sizeof src->name, "the Azure Arc agent (IDENTITY_ENDPOINT %s)",
           src->endpoint);
  return KVVM_OK;
}

static enum kvvm_err pick_source(const struct kvvm_config *cfg, const struct ident *id,
                                 struct source *src, char *why, size_t whylen)
{
  const char *env = getenv("IDENTITY_ENDPOINT");
  if (!cfg->msi_endpoint && env && *env)
    return arc_source(id, env, src, why, whylen);
  /* settings accepted msiEndpoint only as IMDS or loopback, in the .../oauth2/token form. */
  src->endpoint = kvvm_xstrdup(cfg->msi_endpoint ? cfg->msi_endpoint : IMDS_URL);
  src->api_version = IMDS_API;
  src->loopback = is_loopback_host(src->endpoint);
  snprintf(src->name, sizeof src->name, "%s (%s)", src->loopback ?
           "the identity endpoint msiEndpoint" : "the instance metadata service", src->endpoint);
  return KVVM_OK;
}

/* Percent-encoding of a query value: resources are URLs, resource ids contain slashes. */
static char *url_encode(const char *s)
{
  static const char hex[] = "0123456789ABCDEF";
  char *out = kvvm_xmalloc(3 * strlen(s) + 1), *o = out;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (isalnum(c) || strchr("-._~", c)) {
      *o++ = (char)c;
    } else {
      *o++ = '%';
      *o++ = hex[c >> 4];
      *o++ = hex[c & 15];
    }
  }
  *o = '\0';
  return out;
}

static char *token_url(const struct source *src, const struct ident *who, const char *resource)
{
  char *res = url_encode(resource), *id = NULL;
  const char *param = who->kind == KVVM_ID_RESOURCE_ID ? "&msi_res_id=" : "&client_id=";
  if (who->client_id)
    id = url_encode(who->client_id);
  char *url = kvvm_xasprintf("%s?api-version=%s&resource=%s%s%s", src->endpoint,
                             src->api_version, res, id ? param : "", id ? id : "");
  free(res);
  free(id);
  return url;
}

void kvvm_identity_describe(const struct kvvm_config *cfg, const struct kvvm_cert_cfg *cert,
                            char *buf, size_t n)
{
  struct ident id = ident_of(cfg, cert);
  if (!id.client_id)
    snprintf(buf, n, "the system-assigned identity");
  else if (id.kind == KVVM_ID_RESOURCE_ID)
    snprintf(buf, n, "the user-assigned identity %s", id.client_id);
  else
    snprintf(buf, n, "the user-assigned identity with client id %s", id.client_id);
}

/* A service's words, safe to quote: printable ASCII, cut short. */
static void quote(const char *s, char *out, size_t n)
{
  size_t i = 0;
  for (; s && *s && i + 1 < n && i < QUOTE_MAX; s++)
    out[i++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
  out[i] = '\0';
}

static void wipe_json_string(json_t *s)
{
  const char *v = json_string_value(s);
  /* jansson owns the buffer and frees it unwiped: clear it first. */
  if (v)
    kvvm_wipe((void *)(uintptr_t)v, json_string_length(s));
}

/* A number of seconds given as a JSON number or a string of digits. */
static bool json_seconds(const json_t *v, long long *out)
{
  const char *s = json_string_value(v);
  if (json_is_integer(v))
    *out = json_integer_value(v);
  else if (json_is_real(v))
    *out = (long long)json_real_value(v);
  else if (s && *s && strspn(s, "0123456789") == strlen(s) && strlen(s) < 19)
    *out = strtoll(s, NULL, 10);
  else
    return false;
  return true;
}

static bool token_text_ok(const char *t, size_t n)
{
  if (!t || !n || strlen(t) != n)
    return false;
  for (size_t i = 0; i < n; i++)
    if (t[i] <= 0x20 || t[i] >= 0x7f)
      return false;
  return true;
}

enum kvvm_err kvvm_identity_parse_token(const char *body, size_t len, time_t now, char **token,
                                        time_t *expires_on, char *why, size_t whylen)
{
  json_t *j = json_loadb(body, len, 0, NULL), *at = json_object_get(j, "access_token");
  long long on = 0, in = 0;
  const char *reason = NULL;
  *token = NULL;
  if (!json_is_object(j))
    reason = "is not a JSON object";
  else if (!token_text_ok(json_string_value(at), json_string_length(at)))
    reason = "has no usable access_token";
  /* expires_in first: it does not depend on this machine's wall clock agreeing with the
   * identity service's (a VM's clock can be off until NTP has run). */
  else if (json_seconds(json_object_get(j, "expires_in"), &in) && in > 0)
    *expires_on = now + (time_t)in;
  else if (json_seconds(json_object_get(j, "expires_on"), &on) && on > 0)
    *expires_on = (time_t)on;
  else
    reason = "has neither a usable expires_on nor expires_in";
  if (!reason)
    *token = kvvm_xstrdup(json_string_value(at));
  else
    snprintf(why, whylen, "the token answer %s", reason);
  wipe_json_string(at);
  json_decref(j);
  return reason ? KVVM_E_NET : KVVM_OK;
}

char *kvvm_identity_parse_realm(const char *h)
{
  size_t n;
  if (!h || strncasecmp(h, "Basic", 5) != 0 || (h[5] != ' ' && h[5] != '\t'))
    return NULL;
  h += 5 + strspn(h + 5, " \t");
  if (strncasecmp(h, "realm=", 6) != 0)
    return NULL;
  h += 6;
  if (*h == '"') {
    const char *end = strchr(++h, '"');
    n = end ? (size_t)(end - h) : 0;
  } else {
    n = strcspn(h, ", \t");
  }
  return n ? kvvm_xasprintf("%.*s", (int)n, h) : NULL;
}

/* The Arc handshake: the key file's content sent back, when the listener and file pass. */
static enum kvvm_err answer_challenge(const char *url, const char *realm,
                                      struct kvvm_http_resp *r, char *why, size_t whylen)
{
  char reason[256], *key = NULL, *auth = NULL;
  size_t klen = 0;
  enum kvvm_err rc = KVVM_E_AUTH;
  if (!kvvm_identity_arc_listener_ok(r->peer_ip, r->peer_port, reason, sizeof reason)) {
    snprintf(why, whylen, "refused to answer the identity endpoint's challenge: %s", reason);
    goto out;
  }
  rc = kvvm_identity_arc_read_key(realm, kvvm_identity_arc_tokens_dir(), &key, &klen, why,
                                  whylen);
  if (rc != KVVM_OK)
    goto out;
  auth = kvvm_xasprintf("Authorization: Basic %s", key);
  const char *hdrs[] = {"Metadata: true", auth, NULL};
  struct kvvm_http_req req = {KVVM_HTTP_IDENTITY, url, hdrs, CONNECT_TIMEOUT_MS, TIMEOUT_MS, 0};
  kvvm_http_resp_clear(r);
  kvvm_http_get(&req, r);
out:
  kvvm_free_secret(key, klen);
  if (auth)
    kvvm_free_secret(auth, strlen(auth));
  return rc;
}

/* One request; a loopback endpoint's `Basic realm=` challenge is answered within it. */
static enum kvvm_err request(const struct source *src, const struct ident *id,
                             const char *resource, struct kvvm_http_resp *r, char *why,
                             size_t whylen)
{
  char *url = token_url(src, id, resource), *realm = NULL;
  const char *hdrs[] = {"Metadata: true", NULL};
  struct kvvm_http_req req = {KVVM_HTTP_IDENTITY, url, hdrs, CONNECT_TIMEOUT_MS, TIMEOUT_MS, 0};
  enum kvvm_err rc = KVVM_OK;
  kvvm_http_get(&req, r);
  if (r->status == 401 && (realm = kvvm_identity_parse_realm(r->www_authenticate)) != NULL) {
    rc = KVVM_E_AUTH;
    if (src->loopback)
      rc = answer_challenge(url, realm, r, why, whylen);
    else
      snprintf(why, whylen, "%s asked for a file-based (Arc) answer, which only a loopback "
               "endpoint may ask for", src->name);
  }
  free(realm);
  free(url);
  return rc;
}

/* The service's error and error_description (IMDS), or error.code and error.message. */
static void service_words(const struct kvvm_http_resp *r, char *out, size_t n)
{
  json_t *j = json_loadb(r->body ? r->body : "", r->len, 0, NULL);
  json_t *e = json_object_get(j, "error");
  const char *code = json_string_value(e), *desc = json_string_value(
      json_object_get(j, "error_description"));
  char qc[QUOTE_MAX + 1], qd[QUOTE_MAX + 1];
  if (json_is_object(e)) {
    code = json_string_value(json_object_get(e, "code"));
    desc = json_string_value(json_object_get(e, "message"));
  }
  quote(code, qc, sizeof qc);
  quote(desc, qd, sizeof qd);
  if (qc[0] || qd[0])
    snprintf(out, n, ": %s \"%s\"", qc[0] ? qc : "error", qd);
  else
    out[0] = '\0';
  json_decref(j);
}

/* IMDS words its errors in mixed case over the years; strcasestr is a GNU extension. */
static bool says(const char *words, const char *what)
{
  size_t n = strlen(what);
  for (const char *p = words; *p; p++)
    if (strncasecmp(p, what, n) == 0)
      return true;
  return false;
}

static enum verdict refused(const struct source *src, const struct ident *id,
                            const struct kvvm_http_resp *r, char *why, size_t whylen)
{
  char words[2 * QUOTE_MAX + 16];
  service_words(r, words, sizeof words);
  if (says(words, "Identity not found") && id->client_id)
    snprintf(why, whylen, "%s answered %ld%s: the identity %s is not assigned to this VM; "
             "check %s", src->name, r->status, words, id->client_id, id->key);
  else if (says(words, "Identity not found"))
    snprintf(why, whylen, "%s answered %ld%s: the VM has no system-assigned identity, or "
             "several user-assigned ones; set %s to the client id of the identity that may "
             "read the vault", src->name, r->status, words, id->key);
  else
    snprintf(why, whylen, "%s refused the token request: %ld%s", src->name, r->status, words);
  return V_FAIL;
}

static enum verdict judge(const struct source *src, const struct ident *id,
                          const struct kvvm_http_resp *r, char **token, time_t *exp,
                          enum kvvm_err *rc, char *why, size_t whylen)
{
  long s = r->status;
  *rc = KVVM_E_NET;
  if (r->fail == KVVM_HTTP_REFUSED)
    *rc = KVVM_E_SETTINGS;
  if (r->fail != KVVM_HTTP_OK) {
    snprintf(why, whylen, "%s: %s", src->name, r->error);
    return r->fail == KVVM_HTTP_TRANSIENT ? V_RETRY : V_FAIL;
  }
  if (s == 200) {
    char reason[200] = "";
    *rc = kvvm_identity_parse_token(r->body, r->len, kvvm_clock_now(), token, exp, reason,
                                    sizeof reason);
    if (*rc == KVVM_OK)
      return V_DONE;
    snprintf(why, whylen, "%s: %s", src->name, reason);
    return V_RETRY;
  }
  if (s == 404 || s == 410 || s == 429 || s >= 500) {
    char words[2 * QUOTE_MAX + 16];
    service_words(r, words, sizeof words);
    snprintf(why, whylen, "%s answered %ld%s", src->name, s, words);
    return V_RETRY;
  }
  *rc = KVVM_E_AUTH;
  return refused(src, id, r, why, whylen);
}

static int64_t backoff_ms(int tries, long retry_after_s)
{
  if (retry_after_s >= 0)
    return (retry_after_s < RETRY_AFTER_CAP_S ? retry_after_s : RETRY_AFTER_CAP_S) * 1000;
  int64_t d = BACKOFF_BASE_MS << (tries - 1 < 5 ? tries - 1 : 5);
  return d < BACKOFF_CAP_MS ? d : BACKOFF_CAP_MS;
}

/* A loopback msiEndpoint may be the Arc agent (its documented setting is
 * http://localhost:40342/metadata/identity), which refuses IMDS's api-version: a 400 that
 * names the version switches the source to Arc's. */
static bool switch_to_arc(struct source *src, const struct kvvm_http_resp *r)
{
  char words[2 * QUOTE_MAX + 16];
  if (!src->loopback || strcmp(src->api_version, ARC_API) == 0 || r->status != 400)
    return false;
  service_words(r, words, sizeof words);
  if (!says(words, "version"))
    return false;
  KVVM_INFO("managed identity: %s refused api-version " IMDS_API "%s; speaking Azure Arc's "
            ARC_API, src->name, words);
  src->api_version = ARC_API;
  return true;
}

static enum kvvm_err fetch_token(const struct ident *id, struct source *src,
                                 const char *resource, char **token, time_t *exp, char *why,
                                 size_t whylen)
{
  int64_t start = kvvm_clock_mono_ms();
  bool gone = false;
  for (int tries = 1;; tries++) {
    struct kvvm_http_resp r;
    enum kvvm_err rc = request(src, id, resource, &r, why, whylen);
    enum verdict v = rc != KVVM_OK ? V_FAIL : judge(src, id, &r, token, exp, &rc, why, whylen);
    long ra = kvvm_http_retry_after_s(r.retry_after, kvvm_clock_now());
    bool again = v == V_FAIL && switch_to_arc(src, &r);
    gone = gone || r.status == 410;
    kvvm_http_resp_clear(&r);
    if (again)
      continue;
    if (v != V_RETRY)
      return rc;
    int64_t elapsed = kvvm_clock_mono_ms() - start, delay = backoff_ms(tries, ra);
    if (kvvm_clock_stopping() || (gone ? elapsed >= GONE_MIN_MS : tries >= MAX_TRIES)) {
      size_t used = strlen(why);
      snprintf(why + used, whylen - used, " (gave up after %d tries in %lld s)", tries,
               (long long)(elapsed / 1000));
      return rc;
    }
    KVVM_INFO("managed identity: %s; retrying in %lld ms", why, (long long)delay);
    kvvm_clock_sleep_ms(delay);
  }
}

static struct cached *lookup(const char *key)
{
  for (struct cached *c = cache; c; c = c->next)
    if (strcmp(c->key, key) == 0)
      return c;
  return NULL;
}

static void store(const char *key, char *token, time_t exp)
{
  struct cached *c = lookup(key);
  if (!c) {
    c = kvvm_xcalloc(1, sizeof *c);
    c->key = kvvm_xstrdup(key);
    c->next = cache;
    cache = c;
  } else {
    kvvm_free_secret(c->token, strlen(c->token));
  }
  c->token = token;
  int64_t left_s = (int64_t)(exp - kvvm_clock_now()) - KVVM_IDENTITY_REFRESH_S;
  c->use_until_ms = kvvm_clock_mono_ms() + (left_s > 0 ? left_s * 1000 : 0);
}

enum kvvm_err kvvm_identity_token(const struct kvvm_config *cfg,
                                  const struct kvvm_cert_cfg *cert, const char *resource,
                                  char **token, char *why, size_t whylen)
{
  struct source src = {0};
  struct ident id = ident_of(cfg, cert);
  char *key = NULL, *fresh = NULL;
  time_t exp = 0;
  enum kvvm_err rc = pick_source(cfg, &id, &src, why, whylen);
  *token = NULL;
  if (rc != KVVM_OK)
    goto out;
  key = kvvm_xasprintf("%s|%s|%s", src.endpoint, id.client_id ? id.client_id : "", resource);
  struct cached *c = lookup(key);
  if (c && kvvm_clock_mono_ms() < c->use_until_ms) {
    *token = kvvm_xstrdup(c->token);
    goto out;
  }
  rc = fetch_token(&id, &src, resource, &fresh, &exp, why, whylen);
  if (rc != KVVM_OK)
    goto out;
  KVVM_INFO("managed identity: token for %s (%s) from %s, valid for %lld s", resource,
            id.client_id ? id.client_id : "system-assigned", src.name,
            (long long)(exp - kvvm_clock_now()));
  *token = kvvm_xstrdup(fresh);
  store(key, fresh, exp);
out:
  if (rc != KVVM_OK)
    KVVM_WARN("managed identity: %s", why);
  free(src.endpoint);
  free(key);
  return rc;
}

void kvvm_identity_forget(void)
{
  while (cache) {
    struct cached *c = cache;
    cache = c->next;
    kvvm_free_secret(c->token, strlen(c->token));
    free(c->key);
    free(c);
  }
}

/* An Arc challenge key goes into a header: a trailing newline is dropped, other control bytes refused. */
bool kvvm_arc_key_text_ok(char *key, size_t *len)
{
  while (*len && (key[*len - 1] == '\n' || key[*len - 1] == '\r'))
    key[--*len] = '\0';
  for (size_t i = 0; i < *len; i++)
    if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f)
      return false;
  return *len > 0;
}
