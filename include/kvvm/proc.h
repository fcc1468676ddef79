/* What a process holding private keys asks of the OS before it reads any (design.md,
 * Security): no core dump, and on Linux not dumpable, so neither a crash nor a same-user
 * debugger (ptrace, /proc/<pid>/mem) can copy a key out of memory. Every entry point calls
 * kvvm_proc_protect first: kvvmd, the five commands and the CLI. Per platform:
 * proc_linux.c, proc_windows.c. */
#ifndef KVVM_PROC_H
#define KVVM_PROC_H

#include <stdbool.h>
#include "kvvm/err.h"

/* Failures are logged (a warning: kvvm still works, only less protected). */
KVVM_API void kvvm_proc_protect(void);
/* This process's id (what kvvmd's pid file records). */
KVVM_API long kvvm_proc_self_id(void);

/* Standard output is a terminal (progress lines are for people, not for logs). */
KVVM_API bool kvvm_proc_stdout_is_tty(void);

#endif
