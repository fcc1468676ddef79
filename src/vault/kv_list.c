/* Listing a vault's secrets, a page at a time (kv_list.h). Pages are read one after
 * another: each nextLink is known only from the page before it. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kvvm/clock.h"
#include "kvvm/http.h"
#include "kvvm/kv.h"
#include "kvvm/kv_list.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/rand.h"

#define NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
#define BEARER "Authorization: Bearer "
/* A vault of 100,000 secrets is 4,000 pages: a listing longer than that is a loop. */
#define MAX_PAGES 4096

void kvvm_kv_listing_clear(struct kvvm_kv_listing *l)
{
  if (!l)
    return;
  for (size_t i = 0; i < l->n; i++)
    free(l->items[i].name);
  free(l->items);
  memset(l, 0, sizeof *l);
}

const struct kvvm_kv_item *kvvm_kv_listing_find(const struct kvvm_kv_listing *l,
                                                const char *name)
{
  for (size_t i = 0; l && name && i < l->n; i++)
    if (strcasecmp(l->items[i].name, name) == 0)
      return &l->items[i];
  return NULL;
}

static int64_t json_time(json_t *o, const char *key)
{
  json_t *v = json_object_get(o, key);
  return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

/* The name in id = https://<host>/secrets/<name> (no version: a listing names secrets). */
static char *item_name(const char *id, const char *host)
{
  size_t h = strlen(host);
  if (!id || strncmp(id, "https://", 8) != 0 || strncasecmp(id + 8, host, h) != 0 ||
      strncmp(id + 8 + h, "/secrets/", 9) != 0)
    return NULL;
  const char *name = id + 8 + h + 9;
  size_t n = strlen(name);
  if (n < 1 || n > 127 || strspn(name, NAME_CHARS) != n)
    return NULL;
  return kvvm_xstrdup(name);
}

static bool add_item(struct kvvm_kv_listing *l, json_t *it, const char *host)
{
  char *name = item_name(json_string_value(json_object_get(it, "id")), host);
  json_t *a = json_object_get(it, "attributes");
  if (!name)
    return false;
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 32;
    l->items = kvvm_xrealloc(l->items, l->cap * sizeof *l->items);
  }
  /* enabled must be said: an item that does not say it is enabled is not taken as one. */
  l->items[l->n++] = (struct kvvm_kv_item){
      .name = name, .enabled = json_is_true(json_object_get(a, "enabled")),
      .created = json_time(a, "created"), .updated = json_time(a, "updated"),
      .nbf = json_time(a, "nbf"), .exp = json_time(a, "exp")};
  return true;
}

/* nextLink must lead to the next page of the same vault: https://<host>[:443]/secrets?...
 * Anything else would send the vault's token elsewhere. The address asked is rebuilt from
 * the host we know and the link's query. */
static char *next_url(const char *link, const char *host)
{
  size_t h = strlen(host);
  if (strncmp(link, "https://", 8) != 0 || strncasecmp(link + 8, host, h) != 0)
    return NULL;
  const char *p = link + 8 + h;
  if (strncmp(p, ":443", 4) == 0)
    p += 4;
  if (strncmp(p, "/secrets?", 9) != 0 || strpbrk(p, "#\r\n \t"))
    return NULL;
  return kvvm_xasprintf("https://%s%s", host, p);
}

static enum kvvm_err garbled(char *why, size_t whylen, const char *reason)
{
  snprintf(why, whylen, "the page %s", reason);
  return KVVM_E_NET;
}

enum kvvm_err kvvm_kv_parse_page(const char *body, size_t len, const char *host,
                                 struct kvvm_kv_listing *l, char **next, char *why,
                                 size_t whylen)
{
  enum kvvm_err rc = KVVM_OK;
  json_t *j = json_loadb(body ? body : "", len, 0, NULL);
  json_t *v = json_object_get(j, "value"), *link = json_object_get(j, "nextLink"), *it;
  size_t i;
  *next = NULL;
  if (!json_is_array(v))
    rc = garbled(why, whylen, "is not a JSON object with a \"value\" list");
  else if (link && !json_is_null(link) &&
           !(*next = next_url(json_string_value(link) ? json_string_value(link) : "", host)))
    rc = garbled(why, whylen, "leads elsewhere than this vault's next page (nextLink)");
  json_array_foreach(v, i, it)
    if (rc == KVVM_OK && !add_item(l, it, host))
      rc = garbled(why, whylen, "holds an item whose id is not https://<vault>/secrets/<name>");
  if (rc != KVVM_OK) {
    free(*next);
    *next = NULL;
  }
  json_decref(j);
  return rc;
}

/* One request, with kv's retries: the answer when 200, else the error and why. */
struct page {
  const char *host;
  char *auth;        /* the header with the token (wiped) */
  long timeout_ms;
  struct kvvm_kv_listing *l;
  char *why;
  size_t whylen;
};

static uint64_t rnd(void)
{
  uint64_t r = 0;
  if (kvvm_rand_bytes(&r, sizeof r) != KVVM_OK)
    r = (uint64_t)kvvm_clock_mono_ms();
  return r;
}

