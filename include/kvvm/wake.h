/* What wakes kvvmd (and `kvvm run`) between passes: the next pass falling due, or a request
 * from outside. Nothing runs asynchronously: requests wait until the process asks for
 * them, so no handler races the pass. Per platform: wake_posix.c (signals, blocked and
 * taken synchronously), wake_windows.c (events set by the service control handler). */
#ifndef KVVM_WAKE_H
#define KVVM_WAKE_H

#include <stdint.h>
#include "kvvm/err.h"

enum kvvm_wake {
  KVVM_WAKE_TIMEOUT,  /* the time asked for is up */
  KVVM_WAKE_STOP,     /* stop after the work in progress (SIGTERM, SIGINT; service stop) */
  KVVM_WAKE_RELOAD,   /* new settings (SIGHUP; service control 128) */
  KVVM_WAKE_PASS,     /* a pass for every certificate now (SIGUSR1; service control 129) */
};

/* Before anything else in the process: from here on requests wait to be taken. */
KVVM_API void kvvm_wake_init(void);
/* Wait up to ms (-1: no limit) for a request; the stop wins over the others. */
KVVM_API enum kvvm_wake kvvm_wake_wait(int64_t ms);
/* Ask this process for w (Windows: the service control handler; a stop also sets the stop
 * event the pass's sleeps watch). */
KVVM_API void kvvm_wake_post(enum kvvm_wake w);

#endif
