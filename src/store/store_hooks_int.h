/* Shared by the store backends (store_posix.c, store_windows.c): marking a certificate's
 * renewal hooks, and the once-per-pass hook, due when a version is installed. */
#ifndef KVVM_STORE_HOOKS_INT_H
#define KVVM_STORE_HOOKS_INT_H

#include <jansson.h>
#include "kvvm/installed.h"
#include "kvvm/settings.h"
#include "kvvm/store.h"

/* Before rec is updated for the version res describes (its "sans" still the previous
 * version's; sans the new one's): the hooks of rec are due with the event and what was
 * there before, and res->link joins the pass hook's changed names. Nothing when the hooks
 * folder holds no hook (absent, empty, or only hidden names). */
void store_hooks_due(struct kvvm_installed *st, json_t *rec, const struct kvvm_cert_cfg *cc,
                     const struct kvvm_install_result *res, char *const *sans);

#endif
