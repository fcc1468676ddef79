/* The real clocks. Tests replace these by defining the same kvvm_clock_* functions (see
 * clock.h), so nothing here may be called by another name inside this file. */
#include <errno.h>
#include <time.h>

#include "kvvm/clock.h"

time_t kvvm_clock_now(void) { return time(NULL); }

int64_t kvvm_clock_mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void kvvm_clock_sleep_ms(int64_t ms)
{
  if (ms <= 0)
    return;
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  /* A signal (SIGUSR1, SIGHUP) interrupts the sleep; finish it: callers own the schedule. */
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}
