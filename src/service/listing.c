/* The steady pass's choice and its change detection (listing.h): pure functions. */
#include <string.h>
#include <strings.h>

#include "kvvm/listing.h"

static const struct kvvm_listing_vault *vault_of(const struct kvvm_listing_vault *v,
                                                 size_t nv, const char *host)
{
  for (size_t i = 0; i < nv; i++)
    if (v[i].host && strcasecmp(v[i].host, host) == 0)
      return &v[i];
  return NULL;
}

bool kvvm_listing_eligible(const struct kvvm_listing_cert *c,
                           const struct kvvm_listing_vault *vaults, size_t nv, int64_t now)
{
  const struct kvvm_listing_vault *v = vault_of(vaults, nv, c->host);
  if (c->pinned || !c->installed || !c->seen.created || !c->seen.updated || !c->seen.asked_at)
    return false;
  if (now - c->seen.asked_at >= KVVM_LISTING_DAY_S || now < c->seen.asked_at)
    return false;   /* the daily direct ask; a clock set back is not trusted either */
  if (c->seen.asked_at <= c->seen.updated + KVVM_LISTING_MARGIN_S)
    return false;   /* ambiguous whatever the listing says: no page is worth it */
  return !(v && v->refused_at && now - v->refused_at < KVVM_LISTING_DAY_S &&
           now >= v->refused_at);
}

/* The pick for c's vault and group, made when new. */
static struct kvvm_listing_pick *pick_for(struct kvvm_listing_pick *picks, size_t *np,
                                          const struct kvvm_listing_cert *c)
{
  for (size_t k = 0; k < *np; k++)
    if (picks[k].group == c->group && strcasecmp(picks[k].host, c->host) == 0)
      return &picks[k];
  picks[*np] = (struct kvvm_listing_pick){.host = c->host, .group = c->group};
  return &picks[(*np)++];
}

/* Pages a listing of the vault is expected to cost: what the last one counted (a vault may
 * hold many secrets kvvm does not observe, and Key Vault sends empty pages too), else one
 * page per 25 certificates. */
static size_t pages_of(const struct kvvm_listing_pick *p, const struct kvvm_listing_vault *v,
                       size_t nv)
{
  const struct kvvm_listing_vault *known = vault_of(v, nv, p->host);
  if (known && known->pages)
    return known->pages;
  return (p->certs + KVVM_KV_LIST_PAGE - 1) / KVVM_KV_LIST_PAGE;
}

size_t kvvm_listing_choose(const struct kvvm_listing_cert *certs, size_t n,
                           const struct kvvm_listing_vault *vaults, size_t nv, int64_t now,
                           bool *by_list, struct kvvm_listing_pick *picks)
{
  size_t np = 0, kept = 0;
  for (size_t i = 0; i < n; i++)
    if ((by_list[i] = kvvm_listing_eligible(&certs[i], vaults, nv, now)))
      pick_for(picks, &np, &certs[i])->certs++;
  for (size_t k = 0; k < np; k++) {
    if (pages_of(&picks[k], vaults, nv) >= picks[k].certs)
      continue;   /* asking each secret is no dearer */
    picks[k].max_pages = picks[k].certs - 1;
    picks[kept++] = picks[k];
  }
  for (size_t i = 0; i < n; i++) {
    bool listed = false;
    for (size_t k = 0; by_list[i] && k < kept && !listed; k++)
      listed = picks[k].group == certs[i].group && strcasecmp(picks[k].host, certs[i].host) == 0;
    by_list[i] = listed;
  }
  return kept;
}

enum kvvm_listed kvvm_listing_judge(const struct kvvm_listing_cert *c,
                                    const struct kvvm_kv_item *item, int64_t now)
{
  if (!item)
    return KVVM_LISTED_MISSING;
  if (!item->enabled || item->nbf > now)
    return KVVM_LISTED_DISABLED;
  if (item->created != c->seen.created || item->updated != c->seen.updated)
    return KVVM_LISTED_CHANGED;
  if (!c->seen.asked_at || c->seen.asked_at <= item->updated + KVVM_LISTING_MARGIN_S)
    return KVVM_LISTED_AMBIGUOUS;
  return KVVM_LISTED_SAME;
}

const char *kvvm_listing_words(enum kvvm_listed v)
{
  static const char *const words[] = {"unchanged", "not listed", "disabled or not yet valid",
                                      "changed", "listed with the same times as a version "
                                      "fetched too soon after them to tell"};
  return (unsigned)v < sizeof words / sizeof *words ? words[v] : "?";
}

bool kvvm_listing_learn(struct kvvm_listing_vault *v, enum kvvm_err rc,
                        const struct kvvm_kv_listing *l, int64_t now)
{
  struct kvvm_listing_vault was = *v;
  if (l->refused)
    v->refused_at = now;
  else if (rc == KVVM_OK)
    v->refused_at = 0;
  if (rc == KVVM_OK)
    v->pages = l->pages ? l->pages : 1;
  else if (l->cut)
    v->pages = l->pages + 1;   /* at least: enough to choose per secret next time */
  return was.refused_at != v->refused_at || was.pages != v->pages;
}

bool kvvm_listing_seen_stale(const struct kvvm_listing_seen *old,
                             const struct kvvm_listing_seen *now_seen)
{
  if (old->created != now_seen->created || old->updated != now_seen->updated)
    return true;
  if (!old->asked_at || old->asked_at <= old->updated + KVVM_LISTING_MARGIN_S)
    return true;
  return now_seen->asked_at - old->asked_at >= KVVM_LISTING_DAY_S / 2 ||
         now_seen->asked_at < old->asked_at;
}
