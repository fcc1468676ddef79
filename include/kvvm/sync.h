/* One sync pass: for the certificates that are due, a token per identity and cloud
 * (identity; a certificate's authenticationOverride is its own identity), the secrets
 * (kv, many in flight), the bundles (certmat), the install (store), and one outcome per
 * certificate in words. It knows nothing of status files or schedules: kvvmd turns the
 * outcomes into both. */
#ifndef KVVM_SYNC_H
#define KVVM_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include "kvvm/err.h"
#include "kvvm/settings.h"
#include "kvvm/store.h"

/* How a certificate stands after a pass. */
enum kvvm_cert_state {
  KVVM_CERT_INSTALLED,  /* the latest (or pinned) version is in place */
  KVVM_CERT_PENDING,    /* not installed, and waiting can fix it: access, network, throttling,
                           a secret not there (yet) or not enabled (yet) */
  KVVM_CERT_FAILED,     /* the content cannot be installed (corrupt, unsupported, key and
                           certificate do not match) or the store cannot be used: waiting
                           cannot fix it */
};

struct kvvm_cert_outcome {
  enum kvvm_cert_state state;
  enum kvvm_err err;        /* KVVM_OK, or why the last attempt failed */
  bool changed;             /* a new version was installed in this pass */
  bool in_place;            /* some version of it is installed (this pass or before) */
  bool hook_again;          /* its hooks failed and are due again: retry on the backoff */
  char version[80];         /* what is installed ("" if nothing) */
  char thumbprint[41];
  time_t not_after;
  time_t installed_at;      /* when the version in place was installed (0: none, unknown) */
  time_t checked_at;        /* the last pass that asked the vault and found all in order
                               (0: none since kvvmd started); the metrics' last success */
  char *why;                /* the failure in words, NULL when none (kvvm_outcome_why); on
                               the heap, so a thousand healthy certificates cost no text */
  char *note;               /* what the status says beside the version, NULL when nothing:
                               a chain that does not build, renewal links (the record's) */
};

/* Set o->why from a format (an empty result clears it); kvvm_outcome_why reads it ("" when
 * none); kvvm_outcomes_clear frees the texts of n outcomes (not the array). */
KVVM_API void kvvm_outcome_say(struct kvvm_cert_outcome *o, const char *fmt, ...)
    __attribute__((format(gnu_printf, 2, 3)));
KVVM_API const char *kvvm_outcome_why(const struct kvvm_cert_outcome *o);
/* Set o->note to a copy of note (NULL or "" clears it). */
KVVM_API void kvvm_outcome_note(struct kvvm_cert_outcome *o, const char *note);
KVVM_API void kvvm_outcomes_clear(struct kvvm_cert_outcome *out, size_t n);

/* Run one pass over cfg's certificates for which due[i] is true (NULL: all). out[i] is
 * written for every certificate: the ones not due keep what out[i] held. store must be open.
 * Returns the number of certificates that changed. */
KVVM_API size_t kvvm_sync_pass(struct kvvm_store *store, const struct kvvm_config *cfg,
                               const bool *due, struct kvvm_cert_outcome *out);

#endif
