/* A kvvmd stand-in for test_service_win.py: the real service code (service_windows.c and
 * service_main_windows.c) around a serve loop that only records what reaches it, so the
 * test sees the SCM's side under wine without kvvmd's settings, vault or store.
 *   svc_harness service            run by the SCM (the binary path's verb)
 *   svc_harness ctl ensure ROOT [reload] | stop | remove ROOT | query | sync-now | show
 *   svc_harness idle SECONDS       an ordinary process that keeps wine's services alive
 *   svc_harness paths | protect    paths_windows.c's answers; proc_windows.c's protection
 * The serve loop appends to events.log beside the executable (with the KVVM_SVC_PROBE and
 * https_proxy it sees, which only kvvmd.env can have given it); a file ignore-stop there makes
 * it ignore stops (to reach the controller's TerminateProcess). Everything else is libkvvm.a's
 * (make check-windows links it): the real log, wake and service lock. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#include "kvvm/err.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/paths.h"
#include "kvvm/proc.h"
#include "kvvm/service.h"
#include "kvvm/wake.h"
#include "windows/win_int.h"

static FILE *events;

/* <folder of this exe>\name */
static void beside_exe(const char *name, char *out, size_t n)
{
  char exe[MAX_PATH];
  DWORD len = GetModuleFileNameA(NULL, exe, sizeof exe);
  char *slash = strrchr(exe, '\\');
  if (len == 0 || !slash)
    slash = exe - 1;
  slash[1] = '\0';
  snprintf(out, n, "%s%s", exe, name);
}

static int serve(int argc, char **argv)
{
  static const char *const names[] = {"timeout", "stop", "reload", "pass"};
  char path[MAX_PATH + 20];
  beside_exe("ignore-stop", path, sizeof path);
  int stubborn = GetFileAttributesA(path) != INVALID_FILE_ATTRIBUTES;
  const char *probe = getenv("KVVM_SVC_PROBE"), *proxy = getenv("https_proxy");
  fprintf(events, "serve pid=%lu argc=%d verb=%s stubborn=%d probe=%s proxy=%s\n",
          GetCurrentProcessId(), argc, argc > 1 ? argv[1] : "", stubborn,
          probe ? probe : "(unset)", proxy ? proxy : "(unset)");
  fflush(events);
  for (;;) {
    enum kvvm_wake w = kvvm_wake_wait(60000);
    DWORD ev = WaitForSingleObject(kvvm_win_stop_event(), 0);
    fprintf(events, "wake %s stop_event=%d\n", names[w], ev == WAIT_OBJECT_0);
    fflush(events);
    if (w == KVVM_WAKE_STOP && !stubborn)
      break;
  }
  fprintf(events, "exit\n");
  fflush(events);
  return 0;
}

static int show(void)
{
  SC_HANDLE scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
  SC_HANDLE s = scm ? OpenServiceW(scm, L"kvvmd", SERVICE_QUERY_CONFIG) : NULL;
  BYTE buf[8192];
  DWORD need;
  if (!s)
    return 1;
  if (QueryServiceConfig2W(s, SERVICE_CONFIG_DESCRIPTION, buf, sizeof buf, &need))
    printf("description=%ls\n", ((SERVICE_DESCRIPTIONW *)buf)->lpDescription);
  if (QueryServiceConfig2W(s, SERVICE_CONFIG_FAILURE_ACTIONS, buf, sizeof buf, &need)) {
    SERVICE_FAILURE_ACTIONSW *fa = (SERVICE_FAILURE_ACTIONSW *)buf;
    printf("reset=%lu actions=%lu", fa->dwResetPeriod, fa->cActions);
    for (DWORD i = 0; i < fa->cActions; i++)
      printf(" %d/%lu", fa->lpsaActions[i].Type, fa->lpsaActions[i].Delay);
    printf("\n");
  }
  if (QueryServiceConfig2W(s, SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, buf, sizeof buf, &need))
    printf("failure_flag=%d\n", ((SERVICE_FAILURE_ACTIONS_FLAG *)buf)->fFailureActionsOnNonCrashFailures);
  CloseServiceHandle(s);
  CloseServiceHandle(scm);
  return 0;
}

static int ctl(int argc, char **argv)
{
  const char *v = argv[2];
  enum kvvm_err rc = KVVM_E_USAGE;
  if (strcmp(v, "ensure") == 0 && argc >= 4)
    rc = kvvm_service_ensure(argv[3], NULL, argc > 4 && strcmp(argv[4], "reload") == 0);
  else if (strcmp(v, "stop") == 0)
    rc = kvvm_service_stop();
  else if (strcmp(v, "remove") == 0 && argc >= 4)
    rc = kvvm_service_remove(argv[3]);
  else if (strcmp(v, "sync-now") == 0)
    rc = kvvm_service_sync_now();
  else if (strcmp(v, "show") == 0)
    return show();
  else if (strcmp(v, "query") == 0) {
    struct kvvm_daemon d;
    rc = kvvm_service_query(&d);
    printf("running=%d pid=%ld exe=%s\n", d.running, d.pid, d.exe ? d.exe : "");
    kvvm_daemon_clear(&d);
  }
  return kvvm_err_exit_code(rc);
}

static int paths(void)
{
  char *exe = kvvm_paths_self_exe();
  printf("state=%s\nhooks=%s\nstore=%s\nexe=%s\n", kvvm_paths_state_dir(),
         kvvm_paths_hooks_dir(), kvvm_paths_store_root(), exe ? exe : "");
  free(exe);
  return 0;
}

/* After kvvm_proc_protect: the error mode it set (its warnings go to stderr). A crash is
 * not tried: wine starts its own debugger whatever the error mode says. */
static int protect(void)
{
  kvvm_proc_protect();
  printf("error_mode=%#x\n", GetErrorMode());
  return 0;
}

int main(int argc, char **argv)
{
  /* The test reads what the service code says at every level (created, replaced, left). */
  kvvm_log_set_stderr_level(KVVM_LOG_DEBUG);
  if (argc > 1 && strcmp(argv[1], "service") == 0) {
    char path[MAX_PATH + 20];
    beside_exe("events.log", path, sizeof path);
    events = fopen(path, "a");
    return events ? kvvm_service_dispatch(serve, argc, argv) : 3;
  }
  if (argc > 2 && strcmp(argv[1], "ctl") == 0)
    return ctl(argc, argv);
  if (argc > 2 && strcmp(argv[1], "idle") == 0) {
    Sleep((DWORD)atoi(argv[2]) * 1000);
    return 0;
  }
  if (argc > 1 && strcmp(argv[1], "paths") == 0)
    return paths();
  if (argc > 1 && strcmp(argv[1], "protect") == 0)
    return protect();
  fprintf(stderr, "usage: svc_harness paths | protect | service | ctl VERB [ARG...] | idle SECONDS\n");
  return 2;
}
