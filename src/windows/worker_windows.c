/* kvvm_worker_run on Windows: CreateProcessW `"<exe>" worker --stop-event <n>` with pipes
 * as its stdin and stdout. It inherits only those two ends, stderr and kvvmd's stop event
 * (a handle list), whose value it is given on its command line: a stop reaches the pass's
 * sleeps at once, as SIGTERM does on Linux. The worker runs in a job object that kills it
 * when the job's last handle closes; kvvmd keeps that handle for its lifetime, so however
 * kvvmd ends (TerminateProcess included), its worker ends with it. */
#include <fcntl.h>
#include <io.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/worker.h"
#include "windows/win_int.h"

#define READ_STEP 65536

static HANDLE job;   /* never closed: the system closes it when kvvmd ends */

/* The job the workers run in; NULL (logged) when none can be made. */
static HANDLE worker_job(void)
{
  char err[200];
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION li;
  if (job)
    return job;
  memset(&li, 0, sizeof li);
  li.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
  job = CreateJobObjectW(NULL, NULL);
  if (job && !SetInformationJobObject(job, JobObjectExtendedLimitInformation, &li, sizeof li)) {
    CloseHandle(job);
    job = NULL;
  }
  if (!job)
    KVVM_WARN("no job object for the pass worker (it may outlive kvvmd): %s",
              kvvm_win_strerror(GetLastError(), err, sizeof err));
  return job;
}

bool kvvm_worker_adopt(int argc, char **argv)
{
  char *end = NULL;
  unsigned long long v = argc == 4 && strcmp(argv[2], "--stop-event") == 0
                             ? strtoull(argv[3], &end, 10) : 0;
  if (!v || !end || *end) {
    KVVM_ERR("kvvmd worker: expected --stop-event <handle>");
    return false;
  }
  kvvm_win_adopt_stop_event((HANDLE)(uintptr_t)v);
  /* Hooks it starts must not hold the answer's pipe open (kvvmd reads to its end). */
  SetHandleInformation(GetStdHandle(STD_INPUT_HANDLE), HANDLE_FLAG_INHERIT, 0);
  SetHandleInformation(GetStdHandle(STD_OUTPUT_HANDLE), HANDLE_FLAG_INHERIT, 0);
  _setmode(_fileno(stdin), _O_BINARY);
  _setmode(_fileno(stdout), _O_BINARY);
  return true;
}

/* The four ends; kvvmd's own two are not inheritable. */
struct pipes {
  HANDLE in_r, in_w, out_r, out_w;
};

static bool make_pipes(struct pipes *p)
{
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
  return CreatePipe(&p->in_r, &p->in_w, &sa, 0) && CreatePipe(&p->out_r, &p->out_w, &sa, 0) &&
         SetHandleInformation(p->in_w, HANDLE_FLAG_INHERIT, 0) &&
         SetHandleInformation(p->out_r, HANDLE_FLAG_INHERIT, 0);
}

static void close_handle(HANDLE *h)
{
  if (*h && *h != INVALID_HANDLE_VALUE)
    CloseHandle(*h);
  *h = NULL;
}

static void close_pipes(struct pipes *p)
{
  close_handle(&p->in_r);
  close_handle(&p->in_w);
  close_handle(&p->out_r);
  close_handle(&p->out_w);
}

/* kvvmd's stderr if it has one (a service has none), made inheritable for the worker. */
static HANDLE std_err(void)
{
  HANDLE h = GetStdHandle(STD_ERROR_HANDLE);
  if (!h || h == INVALID_HANDLE_VALUE ||
      !SetHandleInformation(h, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT))
    return NULL;
  return h;
}

static wchar_t *command_line(const char *exe)
{
  char *line = kvvm_xasprintf("\"%s\" worker --stop-event %llu", exe,
                              (unsigned long long)(uintptr_t)kvvm_win_stop_event());
  wchar_t *w = kvvm_win_wide(line);
  free(line);
  return w;
}

