/* kvvmd: the one long-running process. It serves the sequence number in <package>/mrseq,
 * rewrites that <seq>.status at the end of every pass, reloads on SIGHUP, starts a pass at
 * once on SIGUSR1 and stops on SIGTERM after the work in progress. */
#ifndef KVVM_DAEMON_H
#define KVVM_DAEMON_H

#include "kvvm/err.h"

/* Returns the process exit code. `kvvmd service` serves under the platform's service
 * manager (kvvm_service_dispatch: the Windows SCM); without a verb kvvmd serves in the
 * foreground, as systemd, the detached start and tests run it. */
KVVM_API int kvvm_daemon_main(int argc, char **argv);

#endif
