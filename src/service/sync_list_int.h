/* The steady pass's listing phase inside a sync pass (listing.h holds the rules). */
#ifndef KVVM_SYNC_LIST_INT_H
#define KVVM_SYNC_LIST_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kvvm/installed.h"
#include "kvvm/kv.h"
#include "kvvm/settings.h"

/* Certificate i of cfg (due[i], NULL: all) with token[i] (NULL: none) in group[i] (one per
 * token): list the vaults worth listing and set keep[i] for those their listing shows
 * unchanged since the version recorded; what the listings teach goes to inst. */
void kvvm_sync_list(struct kvvm_installed *inst, const struct kvvm_config *cfg,
                    const bool *due, const char *const *token, const size_t *group,
                    int64_t now, bool *keep);
/* A direct fetch of certificate cc installed or kept sec: what it saw is recorded (when it
 * tells something new, so an unchanged pass writes nothing), asked_at the pass's start. */
void kvvm_sync_saw(struct kvvm_installed *inst, const struct kvvm_cert_cfg *cc,
                   const struct kvvm_secret *sec, int64_t asked_at);

#endif
