/* kvvmd control on Windows, through the Service Control Manager. kvvmd is the service
 * "kvvmd" (its own process, LocalSystem, automatic start, restarted on failure) whose binary
 * path is "<package>\bin\kvvmd.exe" service. The SCM is the one source of truth: whether it
 * runs, its pid, and from which package folder (the binary path). The service's own side is
 * service_main_windows.c. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#include <windows.h>

#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/service.h"
#include "windows/service_int.h"
#include "windows/win_int.h"

/* How long enable waits for a started kvvmd to report that it runs. */
#define START_WAIT_MS 10000
/* After TerminateProcess: how long the SCM may take to notice. */
#define KILL_WAIT_MS 5000

static wchar_t display_name[] = L"kvvm Key Vault certificate sync";
static wchar_t description[] =
    L"Keeps the certificates named in the kvvm VM extension's settings installed from Azure "
    L"Key Vault and renewed. The extension manages it: enable starts it, disable stops it, "
    L"uninstall deletes it.";

static void log_win(const char *what)
{
  char buf[300];
  DWORD e = GetLastError();
  KVVM_ERR("%s: %s", what, kvvm_win_strerror(e, buf, sizeof buf));
}

/* The kvvmd service, or NULL. *absent tells a service that does not exist (no error for
 * most callers) from a failure, which is logged. */
static SC_HANDLE open_service(SC_HANDLE *scm, DWORD access, bool *absent)
{
  SC_HANDLE svc = NULL;
  *absent = false;
  *scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT | SC_MANAGER_CREATE_SERVICE);
  /* The CLI may run without the right to create services: connecting is enough for it. */
  if (!*scm)
    *scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
  if (!*scm) {
    log_win("cannot open the Service Control Manager");
    return NULL;
  }
  svc = OpenServiceW(*scm, KVVM_SVC_NAME, access);
  if (!svc && GetLastError() == ERROR_SERVICE_DOES_NOT_EXIST)
    *absent = true;
  else if (!svc)
    log_win("cannot open the kvvmd service");
  return svc;
}

static void close_both(SC_HANDLE svc, SC_HANDLE scm)
{
  if (svc)
    CloseServiceHandle(svc);
  if (scm)
    CloseServiceHandle(scm);
}

static bool status_of(SC_HANDLE svc, SERVICE_STATUS_PROCESS *sp)
{
  DWORD need;
  if (QueryServiceStatusEx(svc, SC_STATUS_PROCESS_INFO, (BYTE *)sp, sizeof *sp, &need))
    return true;
  log_win("cannot query the kvvmd service");
  return false;
}

/* The executable of a binary path such as "C:\...\kvvmd.exe" service: the quoted part, or
 * up to the first space when unquoted; as UTF-8 (NULL if it cannot be converted). */
static char *exe_of(const wchar_t *cmdline)
{
  const wchar_t *start = cmdline, *end;
  if (*start == L'"')
    end = wcschr(++start, L'"');
  else
    end = wcschr(start, L' ');
  size_t n = end ? (size_t)(end - start) : wcslen(start);
  wchar_t *w = kvvm_xmalloc((n + 1) * sizeof *w);
  memcpy(w, start, n * sizeof *w);
  w[n] = L'\0';
  char *s = kvvm_win_utf8(w);
  free(w);
  return s;
}

/* The configured executable (NULL, logged, when it cannot be read). */
static char *configured_exe(SC_HANDLE svc)
{
  DWORD need = 0;
  char *exe = NULL;
  QueryServiceConfigW(svc, NULL, 0, &need);   /* fails, telling the size it needs */
  QUERY_SERVICE_CONFIGW *qc = need ? kvvm_xmalloc(need) : NULL;
  if (qc && QueryServiceConfigW(svc, qc, need, &need))
    exe = exe_of(qc->lpBinaryPathName);
  else
    log_win("cannot read the kvvmd service's configuration");
  free(qc);
  return exe;
}

/* Is exe inside the package folder root? Windows paths ignore case. */
static bool runs_from(const char *exe, const char *root)
{
  size_t n = strlen(root);
  return exe && _strnicmp(exe, root, n) == 0 && (exe[n] == '\\' || exe[n] == '/');
}

/* Has the service's process ended? The SCM says STOPPED soon after it does; wine's never
 * does for a process killed while stopping. A process this user may not open (a
 * LocalSystem one, to a plain user) is taken to live. */
