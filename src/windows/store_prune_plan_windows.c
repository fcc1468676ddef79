/* Which old versions of one certificate go (the decision alone, no I/O: unit-tested in
 * tests/windows/test_store_prune_plan.c). Kept: the current version, and the newest others
 * up to the retention (the current counts, so retain 2 keeps it and the one before). Of the
 * rest, only what the record lists is ever looked at (a certificate kvvm did not install is
 * not in "versions"), and one of them
 *   - named by an HTTP.sys SSL binding stays (a site would lose its certificate);
 *   - when the bindings could not be read, stays until they can (never removed blind);
 *   - else goes; its key too, unless another certificate in a store kvvm records names the
 *     same provider and container (wine puts every import of a keyset in one container; on
 *     Windows, the same PFX imported twice), or the record names no key. */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "windows/store_int.h"

static bool same_ci(const char *a, const char *b) { return a && b && strcasecmp(a, b) == 0; }
static bool same(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

static const char *bound_by(const struct store_win_prune_in *in, const char *thumb)
{
  for (size_t i = 0; i < in->nbindings; i++)
    if (same_ci(in->bindings[i].thumbprint, thumb))
      return in->bindings[i].name;
  return NULL;
}

/* The user is one of this record's versions that goes in this plan: it does not keep a key. */
static bool goes(const struct store_win_prune_in *in, const struct store_win_prune_step *step,
                 const struct store_win_key_user *u)
{
  if (!same(u->store_dir, in->store_dir))
    return false;
  for (size_t i = 0; i < in->nv; i++)
    if (step[i].what == STORE_WIN_REMOVE && same_ci(in->v[i].thumbprint, u->thumbprint))
      return true;
  return false;
}

static const struct store_win_key_user *other_user(const struct store_win_prune_in *in,
                                                   const struct store_win_prune_step *step,
                                                   const struct store_win_prune_ver *v)
{
  for (size_t i = 0; i < in->nusers; i++) {
    const struct store_win_key_user *u = &in->users[i];
    if (same(u->key_container, v->key_container) && same_ci(u->key_provider, v->key_provider) &&
        !goes(in, step, u))
      return u;
  }
  return NULL;
}

/* Beyond the retention: bound, postponed or removed (keys decided once all removals are). */
static size_t beyond(const struct store_win_prune_in *in, size_t i,
                     struct store_win_prune_step *step)
{
  if (!in->bindings_known) {
    step->what = STORE_WIN_POSTPONE;
  } else if ((step->binding = bound_by(in, in->v[i].thumbprint)) != NULL) {
    step->what = STORE_WIN_KEEP_BOUND;
  } else {
    step->what = STORE_WIN_REMOVE;
    return 1;
  }
  return 0;
}

size_t store_win_prune_plan(const struct store_win_prune_in *in, struct store_win_prune_step *step)
{
  unsigned kept = 1;  /* the current version, listed or not */
  size_t removed = 0;
  memset(step, 0, in->nv * sizeof *step);
  for (size_t i = in->nv; i-- > 0;) {
    if (!in->v[i].thumbprint || same_ci(in->v[i].thumbprint, in->current))
      continue;  /* STORE_WIN_KEEP: the current one, or an entry that names no certificate */
    if (kept < in->retain)
      kept++;
    else
      removed += beyond(in, i, &step[i]);
  }
  for (size_t i = 0; i < in->nv; i++) {
    const struct store_win_prune_ver *v = &in->v[i];
    if (step[i].what != STORE_WIN_REMOVE || !v->key_container || !v->key_container[0])
      continue;
    step[i].key_user = other_user(in, step, v);
    step[i].delete_key = step[i].key_user == NULL;
  }
  return removed;
}
