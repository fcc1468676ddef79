/* HTTP GET over libcurl (the only file that calls it; loaded on first use, curlapi.h). One multi handle serves the
 * whole process: sequential requests (identity) and parallel ones (Key Vault) share its
 * connection cache, so a pass over many certificates reuses a few TLS connections.
 * Only libcurl features present in 7.61 (RHEL 8) are relied on; newer ones are used after a
 * run-time version check, with the 7.61 way kept as the fallback. */
#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "vault/curlapi.h"
#include "kvvm/clock.h"
#include "kvvm/fileio.h"
#include "kvvm/http.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/version.h"

/* Idle connections kept for reuse: above Key Vault's in-flight bound (kv.h), so every
 * connection of a parallel pass survives to the next request. */
#define MAX_CONNECTS 32
/* A stored header value longer than this is cut: ours are a few hundred bytes. */
#define HEADER_MAX 4096
#define CA_MAX (1024 * 1024)
#define BODY_START 16384
#define UPLOAD_BUFFER 16384L
#define DOWNLOAD_BUFFER 8192L
/* curl_multi_wait returns at once when libcurl has no socket to offer (e.g. during a
 * threaded DNS lookup; 7.66's curl_multi_poll would wait, but 7.61 lacks it); a short nap
 * after such an early return keeps that from spinning a CPU. */
#define IDLE_NAP_MS 20

struct xfer {
  CURL *easy;
  struct curl_slist *headers;
  struct kvvm_http_resp resp;
  size_t cap, max;
  bool too_big;
  kvvm_http_done_fn *done;
  void *user;
  struct kvvm_http_resp *keep;  /* kvvm_http_get: the answer is moved here */
  bool *kept;                   /* ... and this set */
  struct xfer *next;            /* the list of requests refused before they started */
  char errbuf[CURL_ERROR_SIZE];
};

static struct {
  bool init;
  bool global;               /* curl_global_init succeeded */
  CURLM *multi;
  size_t active;             /* started and not yet reported */
  struct xfer *refused;
  enum kvvm_err env_rc;      /* a refused testing aid fails every request */
  char env_why[300];
  char *ca_path, *ca_pem;    /* KVVM_CA_FILE, checked, and its content */
  bool ca_blob;              /* hand libcurl the checked content, not the path */
  bool upload_buffer;        /* the running libcurl takes CURLOPT_UPLOAD_BUFFERSIZE (7.62) */
  struct curl_slist *connect_to;
  char user_agent[64];
} g;

static void wipe_slist(struct curl_slist *s)
{
  if (!s)
    return;   /* and libcurl may not be loaded */
  for (struct curl_slist *p = s; p; p = p->next)
    kvvm_wipe(p->data, strlen(p->data));
  curl_slist_free_all(s);
}

static enum kvvm_err refuse(char *why, size_t whylen, const char *what, const char *reason)
{
  snprintf(why, whylen, "%s %s", what, reason);
  return KVVM_E_SETTINGS;
}

enum kvvm_err kvvm_http_check_ca_file(const char *path, char **pem, char *why, size_t whylen)
{
  char what[300], reason[120];
  snprintf(what, sizeof what, "KVVM_CA_FILE %s", path);
  if (kvvm_file_read_trusted(path, CA_MAX, pem, reason, sizeof reason) != KVVM_OK)
    return refuse(why, whylen, what, reason);
  return KVVM_OK;
}

/* A host name, an IPv4 address or a bracketed IPv6 address, then ':'. Returns the length
 * before the ':' or 0. */
static size_t host_part(const char *s)
{
  if (*s == '[') {
    size_t n = strspn(s + 1, "0123456789abcdefABCDEF:.");
    return s[n + 1] == ']' && s[n + 2] == ':' ? n + 2 : 0;
  }
  size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-");
  return n && s[n] == ':' ? n : 0;
}

/* Port digits 1-65535 ending at a ':' (more to come) or at the end of the entry. */
static size_t port_part(const char *s, bool last)
{
  size_t n = strspn(s, "0123456789");
  long v = n && n <= 5 ? strtol(s, NULL, 10) : 0;
  char end = last ? '\0' : ':';
  return v >= 1 && v <= 65535 && s[n] == end ? n : 0;
}

