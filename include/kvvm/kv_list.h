/* Listing a vault's secrets (keyvault.md; tests/emulator/PROTOCOL.md, Listing): GET
 * https://<vault>/secrets?api-version=7.4&maxresults=25, then each nextLink in turn, one
 * page after another. Each item tells the attributes of its secret's NEWEST version (no
 * value, no version): enough to see that an installed version is still the current one
 * without asking for it. Needs the secrets/list permission (an access policy's "list", or
 * the "Key Vault Secrets User" role).
 * Retries as kv's fetches: 429 waits for Retry-After (kvvm_kv_throttle_ms), 5xx, resets,
 * timeouts and garbled pages get KVVM_KV_MAX_TRIES tries; 401, 403 and 404 are final. A
 * listing that fails is no error of any certificate: the caller asks each secret instead,
 * so failures are logged as info. */
#ifndef KVVM_KV_LIST_H
#define KVVM_KV_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kvvm/err.h"

/* Key Vault's page size limit (maxresults 1-25). */
#define KVVM_KV_LIST_PAGE 25

/* One listed secret: its newest version's attributes (Unix seconds, 0 when absent). */
struct kvvm_kv_item {
  char *name;
  bool enabled;
  int64_t created, updated, nbf, exp;
};

struct kvvm_kv_listing {
  struct kvvm_kv_item *items;
  size_t n, cap;
  size_t pages;      /* answers read (a real vault sends empty pages too) */
  size_t requests;   /* requests sent, retries included */
  bool refused;      /* the vault answered 403: no list permission (or a network rule) */
  bool cut;          /* stopped at max_pages with more to come */
};

/* List host's secrets with token, reading at most max_pages pages (0: no limit), into *out
 * (cleared first; the caller clears it after). KVVM_OK when every page was read; else
 * KVVM_E_AUTH (401, 403: out->refused), KVVM_E_NET (after the retries, or a garbled page),
 * KVVM_E_NOENT (max_pages read and more to come: out->cut), KVVM_E_SETTINGS (a bad host),
 * with the reason in why. Whatever the error, out may hold the items read so far: a caller
 * must not take an absence from an incomplete listing. */
KVVM_API enum kvvm_err kvvm_kv_list(const char *host, const char *token, long timeout_ms,
                                    size_t max_pages, struct kvvm_kv_listing *out, char *why,
                                    size_t whylen);
KVVM_API void kvvm_kv_listing_clear(struct kvvm_kv_listing *l);
/* The item named name (Key Vault's names ignore case), or NULL. */
KVVM_API const struct kvvm_kv_item *kvvm_kv_listing_find(const struct kvvm_kv_listing *l,
                                                         const char *name);

/* Pure, exported for tests and the fuzzer: add the items of one page of host's listing to
 * *l and set *next to the address of the following page (a new string; NULL on the last).
 * KVVM_E_NET with the reason when the page is not one: not JSON, no "value" array, an item
 * whose id is not https://<host>/secrets/<name>, a nextLink that leaves the vault (another
 * host or port, not https, not /secrets). */
KVVM_API enum kvvm_err kvvm_kv_parse_page(const char *body, size_t len, const char *host,
                                          struct kvvm_kv_listing *l, char **next, char *why,
                                          size_t whylen);

#endif
