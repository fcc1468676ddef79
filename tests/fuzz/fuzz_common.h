/* Shared by the libFuzzer targets: the inputs are hostile by design, so the library's
 * error lines (one per rejected input) would only bury libFuzzer's own output. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include "kvvm/log.h"

static inline void fuzz_quiet(void)
{
  static int quiet;
  if (!quiet) {
    kvvm_log_set_stderr_level(KVVM_LOG_ERR + 1);
    quiet = 1;
  }
}

#endif
