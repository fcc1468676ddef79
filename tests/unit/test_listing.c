/* The steady pass's choice (list a vault or ask each secret) and change detection
 * (listing.h), and the reading of a listing's pages (kvvm_kv_parse_page): no network. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt.h"
#include "kvvm/kv_list.h"
#include "kvvm/listing.h"

#define NOW 1900000000
#define V1 "a.vault.azure.net"
#define V2 "b.vault.azure.net"

/* A certificate installed from a version created at NOW - 10 days and fetched an hour ago. */
static struct kvvm_listing_cert cert(const char *host, const char *name)
{
  return (struct kvvm_listing_cert){host, name, 0, false, true,
                                    {NOW - 864000, NOW - 864000, NOW - 3600}};
}

static struct kvvm_kv_item item_of(const struct kvvm_listing_cert *c)
{
  return (struct kvvm_kv_item){(char *)(uintptr_t)c->name, true, c->seen.created,
                               c->seen.updated, 0, 0};
}

/* Pages against per-secret requests: one vault of 1,000 certificates is listed (40 pages
 * < 1,000); 1,000 vaults of one certificate are not (1 page is no cheaper than 1 GET). */
static void choice_counts_pages_against_certificates(void)
{
  size_t n = 1000;
  struct kvvm_listing_cert *c = calloc(n, sizeof *c);
  char (*hosts)[64] = calloc(n, 64);
  bool *by = calloc(n, sizeof *by);
  struct kvvm_listing_pick *picks = calloc(n, sizeof *picks);
  for (size_t i = 0; i < n; i++)
    c[i] = cert(V1, "x");
  KT_CHECK(kvvm_listing_choose(c, n, NULL, 0, NOW, by, picks) == 1);
  KT_CHECK(picks[0].certs == 1000 && picks[0].max_pages == 999 && by[0] && by[999]);
  for (size_t i = 0; i < n; i++) {
    snprintf(hosts[i], 64, "v%zu.vault.azure.net", i);
    c[i].host = hosts[i];
  }
  KT_CHECK(kvvm_listing_choose(c, n, NULL, 0, NOW, by, picks) == 0);
  KT_CHECK(!by[0] && !by[999]);
  /* Two in a vault: one page < two GETs; unless the last listing counted 2 pages. */
  c[1].host = hosts[0];
  KT_CHECK(kvvm_listing_choose(c, 2, NULL, 0, NOW, by, picks) == 1 && by[0] && by[1]);
  KT_CHECK(picks[0].max_pages == 1);
  struct kvvm_listing_vault big = {hosts[0], 0, 2};
  KT_CHECK(kvvm_listing_choose(c, 2, &big, 1, NOW, by, picks) == 0 && !by[0] && !by[1]);
  free(c);
  free(hosts);
  free(by);
  free(picks);
}

/* Pinned versions, nothing installed, older records, the daily direct ask, a refusal
 * remembered for a day; certificates of other identities are listed apart. */
static void who_is_never_listed(void)
{
  struct kvvm_listing_cert c[7];
  bool by[7];
  struct kvvm_listing_pick picks[7];
  for (int i = 0; i < 7; i++)
    c[i] = cert(V1, "x");
  KT_CHECK(kvvm_listing_eligible(&c[0], NULL, 0, NOW));
  c[0].pinned = true;
  c[1].installed = false;
  c[2].seen = (struct kvvm_listing_seen){0, 0, 0};
  c[3].seen.asked_at = NOW - KVVM_LISTING_DAY_S;
  c[4].seen.asked_at = NOW + 5;   /* the clock went back */
  c[5].seen.asked_at = c[5].seen.updated + KVVM_LISTING_MARGIN_S;   /* ambiguous already */
  for (int i = 0; i < 6; i++)
    KT_CHECK(!kvvm_listing_eligible(&c[i], NULL, 0, NOW));
  struct kvvm_listing_vault refused = {V1, NOW - 3600, 0};
  KT_CHECK(!kvvm_listing_eligible(&c[6], &refused, 1, NOW));
  refused.refused_at = NOW - KVVM_LISTING_DAY_S;   /* tried again after a day */
  KT_CHECK(kvvm_listing_eligible(&c[6], &refused, 1, NOW));
  /* Two identities, two certificates each, one vault: two listings of one page each. */
  for (int i = 0; i < 4; i++) {
    c[i] = cert(V1, "x");
    c[i].group = (size_t)(i % 2);
  }
  KT_CHECK(kvvm_listing_choose(c, 4, NULL, 0, NOW, by, picks) == 2);
  KT_CHECK(picks[0].group != picks[1].group && picks[0].certs == 2 && picks[1].certs == 2);
}

