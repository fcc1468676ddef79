/* What the two halves of the Windows service share: the controller (service_windows.c,
 * used by enable, disable, uninstall and the CLI) and the service's own side
 * (service_main_windows.c, in kvvmd). */
#ifndef KVVM_WINDOWS_SERVICE_INT_H
#define KVVM_WINDOWS_SERVICE_INT_H

#include <stdbool.h>
#include <windows.h>

#include "kvvm/err.h"

/* Not Microsoft's `akvvm_service`: both extensions may sit on one machine. */
#define KVVM_SVC_NAME L"kvvmd"

/* User control codes (128-255 are the service's own): the Windows counterparts of SIGHUP
 * (read the settings again) and SIGUSR1 (a pass now). */
#define KVVM_SVC_CTRL_RELOAD 128
#define KVVM_SVC_CTRL_PASS 129

/* How long a stop may take: kvvmd finishes the install in progress first. The service
 * announces it as its wait hint; the controller kills the process after it. */
#define KVVM_SVC_STOP_GRACE_MS 30000

/* kvvmd's environment (service_env_windows.c): <package>\kvvmd.env, written by enable
 * (*changed: it differed, so a running kvvmd must restart to see it) and loaded by the
 * service before it serves. A missing file is no error (the system's environment only). */
#define KVVM_SVC_ENV_NAME "kvvmd.env"
enum kvvm_err kvvm_win_service_env_write(const char *root, bool *changed);
enum kvvm_err kvvm_win_service_env_load(void);

#endif
