/* kvvmd as a Windows service. `kvvmd service` hands the main thread to the Service Control
 * Manager's dispatcher; the service's thread runs kvvmd's serve loop, and the control
 * handler (on the dispatcher's thread) turns stop, shutdown and the two user codes into
 * kvvm_wake events, the Windows counterparts of SIGTERM, SIGHUP and SIGUSR1. */
#include <stdbool.h>
#include <windows.h>

#include "kvvm/err.h"
#include "kvvm/log.h"
#include "kvvm/service.h"
#include "kvvm/wake.h"
#include "windows/service_int.h"
#include "windows/win_int.h"

static struct {
  int (*serve)(int argc, char **argv);
  int argc;
  char **argv;
  int exit_code;
  SERVICE_STATUS_HANDLE handle;
  CRITICAL_SECTION lock;   /* the handler's thread and the service's both report */
  DWORD state, checkpoint;
} svc;

static wchar_t svc_name[] = KVVM_SVC_NAME;

/* Tell the SCM where the service is. After STOPPED nothing more: a stop that comes as kvvmd
 * ends on its own must not announce a stop pending of a service that is gone. */
static void report(DWORD state, int exit_code)
{
  EnterCriticalSection(&svc.lock);
  if (svc.state != SERVICE_STOPPED) {
    SERVICE_STATUS st = {SERVICE_WIN32_OWN_PROCESS, state, 0, NO_ERROR, 0, 0, 0};
    if (state == SERVICE_RUNNING)
      st.dwControlsAccepted = SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN;
    if (exit_code) {
      st.dwWin32ExitCode = ERROR_SERVICE_SPECIFIC_ERROR;
      st.dwServiceSpecificExitCode = (DWORD)exit_code;
    }
    /* A stop waits for the install in progress: say how long that may take. */
    if (state == SERVICE_STOP_PENDING) {
      st.dwCheckPoint = ++svc.checkpoint;
      st.dwWaitHint = KVVM_SVC_STOP_GRACE_MS;
    }
    svc.state = state;
    if (!SetServiceStatus(svc.handle, &st)) {
      char buf[200];
      KVVM_ERR("SetServiceStatus: %s", kvvm_win_strerror(GetLastError(), buf, sizeof buf));
    }
  }
  LeaveCriticalSection(&svc.lock);
}

static DWORD WINAPI on_control(DWORD code, DWORD type, LPVOID data, LPVOID ctx)
{
  (void)type;
  (void)data;
  (void)ctx;
  switch (code) {
  case SERVICE_CONTROL_STOP:
  case SERVICE_CONTROL_SHUTDOWN:
    report(SERVICE_STOP_PENDING, 0);
    /* The stop event cuts sleeps short and reaches the pass worker; the wake ends kvvmd's
     * wait between passes. */
    SetEvent(kvvm_win_stop_event());
    kvvm_wake_post(KVVM_WAKE_STOP);
    return NO_ERROR;
  case KVVM_SVC_CTRL_RELOAD:
    kvvm_wake_post(KVVM_WAKE_RELOAD);
    return NO_ERROR;
  case KVVM_SVC_CTRL_PASS:
    kvvm_wake_post(KVVM_WAKE_PASS);
    return NO_ERROR;
  case SERVICE_CONTROL_INTERROGATE:
    return NO_ERROR;
  default:
    return ERROR_CALL_NOT_IMPLEMENTED;
  }
}

static void WINAPI service_main(DWORD argc, LPWSTR *argv)
{
  (void)argc;
  (void)argv;
  svc.handle = RegisterServiceCtrlHandlerExW(svc_name, on_control, NULL);
  if (!svc.handle) {
    char buf[200];
    KVVM_ERR("RegisterServiceCtrlHandlerExW: %s",
             kvvm_win_strerror(GetLastError(), buf, sizeof buf));
    svc.exit_code = kvvm_err_exit_code(KVVM_E_SERVICE);
    return;
  }
  /* Before anything reads a variable: the SCM gave the system's environment, not the
   * agent's. A file that cannot be applied stops the service with the reason logged. */
  if (kvvm_win_service_env_load() != KVVM_OK) {
    svc.exit_code = kvvm_err_exit_code(KVVM_E_SERVICE);
    report(SERVICE_STOPPED, svc.exit_code);
    return;
  }
  /* Before RUNNING: from then on the handler may post. */
  kvvm_wake_init();
  report(SERVICE_RUNNING, 0);
  svc.exit_code = svc.serve(svc.argc, svc.argv);
  /* The SCM may end the process as soon as it hears this: nothing may follow. */
  report(SERVICE_STOPPED, svc.exit_code);
}

int kvvm_service_dispatch(int (*serve)(int argc, char **argv), int argc, char **argv)
{
  SERVICE_TABLE_ENTRYW table[] = {{svc_name, service_main}, {NULL, NULL}};
  svc.serve = serve;
  svc.argc = argc;
  svc.argv = argv;
  InitializeCriticalSection(&svc.lock);
  if (!StartServiceCtrlDispatcherW(table)) {
    char buf[200];
    KVVM_ERR("`kvvmd service` is for the Service Control Manager only (%s); run kvvmd "
             "without a verb to serve in the foreground",
             kvvm_win_strerror(GetLastError(), buf, sizeof buf));
    return kvvm_err_exit_code(KVVM_E_USAGE);
  }
  return svc.exit_code;
}
