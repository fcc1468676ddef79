/* Retry and poll delays: bounds, growth, cap, and spread. */
#include <stdint.h>

#include "kt.h"
#include "kvvm/sched.h"

static void first_retry_about_5s(void)
{
  KT_CHECK(kvvm_sched_retry_ms(1, 0) == 2500);
  KT_CHECK(kvvm_sched_retry_ms(1, UINT32_MAX) <= 5000);
  KT_CHECK(kvvm_sched_retry_ms(1, 2500) == 5000);
}

static void doubles_then_caps(void)
{
  int64_t prev_max = 0;
  for (unsigned f = 1; f <= 12; f++) {
    int64_t lo = kvvm_sched_retry_ms(f, 0), hi = kvvm_sched_retry_ms(f, UINT32_MAX - 1);
    KT_CHECK(lo > 0 && hi <= 300000 && lo <= hi);
    KT_CHECK(hi >= prev_max / 2);
    prev_max = hi > prev_max ? hi : prev_max;
  }
  KT_CHECK(kvvm_sched_retry_ms(7, 0) == 150000);   /* 5 s * 2^6 = 320 s, capped to 300 s */
  KT_CHECK(kvvm_sched_retry_ms(1000, 0) == 150000);
  KT_CHECK(kvvm_sched_retry_ms(3, 0) == 10000);    /* 20 s window: 10..20 s */
}

static void poll_within_ten_percent(void)
{
  for (uint32_t r = 0; r < 100000; r += 997) {
    int64_t d = kvvm_sched_poll_ms(3600, r * 2654435761u);
    KT_CHECK(d >= 3240000 && d <= 3960000);
  }
  KT_CHECK(kvvm_sched_poll_ms(60, 0) == 54000);
}

/* A scale set of 100 instances does not poll in lockstep: the delays spread over the window. */
static void spreads(void)
{
  int64_t lo = INT64_MAX, hi = 0;
  for (int i = 0; i < 100; i++) {
    int64_t d = kvvm_sched_poll_ms(3600, kvvm_sched_random());
    lo = d < lo ? d : lo;
    hi = d > hi ? d : hi;
  }
  KT_CHECK(hi - lo > 300000);
}

int main(void)
{
  static const struct kt_case cases[] = {KT_CASE(first_retry_about_5s), KT_CASE(doubles_then_caps),
                                         KT_CASE(poll_within_ten_percent), KT_CASE(spreads)};
  return KT_RUN("sched", cases);
}
