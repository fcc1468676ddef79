/* Backoff and poll delays. Jitter is "equal jitter": half the delay is fixed and half random,
 * so a retry is never immediate yet a scale set spreads out. */

#include "kvvm/rand.h"
#include "kvvm/sched.h"

int64_t kvvm_sched_retry_ms(unsigned failures, uint32_t rnd)
{
  int64_t base = KVVM_SCHED_RETRY_FIRST_MS;
  for (unsigned i = 1; i < failures && base < KVVM_SCHED_RETRY_CAP_MS; i++)
    base *= 2;
  if (base > KVVM_SCHED_RETRY_CAP_MS)
    base = KVVM_SCHED_RETRY_CAP_MS;
  return base / 2 + (int64_t)(rnd % (uint32_t)(base / 2 + 1));
}

int64_t kvvm_sched_poll_ms(unsigned polling_s, uint32_t rnd)
{
  int64_t base = (int64_t)polling_s * 1000;
  int64_t span = base * KVVM_SCHED_POLL_JITTER_PCT / 100;
  return base - span + (int64_t)(rnd % (uint32_t)(2 * span + 1));
}

uint32_t kvvm_sched_random(void)
{
  uint32_t v = 0;
  /* A failure (logged) leaves a predictable value, which only costs jitter quality. */
  if (kvvm_rand_bytes(&v, sizeof(v)) != KVVM_OK)
    v ^= 0x9e3779b9u;
  return v;
}