static bool connect_entry_ok(const char *e)
{
  size_t n;
  for (int field = 0; field < 4; field++) {
    n = field % 2 ? port_part(e, field == 3) : host_part(e);
    if (!n)
      return false;
    e += n + (field < 3);
  }
  return true;
}

enum kvvm_err kvvm_http_check_connect_to(const char *value, char *why, size_t whylen)
{
  char *copy = kvvm_xstrdup(value), *save = NULL;
  enum kvvm_err rc = KVVM_OK;
  size_t n = strlen(copy);
  if (!n || copy[0] == ',' || copy[n - 1] == ',' || strstr(copy, ",,"))
    rc = refuse(why, whylen, "KVVM_CONNECT_TO", "is empty or has an empty entry");
  for (char *e = strtok_r(copy, ",", &save); e && rc == KVVM_OK;
       e = strtok_r(NULL, ",", &save)) {
    if (!connect_entry_ok(e)) {
      snprintf(why, whylen, "KVVM_CONNECT_TO entry \"%.120s\" is not "
               "HOST:PORT:CONNECT-HOST:CONNECT-PORT", e);
      rc = KVVM_E_SETTINGS;
    }
  }
  free(copy);
  return rc;
}

static void build_connect_to(const char *value)
{
  char *copy = kvvm_xstrdup(value), *save = NULL;
  for (char *e = strtok_r(copy, ",", &save); e; e = strtok_r(NULL, ",", &save))
    g.connect_to = curl_slist_append(g.connect_to, e);
  free(copy);
}

/* The testing aids, read once. A refused one fails every request rather than being ignored:
 * ignoring it would send a test's requests to the real service. */
static enum kvvm_err load_overrides(void)
{
  const char *ca = getenv("KVVM_CA_FILE"), *ct = getenv("KVVM_CONNECT_TO");
  enum kvvm_err rc = KVVM_OK;
  if ((!ca || !*ca) && !ct)
    return KVVM_OK;
  KVVM_WARN("test overrides active: KVVM_CA_FILE=%s KVVM_CONNECT_TO=%s", ca ? ca : "(unset)",
            ct ? ct : "(unset)");
  if (ca && *ca && (rc = kvvm_http_check_ca_file(ca, &g.ca_pem, g.env_why,
                                                  sizeof g.env_why)) != KVVM_OK)
    goto out;
  if (ct && (rc = kvvm_http_check_connect_to(ct, g.env_why, sizeof g.env_why)) != KVVM_OK)
    goto out;
  g.ca_path = ca && *ca ? kvvm_xstrdup(ca) : NULL;
  /* CURLOPT_CAINFO_BLOB (7.77) uses the bytes we checked; older libcurl reopens the path. */
  g.ca_blob = curl_version_info(CURLVERSION_NOW)->version_num >= 0x074d00;
  g.upload_buffer = curl_version_info(CURLVERSION_NOW)->version_num >= 0x073e00;
  if (ct)
    build_connect_to(ct);
out:
  if (rc != KVVM_OK)
    KVVM_ERR("%s; every request will fail until it is fixed", g.env_why);
  return rc;
}

static enum kvvm_err http_init(void)
{
  if (g.init)
    return g.env_rc;
  g.init = true;
  if (kvvm_curlapi_load(g.env_why, sizeof g.env_why) != KVVM_OK)
    return g.env_rc = KVVM_E_INTERNAL;
  g.global = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  if (!g.global || !(g.multi = curl_multi_init())) {
    snprintf(g.env_why, sizeof g.env_why, "libcurl could not be initialised");
    KVVM_ERR("%s", g.env_why);
    return g.env_rc = KVVM_E_INTERNAL;
  }
  curl_multi_setopt(g.multi, CURLMOPT_MAXCONNECTS, (long)MAX_CONNECTS);
  snprintf(g.user_agent, sizeof g.user_agent, "kvvm/%s", kvvm_version());
  return g.env_rc = load_overrides();
}

bool kvvm_http_test_overrides(void)
{
  const char *ca = getenv("KVVM_CA_FILE");
  return (ca && *ca) || getenv("KVVM_CONNECT_TO");
}