static void change_detection(void)
{
  struct kvvm_listing_cert c = cert(V1, "web");
  struct kvvm_kv_item it = item_of(&c);
  KT_CHECK(kvvm_listing_judge(&c, &it, NOW) == KVVM_LISTED_SAME);
  KT_CHECK(kvvm_listing_judge(&c, NULL, NOW) == KVVM_LISTED_MISSING);
  it.enabled = false;
  KT_CHECK(kvvm_listing_judge(&c, &it, NOW) == KVVM_LISTED_DISABLED);
  it = item_of(&c);
  it.nbf = NOW + 60;
  KT_CHECK(kvvm_listing_judge(&c, &it, NOW) == KVVM_LISTED_DISABLED);
  it = item_of(&c);
  it.created = it.updated = NOW - 60;   /* a new version */
  KT_CHECK(kvvm_listing_judge(&c, &it, NOW) == KVVM_LISTED_CHANGED);
  it = item_of(&c);
  it.updated = NOW - 60;                /* this version disabled and enabled again */
  KT_CHECK(kvvm_listing_judge(&c, &it, NOW) == KVVM_LISTED_CHANGED);
  /* Fetched in the very second of `updated`, or within the clock margin: a second version
   * made then would be listed the same. */
  c.seen.asked_at = c.seen.updated;
  it = item_of(&c);
  KT_CHECK(kvvm_listing_judge(&c, &it, NOW) == KVVM_LISTED_AMBIGUOUS);
  c.seen.asked_at = c.seen.updated + KVVM_LISTING_MARGIN_S;
  KT_CHECK(kvvm_listing_judge(&c, &it, NOW) == KVVM_LISTED_AMBIGUOUS);
  c.seen.asked_at++;
  KT_CHECK(kvvm_listing_judge(&c, &it, NOW) == KVVM_LISTED_SAME);
  KT_CONTAINS(kvvm_listing_words(KVVM_LISTED_AMBIGUOUS), "too soon");
}

static void what_a_listing_teaches(void)
{
  struct kvvm_listing_vault v = {V2, 0, 0};
  struct kvvm_kv_listing l = {.pages = 40};
  KT_CHECK(kvvm_listing_learn(&v, KVVM_OK, &l, NOW) && v.pages == 40 && !v.refused_at);
  KT_CHECK(!kvvm_listing_learn(&v, KVVM_OK, &l, NOW));   /* nothing new: nothing to write */
  l = (struct kvvm_kv_listing){.refused = true};
  KT_CHECK(kvvm_listing_learn(&v, KVVM_E_AUTH, &l, NOW) && v.refused_at == NOW);
  l = (struct kvvm_kv_listing){.pages = 3, .cut = true};
  KT_CHECK(kvvm_listing_learn(&v, KVVM_E_NOENT, &l, NOW) && v.pages == 4);
  KT_CHECK(v.refused_at == NOW);   /* a cut listing proves nothing about the permission */
  l = (struct kvvm_kv_listing){.pages = 0};
  KT_CHECK(!kvvm_listing_learn(&v, KVVM_E_NET, &l, NOW) && v.pages == 4);
  l = (struct kvvm_kv_listing){.pages = 2};
  KT_CHECK(kvvm_listing_learn(&v, KVVM_OK, &l, NOW) && v.pages == 2 && !v.refused_at);
}

