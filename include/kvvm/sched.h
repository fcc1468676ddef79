/* When kvvmd does what: the next poll (the settings' interval with jitter, so a scale set
 * does not poll in lockstep) and retries of failed certificates (capped exponential backoff
 * with jitter: first after about 5 s, at most 5 min, never hammering the vault).
 * Pure arithmetic over a random value the caller supplies, so tests are exact. */
#ifndef KVVM_SCHED_H
#define KVVM_SCHED_H

#include <stdint.h>
#include "kvvm/err.h"

#define KVVM_SCHED_RETRY_FIRST_MS 5000
#define KVVM_SCHED_RETRY_CAP_MS 300000
/* Poll jitter: the interval is stretched or shrunk by up to this many percent. */
#define KVVM_SCHED_POLL_JITTER_PCT 10

/* Delay before retry number `failures` (1 = the first retry); rnd is any 32-bit random. */
KVVM_API int64_t kvvm_sched_retry_ms(unsigned failures, uint32_t rnd);
/* Delay until the next poll for an interval of polling_s seconds. */
KVVM_API int64_t kvvm_sched_poll_ms(unsigned polling_s, uint32_t rnd);
/* A random 32-bit value from the system (kvvm_rand_bytes), for the two functions above. */
KVVM_API uint32_t kvvm_sched_random(void);

#endif