static bool gone(const SERVICE_STATUS_PROCESS *sp)
{
  if (sp->dwCurrentState == SERVICE_STOPPED)
    return true;
  if (sp->dwProcessId == 0)
    return false;   /* starting: no process yet */
  HANDLE h = OpenProcess(SYNCHRONIZE, FALSE, sp->dwProcessId);
  if (!h)
    return GetLastError() == ERROR_INVALID_PARAMETER;   /* no such process */
  bool ended = WaitForSingleObject(h, 0) == WAIT_OBJECT_0;
  CloseHandle(h);
  return ended;
}

enum kvvm_err kvvm_service_query(struct kvvm_daemon *d)
{
  SC_HANDLE scm, svc;
  SERVICE_STATUS_PROCESS sp;
  bool absent;
  memset(d, 0, sizeof *d);
  svc = open_service(&scm, SERVICE_QUERY_STATUS | SERVICE_QUERY_CONFIG, &absent);
  /* Pending states count as running: the process is there and holds kvvm's lock. */
  if (svc && status_of(svc, &sp) && !gone(&sp)) {
    d->running = true;
    d->pid = (long)sp.dwProcessId;
    d->exe = configured_exe(svc);
  }
  close_both(svc, scm);
  return KVVM_OK;
}

static bool wait_stopped(SC_HANDLE svc, DWORD ms)
{
  SERVICE_STATUS_PROCESS sp;
  for (DWORD waited = 0; status_of(svc, &sp); waited += 100) {
    if (gone(&sp))
      return true;
    if (waited >= ms)
      return false;
    Sleep(100);
  }
  return false;
}

/* False when time is up, or when the start ended in STOPPED (it failed: waiting longer
 * cannot help). */
static bool wait_running(SC_HANDLE svc, DWORD ms, SERVICE_STATUS_PROCESS *sp)
{
  memset(sp, 0, sizeof *sp);
  for (DWORD waited = 0; status_of(svc, sp); waited += 100) {
    if (sp->dwCurrentState == SERVICE_RUNNING)
      return true;
    if (waited >= ms || sp->dwCurrentState == SERVICE_STOPPED)
      return false;
    Sleep(100);
  }
  return false;
}

/* Restart 5 s after a failure, then 30 s, then every 60 s; the count starts again after a
 * day without one. restart false clears them (before a kill, which the SCM would take for
 * a crash); the next enable sets them again. */
static bool set_failure_actions(SC_HANDLE svc, bool restart)
{
  SC_ACTION acts[] = {{SC_ACTION_RESTART, 5000}, {SC_ACTION_RESTART, 30000},
                      {SC_ACTION_RESTART, 60000}};
  SERVICE_FAILURE_ACTIONSW fa = {24 * 3600, NULL, NULL, restart ? 3 : 0, acts};
  if (ChangeServiceConfig2W(svc, SERVICE_CONFIG_FAILURE_ACTIONS, &fa))
    return true;
  log_win("cannot set the kvvmd service's failure actions");
  return false;
}

/* The whole configuration, every time: a service someone set to manual start or another
 * account is brought back, and a kill's cleared failure actions are restored. */
static bool configure(SC_HANDLE svc, wchar_t *cmdline)
{
  SERVICE_DESCRIPTIONW desc = {description};
  /* Failure actions also when kvvmd stops with an error, not only when it crashes. */
  SERVICE_FAILURE_ACTIONS_FLAG flag = {TRUE};
  if (!ChangeServiceConfigW(svc, SERVICE_WIN32_OWN_PROCESS, SERVICE_AUTO_START,
                            SERVICE_ERROR_NORMAL, cmdline, NULL, NULL, NULL, L"LocalSystem",
                            L"", display_name)) {
    log_win("cannot configure the kvvmd service");
    return false;
  }
  if (!ChangeServiceConfig2W(svc, SERVICE_CONFIG_DESCRIPTION, &desc)) {
    log_win("cannot set the kvvmd service's description");
    return false;
  }
  /* Wine has no such level: there crashes alone restart kvvmd, which is no reason to fail. */
  if (!ChangeServiceConfig2W(svc, SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, &flag)) {
    char buf[200];
    KVVM_WARN("kvvmd will be restarted after crashes only, not after an exit with an error: "
              "%s", kvvm_win_strerror(GetLastError(), buf, sizeof buf));
  }
  return set_failure_actions(svc, true);
}

