/* The one log: the handler's logFolder/kvvm.log, shared by the commands and kvvmd.
 * Appends with O_APPEND, rotates by size under a lock, gzips rotated files (zlib), and
 * touches no file but its own (the agent writes into the same folder).
 * Before kvvm_log_open() or when it failed, lines go to stderr only.
 * Never log a token, secret value, key or settings body. */
#ifndef KVVM_LOG_H
#define KVVM_LOG_H

#include <stddef.h>
#include "kvvm/err.h"

enum kvvm_log_level { KVVM_LOG_DEBUG, KVVM_LOG_INFO, KVVM_LOG_WARN, KVVM_LOG_ERR };

/* Open <dir>/kvvm.log for this process; component names the writer ("enable", "kvvmd").
 * Creates dir (0700) if missing. */
KVVM_API enum kvvm_err kvvm_log_open(const char *dir, const char *component);
KVVM_API void kvvm_log_close(void);
/* Also copy lines at or above this level to stderr (default: WARN). */
KVVM_API void kvvm_log_set_stderr_level(enum kvvm_log_level lvl);
/* Rotate when the log passes max_bytes; keep `keep` gzipped generations (kvvm.log.1.gz ...). */
KVVM_API void kvvm_log_set_limits(size_t max_bytes, int keep);
KVVM_API void kvvm_log(enum kvvm_log_level lvl, const char *fmt, ...)
    __attribute__((format(gnu_printf, 2, 3)));

#define KVVM_DEBUG(...) kvvm_log(KVVM_LOG_DEBUG, __VA_ARGS__)
#define KVVM_INFO(...) kvvm_log(KVVM_LOG_INFO, __VA_ARGS__)
#define KVVM_WARN(...) kvvm_log(KVVM_LOG_WARN, __VA_ARGS__)
#define KVVM_ERR(...) kvvm_log(KVVM_LOG_ERR, __VA_ARGS__)

#endif
