/* Random bytes from the operating system (getrandom on Linux, the system-preferred RNG of
 * BCrypt on Windows): jitter seeds today, so scale set instances do not act in lockstep. */
#ifndef KVVM_RAND_H
#define KVVM_RAND_H

#include <stddef.h>
#include "kvvm/err.h"

/* Fill buf with n random bytes. Never blocks: before the kernel's pool is ready (early
 * boot) it fails with KVVM_E_IO, logged, and the caller decides what a fallback costs. */
KVVM_API enum kvvm_err kvvm_rand_bytes(void *buf, size_t n);

#endif
