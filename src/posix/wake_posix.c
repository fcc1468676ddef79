/* kvvm_wake with signals: SIGTERM and SIGINT stop, SIGHUP reloads, SIGUSR1 asks for a pass.
 * Blocked first thing and taken with sigtimedwait, so the process sleeps without periodic
 * wake-ups and a signal that comes during a pass waits for the end of it. Children inherit
 * the mask: the pass worker takes SIGTERM in its sleeps (kvvm_clock); hooks reset it. */
#include <errno.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "kvvm/wake.h"

static void wake_set(sigset_t *set)
{
  sigemptyset(set);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGHUP);
  sigaddset(set, SIGUSR1);
}

void kvvm_wake_init(void)
{
  sigset_t set;
  wake_set(&set);
  sigprocmask(SIG_BLOCK, &set, NULL);
}

/* sigtimedwait takes the lowest number first (SIGHUP before SIGTERM): a stop that came as
 * well still wins. */
static enum kvvm_wake of_signal(int sig)
{
  sigset_t pending;
  if (sigpending(&pending) == 0 &&
      (sigismember(&pending, SIGTERM) == 1 || sigismember(&pending, SIGINT) == 1))
    return KVVM_WAKE_STOP;
  if (sig == SIGHUP)
    return KVVM_WAKE_RELOAD;
  if (sig == SIGUSR1)
    return KVVM_WAKE_PASS;
  return KVVM_WAKE_STOP;
}

enum kvvm_wake kvvm_wake_wait(int64_t ms)
{
  sigset_t set;
  wake_set(&set);
  if (ms < 0)
    ms = INT64_MAX / 2;
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  for (;;) {
    int sig = sigtimedwait(&set, NULL, &ts);
    if (sig > 0)
      return of_signal(sig);
    if (errno == EAGAIN)
      return KVVM_WAKE_TIMEOUT;
    if (errno != EINTR)
      return KVVM_WAKE_STOP;   /* cannot wait at all: stopping beats spinning */
  }
}

void kvvm_wake_post(enum kvvm_wake w)
{
  static const int sigs[] = {[KVVM_WAKE_STOP] = SIGTERM, [KVVM_WAKE_RELOAD] = SIGHUP,
                             [KVVM_WAKE_PASS] = SIGUSR1};
  if (w != KVVM_WAKE_TIMEOUT)
    kill(getpid(), sigs[w]);
}
