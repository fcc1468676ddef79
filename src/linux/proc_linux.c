/* kvvm_proc_protect on Linux: RLIMIT_CORE 0 (soft and hard, so nothing in the process can
 * raise it again) and PR_SET_DUMPABLE 0, which also makes /proc/<pid>/ files root-owned and
 * refuses ptrace to anything without CAP_SYS_PTRACE. Children (hooks) keep the core limit;
 * execve makes them dumpable again, which is theirs to decide. */
#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "kvvm/log.h"
#include "kvvm/proc.h"

void kvvm_proc_protect(void)
{
  struct rlimit none = {0, 0};
  if (setrlimit(RLIMIT_CORE, &none) != 0)
    KVVM_WARN("cannot turn core dumps off (setrlimit: %s)", strerror(errno));
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
    KVVM_WARN("cannot mark the process not dumpable (prctl: %s)", strerror(errno));
}

long kvvm_proc_self_id(void) { return (long)getpid(); }

bool kvvm_proc_stdout_is_tty(void) { return isatty(STDOUT_FILENO) == 1; }