static void store_header(char **slot, const char *v, size_t n)
{
  while (n && isspace((unsigned char)*v))
    v++, n--;
  while (n && isspace((unsigned char)v[n - 1]))
    n--;
  free(*slot);
  *slot = kvvm_xasprintf("%.*s", (int)(n < HEADER_MAX ? n : HEADER_MAX), v);
}

static size_t on_header(char *data, size_t size, size_t nitems, void *user)
{
  struct xfer *x = user;
  size_t n = size * nitems;
  /* A new status line starts a new answer (e.g. after 100 Continue): forget the last. */
  if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
    free(x->resp.www_authenticate), x->resp.www_authenticate = NULL;
    free(x->resp.retry_after), x->resp.retry_after = NULL;
  } else if (n > 17 && strncasecmp(data, "WWW-Authenticate:", 17) == 0) {
    if (!x->resp.www_authenticate)
      store_header(&x->resp.www_authenticate, data + 17, n - 17);
  } else if (n > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
    store_header(&x->resp.retry_after, data + 12, n - 12);
  }
  return n;
}

/* The first block for a body: its Content-Length when the server gave one (a Key Vault
 * answer is 2-10 KiB: 16 bodies in flight each in 16 KiB held ~150 KB more than they
 * needed), else BODY_START. */
static size_t first_cap(const struct xfer *x, size_t need)
{
  curl_off_t len = -1;
  if (curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len) == CURLE_OK &&
      len >= 0 && (uint64_t)len < (uint64_t)x->max && need <= (size_t)len + 1)
    return (size_t)len + 1;
  return BODY_START;
}

/* Grows by copying, never realloc: the old block would be freed unwiped. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
  struct xfer *x = user;
  size_t n = size * nmemb;
  if (n > x->max - x->resp.len) {
    x->too_big = true;
    return 0;
  }
  if (x->resp.len + n + 1 > x->cap) {
    size_t cap = x->cap ? x->cap : first_cap(x, x->resp.len + n + 1);
    while (cap < x->resp.len + n + 1)
      cap *= 2;
    char *b = kvvm_xmalloc(cap);
    if (x->resp.len)
      memcpy(b, x->resp.body, x->resp.len);
    kvvm_free_secret(x->resp.body, x->cap);
    x->resp.body = b, x->cap = cap;
  }
  memcpy(x->resp.body + x->resp.len, data, n);
  x->resp.len += n;
  x->resp.body[x->resp.len] = '\0';
  return n;
}

static bool scheme_ok(const struct kvvm_http_req *req, char *why, size_t whylen)
{
  bool kv = req->target == KVVM_HTTP_KEYVAULT;
  const char *want = kv ? "https://" : "http://";
  if (req->url && strncasecmp(req->url, want, strlen(want)) == 0)
    return true;
  snprintf(why, whylen, "%s requests must use %s", kv ? "Key Vault" : "identity", want);
  return false;
}

static void set_trust(CURL *e)
{
  if (!g.ca_path)
    return;
  curl_easy_setopt(e, CURLOPT_CAPATH, NULL);  /* only the test CA, not the system's too */
#if CURL_AT_LEAST_VERSION(7, 77, 0)
  if (g.ca_blob) {
    struct curl_blob blob = {g.ca_pem, strlen(g.ca_pem), CURL_BLOB_COPY};
    curl_easy_setopt(e, CURLOPT_CAINFO, NULL);
    if (curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob) == CURLE_OK)
      return;
    g.ca_blob = false;  /* the TLS backend lacks blobs: use the path from now on */
  }
#endif
  curl_easy_setopt(e, CURLOPT_CAINFO, g.ca_path);
}

static void set_headers(struct xfer *x, const struct kvvm_http_req *req)
{
  for (const char *const *h = req->headers; h && *h; h++)
    x->headers = curl_slist_append(x->headers, *h);
  curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
}

