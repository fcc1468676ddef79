/* What the two halves of the Windows service share: the controller (service_windows.c,
 * used by enable, disable, uninstall and the CLI) and the service's own side
 * (service_main_windows.c, in kvvmd). */
#ifndef KVVM_WINDOWS_SERVICE_INT_H
#define KVVM_WINDOWS_SERVICE_INT_H

#include <windows.h>

/* Not Microsoft's `akvvm_service`: both extensions may sit on one machine. */
#define KVVM_SVC_NAME L"kvvmd"

/* User control codes (128-255 are the service's own): the Windows counterparts of SIGHUP
 * (read the settings again) and SIGUSR1 (a pass now). */
#define KVVM_SVC_CTRL_RELOAD 128
#define KVVM_SVC_CTRL_PASS 129

/* How long a stop may take: kvvmd finishes the install in progress first. The service
 * announces it as its wait hint; the controller kills the process after it. */
#define KVVM_SVC_STOP_GRACE_MS 30000

#endif
