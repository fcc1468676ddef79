/* Which certificates a pass covers and when the next one is due, for kvvmd and `kvvm run`:
 * all of them when the poll comes round (interval with jitter), a failed one on its own
 * capped backoff, content that cannot be installed only at the next poll (no hammering). */
#ifndef KVVM_PLAN_H
#define KVVM_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kvvm/err.h"
#include "kvvm/sync.h"

struct kvvm_plan {
  size_t n;
  unsigned polling_s;
  struct kvvm_cert_outcome *out;  /* per certificate: what the last pass left */
  unsigned *failures;             /* consecutive failed attempts */
  int64_t *due_ms;                /* when each is next due (monotonic) */
  int64_t next_poll_ms;
};

/* n certificates, all due now. */
KVVM_API void kvvm_plan_init(struct kvvm_plan *p, size_t n, unsigned polling_s);
KVVM_API void kvvm_plan_free(struct kvvm_plan *p);
/* The certificates due now (a new array of n; free it); starts the next poll interval when
 * the poll is due. */
KVVM_API bool *kvvm_plan_due(struct kvvm_plan *p);
/* After a pass over due: schedule each from its outcome in p->out. */
KVVM_API void kvvm_plan_done(struct kvvm_plan *p, const bool *due);
/* When the next pass is due (monotonic ms). */
KVVM_API int64_t kvvm_plan_next(const struct kvvm_plan *p);
/* A pass for every certificate now (SIGUSR1, kvvm sync-now). */
KVVM_API void kvvm_plan_poll_now(struct kvvm_plan *p);

#endif
