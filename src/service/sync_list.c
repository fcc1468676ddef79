/* The steady pass's listing phase (sync_list_int.h): the certificates due are described as
 * listing.h wants them, the vaults chosen are listed, and what each listing shows decides
 * which certificates need no request of their own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/kv_list.h"
#include "kvvm/listing.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "sync_list_int.h"

struct phase {
  struct kvvm_installed *inst;
  const struct kvvm_config *cfg;
  struct kvvm_listing_cert *certs;   /* per certificate of cfg; host NULL: not considered */
  struct kvvm_listing_vault *vaults; /* what installed.json remembers, per vault seen */
  size_t nv;
  int64_t now;
};

static void remember_vault(struct phase *ph, const char *host)
{
  for (size_t k = 0; k < ph->nv; k++)
    if (strcmp(ph->vaults[k].host, host) == 0)
      return;
  struct kvvm_listing_vault *v = &ph->vaults[ph->nv++];
  v->host = host;
  kvvm_installed_get_vault(ph->inst, host, &v->refused_at, &v->pages);
}

/* certs[i] from the settings (which split and checked its URL) and the record. */
static void describe(struct phase *ph, size_t i, size_t group)
{
  const struct kvvm_cert_cfg *cc = &ph->cfg->certs[i];
  struct kvvm_listing_cert *c = &ph->certs[i];
  struct kvvm_installed_cert rec;
  *c = (struct kvvm_listing_cert){.host = cc->vault_host, .name = cc->secret_name,
                                  .group = group, .pinned = cc->version != NULL};
  if (kvvm_installed_get(ph->inst, cc->url, cc->store_dir, &rec) && rec.version)
    c->installed = kvvm_installed_get_seen(ph->inst, cc->url, cc->store_dir, rec.version,
                                           &c->seen.created, &c->seen.updated,
                                           &c->seen.asked_at);
  kvvm_installed_park(ph->inst);   /* one parsed record at a time, as the fetches do */
  remember_vault(ph, cc->vault_host);
}

/* Keep what the listing shows unchanged, for the certificates this pick decides. */
static size_t judge_all(struct phase *ph, const struct kvvm_listing_pick *pk,
                        const struct kvvm_kv_listing *l, const bool *by_list, bool *keep)
{
  size_t kept = 0, n = ph->cfg->n_certs;
  for (size_t i = 0; i < n; i++) {
    const struct kvvm_listing_cert *c = &ph->certs[i];
    if (!by_list[i] || c->group != pk->group || strcmp(c->host, pk->host) != 0)
      continue;
    enum kvvm_listed v = kvvm_listing_judge(c, kvvm_kv_listing_find(l, c->name), ph->now);
    keep[i] = v == KVVM_LISTED_SAME;
    kept += keep[i];
    if (!keep[i])
      KVVM_DEBUG("%s: %s in the listing of vault %s: asked directly",
                 ph->cfg->certs[i].url, kvvm_listing_words(v), c->host);
  }
  return kept;
}

static void list_one(struct phase *ph, const struct kvvm_listing_pick *pk, const char *token,
                     const bool *by_list, bool *keep)
{
  struct kvvm_kv_listing l;
  char why[1600];
  enum kvvm_err rc = kvvm_kv_list(pk->host, token, 0, pk->max_pages, &l, why, sizeof why);
  for (size_t k = 0; k < ph->nv; k++)
    if (strcmp(ph->vaults[k].host, pk->host) == 0 &&
        kvvm_listing_learn(&ph->vaults[k], rc, &l, ph->now))
      kvvm_installed_set_vault(ph->inst, pk->host, ph->vaults[k].refused_at,
                               ph->vaults[k].pages);
  if (rc == KVVM_OK)
    KVVM_INFO("key vault: %zu of %zu certificate(s) in vault %s unchanged by its listing",
              judge_all(ph, pk, &l, by_list, keep), pk->certs, pk->host);
  kvvm_kv_listing_clear(&l);
}

void kvvm_sync_list(struct kvvm_installed *inst, const struct kvvm_config *cfg,
                    const bool *due, const char *const *token, const size_t *group,
                    int64_t now, bool *keep)
{
  size_t n = cfg->n_certs, m = 0;
  struct phase ph = {inst, cfg, kvvm_xcalloc(n + 1, sizeof *ph.certs),
                     kvvm_xcalloc(n + 1, sizeof *ph.vaults), 0, now};
  struct kvvm_listing_cert *some = kvvm_xcalloc(n + 1, sizeof *some);
  size_t *at = kvvm_xcalloc(n + 1, sizeof *at);
  for (size_t i = 0; i < n; i++)
    if ((!due || due[i]) && token[i]) {
      describe(&ph, i, group[i]);
      some[m] = ph.certs[i];
      at[m++] = i;
    }
  bool *by = kvvm_xcalloc(n + 1, sizeof *by), *by_i = kvvm_xcalloc(n + 1, sizeof *by_i);
  struct kvvm_listing_pick *picks = kvvm_xcalloc(n + 1, sizeof *picks);
  size_t np = kvvm_listing_choose(some, m, ph.vaults, ph.nv, now, by, picks);
  for (size_t k = 0; k < m; k++)
    by_i[at[k]] = by[k];
  for (size_t k = 0; k < np; k++)
    for (size_t i = 0; i < n; i++)
      if (by_i[i] && group[i] == picks[k].group) {
        list_one(&ph, &picks[k], token[i], by_i, keep);
        break;
      }
  free(by);
  free(by_i);
  free(picks);
  free(some);
  free(at);
  free(ph.certs);
  free(ph.vaults);
}

void kvvm_sync_saw(struct kvvm_installed *inst, const struct kvvm_cert_cfg *cc,
                   const struct kvvm_secret *sec, int64_t asked_at)
{
  struct kvvm_listing_seen old, now = {sec->created, sec->updated, asked_at};
  if (!sec->version || !sec->created || !sec->updated)
    return;
  kvvm_installed_get_seen(inst, cc->url, cc->store_dir, sec->version, &old.created,
                          &old.updated, &old.asked_at);
  if (kvvm_listing_seen_stale(&old, &now))
    kvvm_installed_set_seen(inst, cc->url, cc->store_dir, sec->version, now.created,
                            now.updated, now.asked_at);
}