static void set_options(struct xfer *x, const struct kvvm_http_req *req)
{
  CURL *e = x->easy;
  long ct = req->connect_timeout_ms ? req->connect_timeout_ms : KVVM_HTTP_CONNECT_TIMEOUT_MS;
  long t = req->timeout_ms ? req->timeout_ms : KVVM_HTTP_TIMEOUT_MS;
  curl_easy_setopt(e, CURLOPT_URL, req->url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, x);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ct);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, t);
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->max);
  curl_easy_setopt(e, CURLOPT_USERAGENT, g.user_agent);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
#if CURL_AT_LEAST_VERSION(7, 62, 0)
  /* libcurl copies a request sent over TLS into an upload buffer of 64 KiB per handle; a GET
   * never needs more than its headers (a few KiB), and 16 requests in flight held 1 MiB of
   * them. 16 KiB is libcurl's least; an older libcurl (the floor is 7.61) keeps 64. */
  if (g.upload_buffer)
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, UPLOAD_BUFFER);
#endif
  /* Its download buffer likewise: 16 KiB per handle by default, for answers of a few KiB. */
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, DOWNLOAD_BUFFER);
  /* The identity endpoints are on this machine or link-local: a proxy must never see them. */
  if (req->target == KVVM_HTTP_IDENTITY)
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
  if (g.connect_to)
    curl_easy_setopt(e, CURLOPT_CONNECT_TO, g.connect_to);
  set_trust(e);
  set_headers(x, req);
}

static void xfer_free(struct xfer *x)
{
  if (!x)
    return;
  if (x->easy) {
    curl_multi_remove_handle(g.multi, x->easy);
    curl_easy_cleanup(x->easy);
  }
  wipe_slist(x->headers);
  kvvm_http_resp_clear(&x->resp);
  free(x);
}

static struct xfer *xfer_new(const struct kvvm_http_req *req)
{
  struct xfer *x = kvvm_xcalloc(1, sizeof *x);
  x->max = req->max_body ? req->max_body : KVVM_HTTP_MAX_BODY;
  x->resp.body = kvvm_xstrdup("");
  x->cap = 1;
  g.active++;
  return x;
}

/* Hand the answer to its owner, then free the request. */
static void finish(struct xfer *x)
{
  g.active--;
  if (x->keep) {
    *x->keep = x->resp;
    *x->kept = true;
    memset(&x->resp, 0, sizeof x->resp);
  } else {
    x->done(x->user, &x->resp);
  }
  xfer_free(x);
}

static void start(const struct kvvm_http_req *req, struct xfer *x)
{
  enum kvvm_err rc = http_init();
  if (rc != KVVM_OK || !scheme_ok(req, x->resp.error, sizeof x->resp.error) ||
      !(x->easy = curl_easy_init())) {
    if (rc != KVVM_OK)
      snprintf(x->resp.error, sizeof x->resp.error, "%s", g.env_why);
    x->resp.fail = KVVM_HTTP_REFUSED;
    x->next = g.refused;
    g.refused = x;
    return;
  }
  set_options(x, req);
  curl_multi_add_handle(g.multi, x->easy);
}

void kvvm_http_start(const struct kvvm_http_req *req, kvvm_http_done_fn *done, void *user)
{
  struct xfer *x = xfer_new(req);
  x->done = done;
  x->user = user;
  start(req, x);
}

static enum kvvm_http_fail classify(CURLcode c, bool too_big)
{
  if (too_big || c == CURLE_FILESIZE_EXCEEDED)
    return KVVM_HTTP_TOO_BIG;
  switch (c) {
  case CURLE_PEER_FAILED_VERIFICATION:
#if !CURL_AT_LEAST_VERSION(7, 62, 0)
  case CURLE_SSL_CACERT:  /* an alias of the one above since 7.62 */
#else
  case 51:  /* CURLE_PEER_FAILED_VERIFICATION before 7.62 (RHEL 8's 7.61): 60 is the other */
#endif
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_ISSUER_ERROR:
    return KVVM_HTTP_TLS;
  case CURLE_URL_MALFORMAT:
  case CURLE_UNSUPPORTED_PROTOCOL:
    return KVVM_HTTP_REFUSED;
  default:
    return KVVM_HTTP_TRANSIENT;  /* connect, timeout, reset, truncation, handshake */
  }
}