/* The delay before another try, or -1 when the answer is final (why says it). */
static int64_t judge(struct page *pg, const struct kvvm_http_resp *r, int *faults,
                     int *throttled, const char *token)
{
  struct kvvm_kv_error e;
  if (r->fail == KVVM_HTTP_OK && r->status == 429) {
    snprintf(pg->why, pg->whylen, "vault %s kept throttling (429)", pg->host);
    if (++*throttled >= KVVM_KV_MAX_THROTTLED)
      return -1;
    return kvvm_kv_throttle_ms(*throttled, kvvm_http_retry_after_s(r->retry_after,
                                                                  kvvm_clock_now()), rnd());
  }
  if (r->fail == KVVM_HTTP_OK && r->status < 500) {
    kvvm_kv_parse_error(r->body, r->len, token, &e);
    snprintf(pg->why, pg->whylen, "vault %s answered %ld %s%s%s%s%s", pg->host, r->status,
             e.code, e.inner[0] ? "/" : "", e.inner, e.message[0] ? ": " : "", e.message);
    pg->l->refused = r->status == 403;
    return -1;
  }
  if (r->fail == KVVM_HTTP_OK)
    snprintf(pg->why, pg->whylen, "vault %s answered %ld", pg->host, r->status);
  else
    snprintf(pg->why, pg->whylen, "vault %s: %s", pg->host, r->error);
  if (r->fail != KVVM_HTTP_OK && r->fail != KVVM_HTTP_TRANSIENT)
    return -1;
  return ++*faults < KVVM_KV_MAX_TRIES ? kvvm_kv_throttle_ms(*faults, -1, rnd()) : -1;
}

static enum kvvm_err error_of(const struct kvvm_http_resp *r)
{
  if (r->fail == KVVM_HTTP_REFUSED)
    return KVVM_E_SETTINGS;
  if (r->fail == KVVM_HTTP_TLS)
    return KVVM_E_TLS;
  return r->fail == KVVM_HTTP_OK && (r->status == 401 || r->status == 403) ? KVVM_E_AUTH
                                                                         : KVVM_E_NET;
}

/* Fetch and read the page at url; *next as kvvm_kv_parse_page sets it. */
static enum kvvm_err read_page(struct page *pg, const char *url, const char *token,
                               char **next)
{
  const char *hdrs[] = {pg->auth, NULL};
  struct kvvm_http_req req = {KVVM_HTTP_KEYVAULT, url, hdrs, 0, pg->timeout_ms ?
                              pg->timeout_ms : KVVM_KV_TIMEOUT_MS, 0};
  int faults = 0, throttled = 0;
  for (;;) {
    struct kvvm_http_resp r;
    memset(&r, 0, sizeof r);
    pg->l->requests++;
    kvvm_http_get(&req, &r);
    enum kvvm_err rc = KVVM_OK;
    int64_t delay = -1;
    if (r.fail == KVVM_HTTP_OK && r.status == 200) {
      rc = kvvm_kv_parse_page(r.body, r.len, pg->host, pg->l, next, pg->why, pg->whylen);
      if (rc != KVVM_OK && ++faults < KVVM_KV_MAX_TRIES)
        delay = kvvm_kv_throttle_ms(faults, -1, rnd());
    } else if ((delay = judge(pg, &r, &faults, &throttled, token)) < 0) {
      rc = error_of(&r);
    }
    kvvm_http_resp_clear(&r);
    if (delay < 0 || kvvm_clock_stopping())
      return delay < 0 ? rc : KVVM_E_NET;
    kvvm_clock_sleep_ms(delay);
  }
}

static enum kvvm_err walk(struct page *pg, const char *token, size_t max_pages)
{
  char *url = kvvm_xasprintf("https://%s/secrets?api-version=" KVVM_KV_API_VERSION
                             "&maxresults=%d", pg->host, KVVM_KV_LIST_PAGE);
  enum kvvm_err rc = KVVM_OK;
  size_t limit = max_pages && max_pages < MAX_PAGES ? max_pages : MAX_PAGES;
  while (url && rc == KVVM_OK) {
    char *next = NULL;
    if (pg->l->pages == limit) {
      pg->l->cut = true;
      snprintf(pg->why, pg->whylen, "vault %s has more than %zu page(s) of secrets",
               pg->host, limit);
      rc = KVVM_E_NOENT;
    } else if ((rc = read_page(pg, url, token, &next)) == KVVM_OK) {
      pg->l->pages++;
    }
    free(url);
    url = next;
  }
  free(url);
  return rc;
}

enum kvvm_err kvvm_kv_list(const char *host, const char *token, long timeout_ms,
                           size_t max_pages, struct kvvm_kv_listing *out, char *why,
                           size_t whylen)
{
  char reason[200];
  memset(out, 0, sizeof *out);
  if (!host || !kvvm_kv_resource_for_host(host, reason, sizeof reason)) {
    snprintf(why, whylen, "not listed: %s", host ? reason : "no vault");
    return KVVM_E_SETTINGS;
  }
  if (!token || !*token) {
    snprintf(why, whylen, "vault %s: no token was given for the listing", host);
    return KVVM_E_INTERNAL;
  }
  struct page pg = {host, kvvm_xasprintf(BEARER "%s", token), timeout_ms, out, why, whylen};
  int64_t start = kvvm_clock_mono_ms();
  enum kvvm_err rc = walk(&pg, token, max_pages);
  kvvm_free_secret(pg.auth, strlen(pg.auth));
  if (rc == KVVM_OK)
    KVVM_INFO("key vault: vault %s lists %zu secret(s) in %zu page(s), %lld ms (%zu "
              "requests)", host, out->n, out->pages, (long long)(kvvm_clock_mono_ms() - start),
              out->requests);
  else
    KVVM_INFO("key vault: listing vault %s stopped (%s); its certificates are asked one by "
              "one", host, why);
  return rc;
}