/* The last resort of a stop. */
static enum kvvm_err kill_service(SC_HANDLE svc, DWORD pid)
{
  KVVM_WARN("kvvmd (pid %lu) did not stop within %d s; terminating it", (unsigned long)pid,
            KVVM_SVC_STOP_GRACE_MS / 1000);
  set_failure_actions(svc, false);
  HANDLE h = OpenProcess(PROCESS_TERMINATE | SYNCHRONIZE, FALSE, pid);
  if (!h || !TerminateProcess(h, 1))
    log_win("cannot terminate kvvmd");
  else
    WaitForSingleObject(h, KILL_WAIT_MS);
  if (h)
    CloseHandle(h);
  if (wait_stopped(svc, KILL_WAIT_MS))
    return KVVM_OK;
  KVVM_ERR("kvvmd (pid %lu) is still there after TerminateProcess", (unsigned long)pid);
  return KVVM_E_SERVICE;
}

/* Ask for a stop, wait for it (kvvmd finishes the install in progress), then kill. */
static enum kvvm_err stop_service(SC_HANDLE svc)
{
  SERVICE_STATUS_PROCESS sp;
  SERVICE_STATUS ss;
  if (!status_of(svc, &sp))
    return KVVM_E_SERVICE;
  if (gone(&sp))
    return KVVM_OK;
  DWORD pid = sp.dwProcessId;
  KVVM_INFO("stopping kvvmd (pid %lu)", (unsigned long)pid);
  if (!ControlService(svc, SERVICE_CONTROL_STOP, &ss)) {
    DWORD e = GetLastError();
    /* Not active: it stopped meanwhile. Cannot accept: it is already stopping. */
    if (e != ERROR_SERVICE_NOT_ACTIVE && e != ERROR_SERVICE_CANNOT_ACCEPT_CTRL) {
      log_win("cannot stop the kvvmd service");
      return KVVM_E_SERVICE;
    }
  }
  if (wait_stopped(svc, KVVM_SVC_STOP_GRACE_MS))
    return KVVM_OK;
  return kill_service(svc, pid);
}

static enum kvvm_err start_service(SC_HANDLE svc, const char *exe)
{
  SERVICE_STATUS_PROCESS sp;
  if (!StartServiceW(svc, 0, NULL) && GetLastError() != ERROR_SERVICE_ALREADY_RUNNING) {
    log_win("cannot start the kvvmd service");
    return KVVM_E_SERVICE;
  }
  if (!wait_running(svc, START_WAIT_MS, &sp)) {
    KVVM_ERR("%s did not start within %d s (state %lu, exit code %lu, kvvm code %lu; see "
             "kvvm.log)", exe, START_WAIT_MS / 1000, (unsigned long)sp.dwCurrentState,
             (unsigned long)sp.dwWin32ExitCode, (unsigned long)sp.dwServiceSpecificExitCode);
    return KVVM_E_SERVICE;
  }
  KVVM_INFO("started %s (service kvvmd, pid %lu)", exe, (unsigned long)sp.dwProcessId);
  return KVVM_OK;
}

static enum kvvm_err send_control(SC_HANDLE svc, DWORD code)
{
  SERVICE_STATUS ss;
  if (ControlService(svc, code, &ss))
    return KVVM_OK;
  log_win("cannot reach the kvvmd service");
  return KVVM_E_SERVICE;
}

/* The kvvmd service, created with this binary path when there is none. */
static SC_HANDLE open_or_create(SC_HANDLE *scm, wchar_t *cmdline)
{
  bool absent;
  SC_HANDLE svc = open_service(scm, SERVICE_ALL_ACCESS, &absent);
  if (!absent)
    return svc;
  /* No account name: LocalSystem. */
  svc = CreateServiceW(*scm, KVVM_SVC_NAME, display_name, SERVICE_ALL_ACCESS,
                       SERVICE_WIN32_OWN_PROCESS, SERVICE_AUTO_START, SERVICE_ERROR_NORMAL,
                       cmdline, NULL, NULL, NULL, NULL, NULL);
  if (svc)
    KVVM_INFO("created the kvvmd service");
  else
    log_win("cannot create the kvvmd service");
  return svc;
}

/* Does kvvmd run from exe? One that runs from another package folder (the old version
 * after an update) is stopped here, to be started again from exe. */
static enum kvvm_err runs_here(SC_HANDLE svc, const char *exe, bool *here)
{
  SERVICE_STATUS_PROCESS sp;
  *here = false;
  if (!status_of(svc, &sp))
    return KVVM_E_SERVICE;
  if (gone(&sp))
    return KVVM_OK;
  char *cur = configured_exe(svc);
  *here = cur && _stricmp(cur, exe) == 0;
  if (!*here)
    KVVM_INFO("kvvmd runs from %s; replacing it with %s", cur ? cur : "?", exe);
  free(cur);
  return *here ? KVVM_OK : stop_service(svc);
}