/* Start the worker suspended, put it in the job, let it run. */
static bool start(const char *exe, const struct pipes *p, PROCESS_INFORMATION *pi)
{
  HANDLE err = std_err(), list[4] = {p->in_r, p->out_w, kvvm_win_stop_event(), err};
  SIZE_T size = 0;
  InitializeProcThreadAttributeList(NULL, 1, 0, &size);
  STARTUPINFOEXW si;
  memset(&si, 0, sizeof si);
  si.StartupInfo.cb = sizeof si;
  si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  si.StartupInfo.hStdInput = p->in_r;
  si.StartupInfo.hStdOutput = p->out_w;
  si.StartupInfo.hStdError = err;
  si.lpAttributeList = kvvm_xmalloc(size);
  wchar_t *cmd = command_line(exe);
  bool ok = cmd && list[2] && InitializeProcThreadAttributeList(si.lpAttributeList, 1, 0, &size) &&
            UpdateProcThreadAttribute(si.lpAttributeList, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST,
                                      list, (err ? 4 : 3) * sizeof *list, NULL, NULL) &&
            CreateProcessW(NULL, cmd, NULL, NULL, TRUE,
                           EXTENDED_STARTUPINFO_PRESENT | CREATE_SUSPENDED | CREATE_NO_WINDOW,
                           NULL, NULL, &si.StartupInfo, pi);
  DWORD code = GetLastError();
  if (ok && worker_job() && !AssignProcessToJobObject(job, pi->hProcess))
    KVVM_WARN("the pass worker is not in kvvmd's job (it may outlive kvvmd)");
  if (ok)
    ResumeThread(pi->hThread);
  else
    SetLastError(code);
  free(cmd);
  free(si.lpAttributeList);
  return ok;
}

/* All of the request, then its end. A worker gone early shows in how it ended. */
static void give_request(struct pipes *p, const char *req, size_t len)
{
  DWORD n;
  while (len > 0 && WriteFile(p->in_w, req, len > 65536 ? 65536 : (DWORD)len, &n, NULL)) {
    req += n;
    len -= n;
  }
  close_handle(&p->in_w);
}

/* Read until the worker's end of the pipe closes: it exits (nothing it starts inherits it). */
static void take_answer(HANDLE h, struct kvvm_worker_result *res)
{
  size_t cap = 0;
  DWORD n;
  for (;;) {
    if (cap - res->len < READ_STEP) {
      cap = cap * 2 + READ_STEP;
      res->data = kvvm_xrealloc(res->data, cap);
    }
    if (!ReadFile(h, res->data + res->len, (DWORD)(cap - res->len), &n, NULL) || n == 0)
      return;
    res->len += n;
  }
}

static void describe_end(HANDLE process, struct kvvm_worker_result *res)
{
  DWORD code = 1;
  WaitForSingleObject(process, INFINITE);
  GetExitCodeProcess(process, &code);
  res->clean = code == 0;
  if (code >= 0xC0000000u)
    snprintf(res->ended, sizeof res->ended, "crashed (exception %#lx)", (unsigned long)code);
  else
    snprintf(res->ended, sizeof res->ended, "exited %lu", (unsigned long)code);
  res->stop = WaitForSingleObject(kvvm_win_stop_event(), 0) == WAIT_OBJECT_0;
}

enum kvvm_err kvvm_worker_run(const char *exe, const char *request, size_t len,
                              struct kvvm_worker_result *res)
{
  char err[200];
  struct pipes p = {NULL, NULL, NULL, NULL};
  PROCESS_INFORMATION pi;
  memset(res, 0, sizeof *res);
  if (!make_pipes(&p) || !start(exe, &p, &pi)) {
    KVVM_ERR("cannot start the pass worker %s: %s", exe,
             kvvm_win_strerror(GetLastError(), err, sizeof err));
    close_pipes(&p);
    return KVVM_E_INTERNAL;
  }
  close_handle(&p.in_r);
  close_handle(&p.out_w);
  give_request(&p, request, len);
  take_answer(p.out_r, res);
  describe_end(pi.hProcess, res);
  CloseHandle(pi.hThread);
  CloseHandle(pi.hProcess);
  close_pipes(&p);
  return KVVM_OK;
}