static void seen_written_only_when_it_matters(void)
{
  struct kvvm_listing_seen old = {NOW - 864000, NOW - 864000, NOW - 3600};
  struct kvvm_listing_seen now = {old.created, old.updated, NOW};
  KT_CHECK(!kvvm_listing_seen_stale(&old, &now));         /* an hour later, the same */
  now.asked_at = old.asked_at + KVVM_LISTING_DAY_S / 2;
  KT_CHECK(kvvm_listing_seen_stale(&old, &now));          /* refreshed twice a day */
  now = (struct kvvm_listing_seen){NOW - 10, NOW - 10, NOW};
  KT_CHECK(kvvm_listing_seen_stale(&old, &now));          /* a new version */
  old = (struct kvvm_listing_seen){NOW - 10, NOW - 10, NOW - 9};
  now = (struct kvvm_listing_seen){NOW - 10, NOW - 10, NOW + 3600};
  KT_CHECK(kvvm_listing_seen_stale(&old, &now));          /* lifts an ambiguity */
}

#define ITEM(n, en, c, u) "{\"id\":\"https://" V1 "/secrets/" n "\",\"attributes\":{\"enabled\":" \
  en ",\"created\":" #c ",\"updated\":" #u ",\"recoveryLevel\":\"Recoverable+Purgeable\"}}"

static enum kvvm_err page(const char *body, struct kvvm_kv_listing *l, char **next)
{
  char why[200] = "";
  enum kvvm_err rc = kvvm_kv_parse_page(body, strlen(body), V1, l, next, why, sizeof why);
  KT_CHECK((rc == KVVM_OK) == (why[0] == '\0'));
  return rc;
}

static void pages_read_and_refused(void)
{
  struct kvvm_kv_listing l = {0};
  char *next = NULL;
  KT_CHECK(page("{\"value\":[" ITEM("web", "true", 10, 20) "," ITEM("Api", "false", 5, 6)
                "],\"nextLink\":\"https://" V1 ":443/secrets?api-version=7.4&$skiptoken=eyJ"
                "\"}", &l, &next) == KVVM_OK);
  KT_STREQ(next, "https://" V1 "/secrets?api-version=7.4&$skiptoken=eyJ");
  free(next);
  KT_CHECK(l.n == 2 && l.items[0].enabled && l.items[0].created == 10 &&
           l.items[0].updated == 20 && !l.items[1].enabled);
  KT_CHECK(kvvm_kv_listing_find(&l, "API") == &l.items[1] && !kvvm_kv_listing_find(&l, "x"));
  /* An empty page with a nextLink (Key Vault sends those), the last page's null. */
  KT_CHECK(page("{\"value\":[],\"nextLink\":\"https://" V1 "/secrets?api-version=7.4&$skiptoken=b\"}",
                &l, &next) == KVVM_OK && next);
  free(next);
  KT_CHECK(page("{\"value\":[],\"nextLink\":null}", &l, &next) == KVVM_OK && !next);
  static const char *const bad[] = {
      "", "[]", "{\"value\":{}}", "{\"nextLink\":null}",
      "{\"value\":[],\"nextLink\":\"https://evil.example.com/secrets?x\"}",
      "{\"value\":[],\"nextLink\":\"http://" V1 "/secrets?api-version=7.4\"}",
      "{\"value\":[],\"nextLink\":\"https://" V1 ":8443/secrets?api-version=7.4\"}",
      "{\"value\":[],\"nextLink\":\"https://" V1 ".evil.com/secrets?a\"}",
      "{\"value\":[],\"nextLink\":\"https://" V1 "/keys?api-version=7.4\"}",
      "{\"value\":[],\"nextLink\":42}",
      "{\"value\":[{\"id\":\"https://" V2 "/secrets/web\"}]}",
      "{\"value\":[{\"id\":\"https://" V1 "/secrets/web/0123456789abcdef0123456789abcdef\"}]}",
      "{\"value\":[{\"id\":\"https://" V1 "/secrets/a_b\"}]}",
      "{\"value\":[{\"attributes\":{}}]}", "{\"value\":[7]}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    next = NULL;
    KT_CHECK(page(bad[i], &l, &next) == KVVM_E_NET && !next);
  }
  kvvm_kv_listing_clear(&l);
  KT_CHECK(l.n == 0 && !l.items);
}

int main(void)
{
  static const struct kt_case cases[] = {
    KT_CASE(choice_counts_pages_against_certificates),
    KT_CASE(who_is_never_listed),
    KT_CASE(change_detection),
    KT_CASE(what_a_listing_teaches),
    KT_CASE(seen_written_only_when_it_matters),
    KT_CASE(pages_read_and_refused),
  };
  return KT_RUN("listing", cases);
}
