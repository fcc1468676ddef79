/* The pass schedule: everything due at first, failures on their own backoff, content
 * failures and given-up hook failures only at the next poll, hooks due again on the
 * backoff, a poll that brings everyone back. */
#include <stdlib.h>

#include "kt.h"
#include "kvvm/clock.h"
#include "kvvm/plan.h"

/* The test owns the monotonic clock (the library calls it through its exported symbol). */
static int64_t fake_now = 1000000;
int64_t kvvm_clock_mono_ms(void) { return fake_now; }

static void schedule_by_outcome(void)
{
  struct kvvm_plan p;
  kvvm_plan_init(&p, 4, 3600);
  bool *due = kvvm_plan_due(&p);
  KT_CHECK(due[0] && due[1] && due[2] && due[3]);
  int64_t poll = p.next_poll_ms;
  KT_CHECK(poll >= fake_now + 3240000 && poll <= fake_now + 3960000);
  p.out[0] = (struct kvvm_cert_outcome){.state = KVVM_CERT_INSTALLED, .err = KVVM_OK};
  p.out[1] = (struct kvvm_cert_outcome){.state = KVVM_CERT_PENDING, .err = KVVM_E_AUTH};
  p.out[2] = (struct kvvm_cert_outcome){.state = KVVM_CERT_FAILED, .err = KVVM_E_CERT};
  p.out[3] = (struct kvvm_cert_outcome){.state = KVVM_CERT_INSTALLED, .err = KVVM_E_HOOK};
  kvvm_plan_done(&p, due);
  free(due);
  KT_CHECK(p.due_ms[0] == poll && p.due_ms[2] == poll && p.due_ms[3] == poll);
  KT_CHECK(p.due_ms[1] >= fake_now + 2500 && p.due_ms[1] <= fake_now + 5000);
  KT_CHECK(kvvm_plan_next(&p) == p.due_ms[1]);
  /* At the retry only the failed one is due; a second failure waits longer. */
  fake_now = p.due_ms[1];
  due = kvvm_plan_due(&p);
  KT_CHECK(!due[0] && due[1] && !due[2] && !due[3]);
  kvvm_plan_done(&p, due);
  free(due);
  KT_CHECK(p.failures[1] == 2 && p.due_ms[1] >= fake_now + 5000);
  /* sync-now: everyone. */
  kvvm_plan_poll_now(&p);
  due = kvvm_plan_due(&p);
  KT_CHECK(due[0] && due[1] && due[2] && due[3]);
  free(due);
  kvvm_plan_free(&p);
}

/* A failed hook still due again is retried on the backoff; one given up waits for the poll. */
static void hook_retries(void)
{
  struct kvvm_plan p;
  kvvm_plan_init(&p, 2, 3600);
  bool *due = kvvm_plan_due(&p);
  int64_t poll = p.next_poll_ms;
  p.out[0] = (struct kvvm_cert_outcome){.state = KVVM_CERT_INSTALLED, .err = KVVM_E_HOOK,
                                        .hook_again = true};
  p.out[1] = (struct kvvm_cert_outcome){.state = KVVM_CERT_INSTALLED, .err = KVVM_E_HOOK};
  kvvm_plan_done(&p, due);
  free(due);
  KT_CHECK(p.due_ms[0] >= fake_now + 2500 && p.due_ms[0] <= fake_now + 5000);
  KT_CHECK(p.due_ms[1] == poll);
  kvvm_plan_free(&p);
}

int main(void)
{
  static const struct kt_case cases[] = {KT_CASE(schedule_by_outcome), KT_CASE(hook_retries)};
  return KT_RUN("plan", cases);
}
