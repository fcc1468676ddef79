/* Allocation that cannot fail (logs and exits on OOM, as chrony does: systemd or the next
 * enable restarts us) and wiping of secrets before they are freed. */
#ifndef KVVM_MEM_H
#define KVVM_MEM_H

#include <stddef.h>
#include "kvvm/err.h"

KVVM_API void *kvvm_xmalloc(size_t n);
KVVM_API void *kvvm_xcalloc(size_t n, size_t size);
KVVM_API void *kvvm_xrealloc(void *p, size_t n);
KVVM_API char *kvvm_xstrdup(const char *s);          /* NULL in, NULL out */
KVVM_API char *kvvm_xasprintf(const char *fmt, ...) __attribute__((format(gnu_printf, 1, 2)));
/* Overwrite n bytes in a way the compiler may not drop. NULL-safe. */
KVVM_API void kvvm_wipe(void *p, size_t n);
/* kvvm_wipe, then free. NULL-safe. */
KVVM_API void kvvm_free_secret(void *p, size_t n);
/* Free a NULL-terminated array of strings and the array. NULL-safe. */
KVVM_API void kvvm_strv_free(char **v);
/* Hand memory freed by a pass back to the system before a long sleep (glibc keeps it in the
 * heap otherwise: kvvmd would idle at its pass-time size). */
KVVM_API void kvvm_mem_release(void);

#endif