/* rw_paths fence the systemd sandbox on Linux; a Windows service has no such fence (it runs
 * as LocalSystem, as Microsoft's extension's does). */
enum kvvm_err kvvm_service_ensure(const char *root, const char *const *rw_paths, bool reload)
{
  char *exe = kvvm_xasprintf("%s\\bin\\kvvmd.exe", root);
  char *cmd = kvvm_xasprintf("\"%s\" service", exe);
  wchar_t *wcmd = kvvm_win_wide(cmd);
  SC_HANDLE scm = NULL, svc = NULL;
  enum kvvm_err rc = KVVM_E_SERVICE;
  bool here, env_changed;
  (void)rw_paths;
  if (!wcmd) {
    KVVM_ERR("the package folder %s is not valid UTF-8", root);
    goto out;
  }
  if (!(svc = open_or_create(&scm, wcmd)) ||
      (rc = kvvm_win_service_env_write(root, &env_changed)) != KVVM_OK ||
      (rc = runs_here(svc, exe, &here)) != KVVM_OK)
    goto out;
  rc = KVVM_E_SERVICE;
  if (!configure(svc, wcmd))
    goto out;
  /* A service sees its environment only as it starts (as systemd's unit, restarted when
   * its environment file changes). */
  if (here && env_changed) {
    KVVM_INFO("kvvmd's environment changed: restarting it");
    if ((rc = stop_service(svc)) != KVVM_OK)
      goto out;
    here = false;
  }
  if (here)
    rc = reload ? send_control(svc, KVVM_SVC_CTRL_RELOAD) : KVVM_OK;
  else
    rc = start_service(svc, exe);
out:
  close_both(svc, scm);
  free(wcmd);
  free(cmd);
  free(exe);
  return rc;
}

/* A disabled extension stays stopped across a reboot: the agent runs no enable for it, so
 * an automatic start would bring kvvmd back behind its back. Demand start until enable
 * configures the service again (configure() sets automatic start every time). */
static void start_on_demand(SC_HANDLE svc)
{
  if (!ChangeServiceConfigW(svc, SERVICE_NO_CHANGE, SERVICE_DEMAND_START, SERVICE_NO_CHANGE,
                            NULL, NULL, NULL, NULL, NULL, NULL, NULL))
    log_win("cannot set the kvvmd service to start on demand");
}

enum kvvm_err kvvm_service_stop(void)
{
  bool absent;
  SC_HANDLE scm, svc = open_service(
      &scm, SERVICE_STOP | SERVICE_QUERY_STATUS | SERVICE_CHANGE_CONFIG, &absent);
  enum kvvm_err rc = svc ? stop_service(svc) : absent ? KVVM_OK : KVVM_E_SERVICE;
  if (svc)
    start_on_demand(svc);
  close_both(svc, scm);
  return rc;
}

/* Only the service of this package folder is deleted: after an update the new version's
 * service is not the old uninstall's to remove. */
enum kvvm_err kvvm_service_remove(const char *root)
{
  bool absent;
  SC_HANDLE scm, svc = open_service(&scm, SERVICE_ALL_ACCESS, &absent);
  enum kvvm_err rc = svc || absent ? KVVM_OK : KVVM_E_SERVICE;
  char *exe = svc ? configured_exe(svc) : NULL;
  if (svc && !runs_from(exe, root))
    KVVM_INFO("the kvvmd service runs %s, not this package's: left in place", exe ? exe : "?");
  else if (svc && (rc = stop_service(svc)) == KVVM_OK) {
    if (DeleteService(svc))
      KVVM_INFO("deleted the kvvmd service");
    else if (GetLastError() != ERROR_SERVICE_MARKED_FOR_DELETE) {
      log_win("cannot delete the kvvmd service");
      rc = KVVM_E_SERVICE;
    }
  }
  free(exe);
  close_both(svc, scm);
  return rc;
}

enum kvvm_err kvvm_service_sync_now(void)
{
  bool absent;
  SERVICE_STATUS_PROCESS sp;
  SC_HANDLE scm, svc = open_service(
      &scm, SERVICE_QUERY_STATUS | SERVICE_USER_DEFINED_CONTROL, &absent);
  enum kvvm_err rc = KVVM_E_SERVICE;
  if (svc && status_of(svc, &sp) && sp.dwCurrentState == SERVICE_RUNNING)
    rc = send_control(svc, KVVM_SVC_CTRL_PASS);
  else if (svc || absent)
    KVVM_INFO("kvvmd is not running");
  close_both(svc, scm);
  return rc;
}