static void fill_peer(struct xfer *x)
{
  char *ip = NULL;
  if (curl_easy_getinfo(x->easy, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip)
    snprintf(x->resp.peer_ip, sizeof x->resp.peer_ip, "%s", ip);
  curl_easy_getinfo(x->easy, CURLINFO_PRIMARY_PORT, &x->resp.peer_port);
  curl_easy_getinfo(x->easy, CURLINFO_LOCAL_PORT, &x->resp.local_port);
}

static void complete(struct xfer *x, CURLcode c)
{
  fill_peer(x);
  if (c == CURLE_OK) {
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->resp.status);
  } else {
    x->resp.fail = classify(c, x->too_big);
    if (x->resp.fail == KVVM_HTTP_TOO_BIG)
      snprintf(x->resp.error, sizeof x->resp.error, "the answer is larger than %zu bytes",
               x->max);
    else
      snprintf(x->resp.error, sizeof x->resp.error, "%s",
               x->errbuf[0] ? x->errbuf : curl_easy_strerror(c));
  }
  finish(x);
}

static size_t report_done(void)
{
  size_t n = 0;
  int left;
  CURLMsg *m;
  while (g.refused) {
    struct xfer *x = g.refused;
    g.refused = x->next;
    finish(x);
    n++;
  }
  while (g.multi && (m = curl_multi_info_read(g.multi, &left)) != NULL) {
    char *priv = NULL;
    if (m->msg != CURLMSG_DONE)
      continue;
    CURLcode c = m->data.result;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
    complete((struct xfer *)(void *)priv, c);
    n++;
  }
  return n;
}

size_t kvvm_http_step(int wait_ms)
{
  int running = 0, fds = 0;
  if (g.multi)
    curl_multi_perform(g.multi, &running);
  if (report_done() == 0 && running > 0 && wait_ms > 0) {
    int64_t t0 = kvvm_clock_mono_ms();
    curl_multi_wait(g.multi, NULL, 0, wait_ms, &fds);
    if (fds == 0 && kvvm_clock_mono_ms() - t0 < IDLE_NAP_MS)
      kvvm_clock_sleep_ms(wait_ms < IDLE_NAP_MS ? wait_ms : IDLE_NAP_MS);
    curl_multi_perform(g.multi, &running);
    report_done();
  }
  return g.active;
}

enum kvvm_err kvvm_http_get(const struct kvvm_http_req *req, struct kvvm_http_resp *resp)
{
  struct xfer *x = xfer_new(req);
  bool done = false;
  memset(resp, 0, sizeof *resp);
  x->keep = resp;
  x->kept = &done;
  start(req, x);
  /* Step until our own request is reported; others in flight move on meanwhile. */
  while (!done)
    kvvm_http_step(1000);
  return g.env_rc;
}

void kvvm_http_resp_clear(struct kvvm_http_resp *resp)
{
  if (!resp)
    return;
  if (resp->body)
    kvvm_free_secret(resp->body, resp->len + 1);
  free(resp->www_authenticate);
  free(resp->retry_after);
  memset(resp, 0, sizeof *resp);
}

long kvvm_http_retry_after_s(const char *value, time_t now)
{
  if (!value)
    return -1;
  while (*value == ' ' || *value == '\t')
    value++;
  size_t digits = strspn(value, "0123456789");
  if (digits && !value[digits + strspn(value + digits, " \t")])
    return digits > 9 ? LONG_MAX / 2 : strtol(value, NULL, 10);
  char why[300];
  if (kvvm_curlapi_load(why, sizeof why) != KVVM_OK)
    return -1;
  time_t t = curl_getdate(value, NULL);
  if (t == (time_t)-1)
    return -1;
  return t > now ? (long)(t - now) : 0;
}

void kvvm_http_shutdown(void)
{
  while (g.refused) {
    struct xfer *x = g.refused;
    g.refused = x->next;
    xfer_free(x);
  }
  if (g.multi)
    curl_multi_cleanup(g.multi);
  wipe_slist(g.connect_to);
  free(g.ca_path);
  free(g.ca_pem);
  if (g.global)
    curl_global_cleanup();
  memset(&g, 0, sizeof g);
}
