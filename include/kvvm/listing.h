/* The steady pass's choice: which vaults to list, and after a listing which certificates
 * to fetch (README, "How it runs"; kv_list.h). Pure: time comes in as an argument.
 *
 * A vault is listed for the certificates of one identity when its pages (the count of its
 * last listing, else one per 25 such certificates) cost fewer requests than asking each
 * secret. A certificate is left out of any listing, and asked directly, when its URL pins a
 * version, when nothing was installed yet or the installed record lacks what its fetch saw
 * (an older record), when it was last asked directly a day ago or more (so every secret is
 * asked at least once a day), when what it saw is ambiguous (below: no listing could keep
 * it), or when its vault refused to list (403) less than a day ago.
 *
 * After a listing a certificate is kept as installed only when its vault lists its secret,
 * enabled, valid now, with the very `created` and `updated` times of the version installed,
 * and that is not ambiguous. Ambiguous: the direct fetch that saw the version came within
 * KVVM_LISTING_MARGIN_S of its `updated` time. A second version made in the same second
 * would be listed with the same times while the fetch could have returned the first (whole
 * seconds); the margin also covers the VM's clock being off from Key Vault's. Every other
 * case (missing, disabled, not yet valid, changed, ambiguous) is asked directly, as before. */
#ifndef KVVM_LISTING_H
#define KVVM_LISTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kvvm/err.h"
#include "kvvm/kv_list.h"

#define KVVM_LISTING_DAY_S 86400
#define KVVM_LISTING_MARGIN_S 300

/* What a direct fetch of a certificate's secret saw: the version's times (Key Vault's,
 * Unix seconds) and when the pass that fetched it started (this machine's clock). */
struct kvvm_listing_seen {
  int64_t created, updated, asked_at;
};

struct kvvm_listing_cert {
  const char *host, *name;     /* the secret's vault and name */
  size_t group;                /* certificates listed together share one token (identity) */
  bool pinned;                 /* the URL names a version */
  bool installed;              /* a version is installed */
  struct kvvm_listing_seen seen;  /* zeros when unknown */
};

/* What kvvm remembers of a vault between passes (installed.json's "vaults"). */
struct kvvm_listing_vault {
  const char *host;
  int64_t refused_at;          /* the vault last refused to list then (0: never) */
  size_t pages;                /* pages of its last listing (0: unknown) */
};

/* One listing to make: a vault, for the certificates of one group. */
struct kvvm_listing_pick {
  const char *host;
  size_t group, certs;         /* the certificates it decides */
  size_t max_pages;            /* stop beyond this (certs - 1): never dearer than asking */
};

enum kvvm_listed {
  KVVM_LISTED_SAME,            /* keep the installed version */
  KVVM_LISTED_MISSING,         /* not in the listing */
  KVVM_LISTED_DISABLED,        /* the newest version is disabled or not yet valid */
  KVVM_LISTED_CHANGED,         /* other times: a new version, or this one updated */
  KVVM_LISTED_AMBIGUOUS,       /* the same times, but they cannot tell (see above) */
};

/* Whether certificate c may be decided by a listing at all (see above). */
KVVM_API bool kvvm_listing_eligible(const struct kvvm_listing_cert *c,
                                    const struct kvvm_listing_vault *vaults, size_t nv,
                                    int64_t now);
/* Fill by_list[i] (certificate i is decided by its vault's listing) and picks (room for n;
 * one per vault and group worth listing); returns the number of picks. */
KVVM_API size_t kvvm_listing_choose(const struct kvvm_listing_cert *certs, size_t n,
                                    const struct kvvm_listing_vault *vaults, size_t nv,
                                    int64_t now, bool *by_list,
                                    struct kvvm_listing_pick *picks);
/* The verdict for c given its vault's item (NULL: not listed). */
KVVM_API enum kvvm_listed kvvm_listing_judge(const struct kvvm_listing_cert *c,
                                             const struct kvvm_kv_item *item, int64_t now);
/* Words for a verdict, for the log ("changed", ...). */
KVVM_API const char *kvvm_listing_words(enum kvvm_listed v);
/* What a listing teaches about its vault (rc and l from kvvm_kv_list): v updated; true when
 * it changed. */
KVVM_API bool kvvm_listing_learn(struct kvvm_listing_vault *v, enum kvvm_err rc,
                                 const struct kvvm_kv_listing *l, int64_t now);
/* Whether a direct fetch that saw `now_seen` must be written over `old`: new times, an
 * ambiguity the new fetch may lift, or half a day since the last write (the daily rule
 * needs a recent asked_at, an unchanged pass should write nothing). */
KVVM_API bool kvvm_listing_seen_stale(const struct kvvm_listing_seen *old,
                                      const struct kvvm_listing_seen *now_seen);

#endif
