/* Time, read through this one module (design.md, Network): production binaries have no time
 * knobs; a test that needs another clock defines these functions itself, and because the
 * library calls them through its exported (interposable) symbols, the test's definitions
 * win at link time. */
#ifndef KVVM_CLOCK_H
#define KVVM_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "kvvm/err.h"

/* Wall-clock time, Unix seconds: token expiry, secret nbf/exp. */
KVVM_API time_t kvvm_clock_now(void);
/* A monotonic clock in milliseconds: deadlines and retry schedules. */
KVVM_API int64_t kvvm_clock_mono_ms(void);
/* Sleep ms milliseconds (backoff between retries). In a process that blocks SIGTERM and
 * SIGINT (kvvmd), either one ends the sleep at once and makes kvvm_clock_stopping() true,
 * after which sleeps return at once so the retry loops wind down. */
KVVM_API void kvvm_clock_sleep_ms(int64_t ms);
/* A stop was asked for during a sleep: kvvmd exits after the work in progress. */
KVVM_API bool kvvm_clock_stopping(void);

#endif
