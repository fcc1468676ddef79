/* Service control for kvvmd: exactly one instance, run by systemd when PID 1 is systemd
 * (a handler-owned, hardened unit) and detached (setsid, double fork) otherwise.
 * kvvmd holds <state>/kvvmd.lock while it runs and writes <state>/kvvmd.pid; that pair is
 * how every command and the CLI tell whether it runs and from which package folder.
 * Linux implementation: service_linux.c and unit_linux.c. */
#ifndef KVVM_SERVICE_H
#define KVVM_SERVICE_H

#include <stdbool.h>
#include "kvvm/err.h"

enum kvvm_service_mode { KVVM_SVC_DETACHED, KVVM_SVC_SYSTEMD };

struct kvvm_daemon {
  bool running;
  long pid;
  char *exe;    /* the executable it runs from (its package folder tells the version) */
};

/* systemd when /run/systemd/system exists; KVVM_SERVICE_MODE=systemd|detached overrides
 * (a documented testing aid). */
KVVM_API enum kvvm_service_mode kvvm_service_mode(void);
KVVM_API char *kvvm_service_lock_path(void);
KVVM_API char *kvvm_service_pid_path(void);

/* Is kvvmd running, and from where? Fills d (free with kvvm_daemon_clear). */
KVVM_API enum kvvm_err kvvm_service_query(struct kvvm_daemon *d);
KVVM_API void kvvm_daemon_clear(struct kvvm_daemon *d);

/* Make sure <root>/bin/kvvmd runs: start it if it does not run, replace one that runs from
 * another package folder, and ask a running one to reload when `reload` is set.
 * rw_paths (NULL-terminated) are the folders the daemon writes to (systemd sandbox). */
KVVM_API enum kvvm_err kvvm_service_ensure(const char *root, const char *const *rw_paths,
                                           bool reload);
/* Stop kvvmd and wait for it (SIGTERM, SIGKILL after a bound). Idempotent. */
KVVM_API enum kvvm_err kvvm_service_stop(void);
/* Uninstall: stop, and remove the unit and environment file if they run <root>. */
KVVM_API enum kvvm_err kvvm_service_remove(const char *root);
/* Ask a running kvvmd for a pass now (SIGUSR1). KVVM_E_SERVICE when none runs. */
KVVM_API enum kvvm_err kvvm_service_sync_now(void);
/* `kvvmd service`: hand the process to the platform's service manager, which runs
 * serve(argc, argv) as the service and delivers stop, reload and pass-now through kvvm_wake
 * (wake.h). Returns the process exit code. Windows only (the Service Control Manager's
 * dispatcher); elsewhere it refuses with a message. */
KVVM_API int kvvm_service_dispatch(int (*serve)(int argc, char **argv), int argc, char **argv);

/* systemd half (unit_linux.c), used by service_linux.c. */
KVVM_API enum kvvm_err kvvm_unit_ensure(const char *root, const char *const *rw_paths,
                                        bool running_here, bool reload);
KVVM_API enum kvvm_err kvvm_unit_stop(void);
KVVM_API enum kvvm_err kvvm_unit_remove(const char *root);
/* The environment kvvmd gets: proxy variables, IDENTITY_ENDPOINT, IMDS_ENDPOINT and the
 * KVVM_* testing aids, as NULL-terminated "NAME=value" strings (free with kvvm_strv_free). */
KVVM_API char **kvvm_service_env(void);
/* Run argv (argv[0] looked up on PATH), wait up to timeout_s; returns the exit status,
 * or -1 if it could not run or was killed. */
KVVM_API int kvvm_service_run(const char *const *argv, unsigned timeout_s);

#endif
