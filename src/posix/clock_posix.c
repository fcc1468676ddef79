/* The real clocks on POSIX (clock_windows.c is the Windows twin). Tests replace these by
 * defining the same kvvm_clock_* functions (see clock.h), so nothing here may be called by
 * another name inside this file, and the four stay in one object: a static link that takes
 * the test's definitions must not need this file for anything else. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <time.h>

#include "kvvm/clock.h"

time_t kvvm_clock_now(void) { return time(NULL); }

int64_t kvvm_clock_mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* kvvmd blocks SIGTERM and SIGINT and takes them synchronously; a backoff sleep inside a
 * pass takes them too, so a stop is not held up by retries (up to minutes under throttling).
 * Where they are not blocked (the handler commands), they act as usual. */
static volatile sig_atomic_t stopping;

bool kvvm_clock_stopping(void) { return stopping; }

void kvvm_clock_sleep_ms(int64_t ms)
{
  if (ms <= 0 || stopping)
    return;
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  sigset_t stop, blocked;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigprocmask(SIG_BLOCK, NULL, &blocked);
  if (sigismember(&blocked, SIGTERM) && sigismember(&blocked, SIGINT)) {
    int64_t end = kvvm_clock_mono_ms() + ms;
    for (int64_t left = ms; left > 0; left = end - kvvm_clock_mono_ms()) {
      struct timespec t = {(time_t)(left / 1000), (long)(left % 1000) * 1000000L};
      if (sigtimedwait(&stop, NULL, &t) > 0) {
        stopping = 1;
        return;
      }
    }
    return;
  }
  /* A signal (SIGUSR1, SIGHUP) interrupts the sleep; finish it: callers own the schedule. */
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}
