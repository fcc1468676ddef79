/* What wakes kvvmd between passes: a stop, new settings, a pass asked for now, or the
 * time of the next pass. On Linux these are SIGTERM/SIGINT, SIGHUP and SIGUSR1; on Windows
 * the service's control handler posts them (service_main_windows.c). */
#ifndef KVVM_WAKE_H
#define KVVM_WAKE_H

#include <stdint.h>
#include "kvvm/err.h"

enum kvvm_wake { KVVM_WAKE_TIMEOUT, KVVM_WAKE_STOP, KVVM_WAKE_RELOAD, KVVM_WAKE_PASS };

KVVM_API void kvvm_wake_init(void);
KVVM_API enum kvvm_wake kvvm_wake_wait(int64_t ms);
KVVM_API void kvvm_wake_post(enum kvvm_wake w);

#endif
