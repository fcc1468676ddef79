/* The pass schedule shared by kvvmd and `kvvm run`. */
#include <stdlib.h>
#include <string.h>

#include "kvvm/clock.h"
#include "kvvm/mem.h"
#include "kvvm/plan.h"
#include "kvvm/sched.h"

void kvvm_plan_init(struct kvvm_plan *p, size_t n, unsigned polling_s)
{
  memset(p, 0, sizeof(*p));
  p->n = n;
  p->polling_s = polling_s;
  p->out = kvvm_xcalloc(n ? n : 1, sizeof(*p->out));
  p->failures = kvvm_xcalloc(n ? n : 1, sizeof(*p->failures));
  p->due_ms = kvvm_xcalloc(n ? n : 1, sizeof(*p->due_ms));
  p->next_poll_ms = kvvm_clock_mono_ms();
}

void kvvm_plan_free(struct kvvm_plan *p)
{
  kvvm_outcomes_clear(p->out, p->n);
  free(p->out);
  free(p->failures);
  free(p->due_ms);
  memset(p, 0, sizeof(*p));
}

bool *kvvm_plan_due(struct kvvm_plan *p)
{
  int64_t now = kvvm_clock_mono_ms();
  bool poll = now >= p->next_poll_ms;
  bool *due = kvvm_xcalloc(p->n ? p->n : 1, sizeof(*due));
  for (size_t i = 0; i < p->n; i++)
    due[i] = poll || p->due_ms[i] <= now;
  if (poll)
    p->next_poll_ms = now + kvvm_sched_poll_ms(p->polling_s, kvvm_sched_random());
  return due;
}

void kvvm_plan_done(struct kvvm_plan *p, const bool *due)
{
  int64_t now = kvvm_clock_mono_ms();
  for (size_t i = 0; i < p->n; i++) {
    if (!due[i])
      continue;
    const struct kvvm_cert_outcome *o = &p->out[i];
    /* A failed hook is retried only while it is due again (a fetch of the same version
     * costs one request and writes nothing); a grant error waits for the next poll. */
    bool retry = o->err != KVVM_OK && o->state != KVVM_CERT_FAILED && o->err != KVVM_E_GRANT &&
                 (o->err != KVVM_E_HOOK || o->hook_again);
    p->failures[i] = retry ? p->failures[i] + 1 : 0;
    p->due_ms[i] = retry ? now + kvvm_sched_retry_ms(p->failures[i], kvvm_sched_random())
                         : p->next_poll_ms;
  }
}

int64_t kvvm_plan_next(const struct kvvm_plan *p)
{
  int64_t t = p->next_poll_ms;
  for (size_t i = 0; i < p->n; i++)
    t = p->due_ms[i] < t ? p->due_ms[i] : t;
  return t;
}

void kvvm_plan_poll_now(struct kvvm_plan *p) { p->next_poll_ms = kvvm_clock_mono_ms(); }
