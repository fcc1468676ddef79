/* The Linux service's private half: service_linux.c and unit_linux.c (systemd). */
#ifndef KVVM_SERVICE_INT_H
#define KVVM_SERVICE_INT_H

#include <stdbool.h>
#include "kvvm/err.h"

enum kvvm_service_mode { KVVM_SVC_DETACHED, KVVM_SVC_SYSTEMD };

/* systemd when /run/systemd/system exists; KVVM_SERVICE_MODE=systemd|detached overrides
 * (a documented testing aid). */
enum kvvm_service_mode kvvm_service_mode(void);

/* systemd half (unit_linux.c), used by service_linux.c. */
enum kvvm_err kvvm_unit_ensure(const char *root, const char *const *rw_paths,
                               bool running_here, bool reload);
enum kvvm_err kvvm_unit_stop(void);
enum kvvm_err kvvm_unit_remove(const char *root);
/* The environment kvvmd gets: kvvm_service_env's list (service.h) of this process's
 * environment, and PATH (a default when there is none). Free with kvvm_strv_free. */
char **kvvm_service_env_linux(void);
/* Run argv (argv[0] looked up on PATH), wait up to timeout_s; returns the exit status,
 * or -1 if it could not run or was killed. */
int kvvm_service_run(const char *const *argv, unsigned timeout_s);

#endif
