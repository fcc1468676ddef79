/* Service control for kvvmd: exactly one instance (Linux: a systemd unit or detached;
 * Windows: a service). kvvmd, and `kvvm run` in its place, holds <state>/kvvmd.lock while it
 * runs and writes <state>/kvvmd.pid; that pair is how every command and the CLI tell whether
 * it runs and from which package folder. The pair: service_lock.c; the environment handed
 * on: service_env.c; the rest per platform
 * (Linux: service_linux.c, unit_linux.c, whose private half is linux/service_int.h). */
#ifndef KVVM_SERVICE_H
#define KVVM_SERVICE_H

#include <stdbool.h>
#include "kvvm/err.h"

struct kvvm_daemon {
  bool running;
  long pid;
  char *exe;    /* the executable it runs from (its package folder tells the version) */
};

struct kvvm_lock;

/* <state>/kvvmd.lock and <state>/kvvmd.pid, as new strings. */
KVVM_API char *kvvm_service_lock_path(void);
KVVM_API char *kvvm_service_pid_path(void);
/* Take the single-instance lock for this process (kvvmd, or `kvvm run` in its place) and
 * write the pid file naming exe. KVVM_E_LOCKED when a live kvvmd or run holds it (logged
 * as information: giving way is not an error). wait_for_dead: while the holder's process is
 * gone, wait (bounded) for the lock to be let go. */
KVVM_API enum kvvm_err kvvm_service_hold(const char *exe, bool wait_for_dead,
                                         struct kvvm_lock **out);
/* Remove the pid file and let go of the lock. NULL-safe. */
KVVM_API void kvvm_service_release(struct kvvm_lock *l);

/* The variables of env (NULL-terminated "NAME=value" strings, UTF-8) that kvvmd must see:
 * proxies, IDENTITY_ENDPOINT, IMDS_ENDPOINT and the KVVM_* testing aids. The service manager
 * starts kvvmd without the agent's environment, so enable hands these on. A new
 * NULL-terminated array (free with kvvm_strv_free). service_env.c. */
KVVM_API char **kvvm_service_env(const char *const *env);

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

#endif
