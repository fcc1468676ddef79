/* One hook's process on Windows: started suspended with a clean environment, stdin NUL and
 * a pipe to us as stdout and stderr (the only handles it inherits: a handle list), put in a
 * job of its own, then let run. The job is ended (TerminateJobObject: the hook and every
 * process it started) on timeout, on kvvm's stop event and when the hook exits, so a hook
 * leaves nothing running behind it; and should kvvm itself die, the job's kill-on-close
 * limit ends the tree with it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#include <windows.h>
#include <shlobj.h>

#include "kvvm/clock.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "store/hooks_int.h"
#include "windows/hooks_int.h"
#include "windows/win_int.h"

#define POLL_MS 20

/* The parts (a NULL-terminated list) end to end, in a new string. */
static wchar_t *wjoin(const wchar_t *const *parts)
{
  size_t n = 1;
  for (size_t i = 0; parts[i]; i++)
    n += wcslen(parts[i]);
  wchar_t *s = kvvm_xmalloc(n * sizeof *s);
  s[0] = L'\0';
  for (size_t i = 0; parts[i]; i++)
    wcscat(s, parts[i]);
  return s;
}
#define WJOIN(...) wjoin((const wchar_t *const[]){__VA_ARGS__, NULL})

static void system_dirs(wchar_t root[MAX_PATH], wchar_t sys[MAX_PATH])
{
  UINT n = GetSystemWindowsDirectoryW(root, MAX_PATH);
  if (n == 0 || n >= MAX_PATH)
    wcscpy(root, L"C:\\Windows");
  n = GetSystemDirectoryW(sys, MAX_PATH);
  if (n == 0 || n >= MAX_PATH)
    wcscat(wcscpy(sys, root), L"\\System32");
}

bool kvvm_hooks_command(enum hook_kind kind, const wchar_t *path, wchar_t **app,
                        wchar_t **cmdline)
{
  wchar_t root[MAX_PATH], sys[MAX_PATH];
  system_dirs(root, sys);
  *app = *cmdline = NULL;
  switch (kind) {
  case HOOK_EXE:
    *app = WJOIN(path);
    *cmdline = WJOIN(L"\"", path, L"\"");
    return true;
  case HOOK_CMD:
    /* /d: no AutoRun commands from the registry; /s /c "...": cmd strips exactly the outer
     * quotes, so the quoted path keeps its spaces and & as they are. */
    *app = WJOIN(sys, L"\\cmd.exe");
    *cmdline = WJOIN(L"cmd.exe /d /s /c \"\"", path, L"\"\"");
    return true;
  case HOOK_PS1:
    *app = WJOIN(sys, L"\\WindowsPowerShell\\v1.0\\powershell.exe");
    *cmdline = WJOIN(L"powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass "
                     L"-File \"", path, L"\"");
    return true;
  case HOOK_NONE:
    break;
  }
  return false;
}

/* The environment being built: "NAME=value" strings, the first of each name kept. */
struct envv {
  wchar_t **v;
  size_t n;
};

static size_t name_len(const wchar_t *e)
{
  const wchar_t *eq = wcschr(e[0] == L'=' ? e + 1 : e, L'=');
  return eq ? (size_t)(eq - e) : wcslen(e);
}

/* Windows wants the block sorted by name, case-insensitively, as upper-case ordinals. */
static int env_cmp(const void *a, const void *b)
{
  const wchar_t *x = *(wchar_t *const *)a, *y = *(wchar_t *const *)b;
  size_t nx = name_len(x), ny = name_len(y);
  for (size_t i = 0; i < nx && i < ny; i++) {
    wint_t cx = towupper(x[i]), cy = towupper(y[i]);
    if (cx != cy)
      return cx < cy ? -1 : 1;
  }
  return (nx > ny) - (nx < ny);
}

static void env_put(struct envv *e, wchar_t *entry)
{
  for (size_t i = 0; entry && i < e->n; i++)
    if (env_cmp(&e->v[i], &entry) == 0) {
      free(entry);
      return;
    }
  if (!entry)
    return;
  e->v = kvvm_xrealloc(e->v, (e->n + 1) * sizeof *e->v);
  e->v[e->n++] = entry;
}

/* The Location and Name of a KVVM_STORE_DIR entry ("KVVM_STORE_DIR=LocalMachine\MY"). */
static void store_parts(struct envv *e, const char *const *env)
{
  static const char key[] = "KVVM_STORE_DIR=";
  for (size_t i = 0; env && env[i]; i++) {
    const char *dir = env[i] + sizeof key - 1, *slash = strchr(dir, '\\');
    if (strncmp(env[i], key, sizeof key - 1) != 0 || !slash || slash == dir || !slash[1] ||
        strchr(slash + 1, '\\'))
      continue;
    char *loc = kvvm_xasprintf("KVVM_STORE_LOCATION=%.*s", (int)(slash - dir), dir);
    char *name = kvvm_xasprintf("KVVM_STORE_NAME=%s", slash + 1);
    env_put(e, kvvm_win_wide(loc));
    env_put(e, kvvm_win_wide(name));
    free(loc);
    free(name);
  }
}

static wchar_t *known_folder(REFKNOWNFOLDERID id, const wchar_t *fallback)
{
  wchar_t *w = NULL, *copy = NULL;
  if (SHGetKnownFolderPath(id, 0, NULL, &w) == S_OK)
    copy = WJOIN(w);
  CoTaskMemFree(w);
  return copy ? copy : WJOIN(fallback);
}

/* What every hook gets, whatever kvvm's own environment holds. */
static void env_base(struct envv *e)
{
  wchar_t root[MAX_PATH], sys[MAX_PATH], tmp[MAX_PATH + 1], drive[3] = {0};
  system_dirs(root, sys);
  DWORD n = GetTempPathW(MAX_PATH + 1, tmp);
  if (n == 0 || n > MAX_PATH)
    wcscat(wcscpy(tmp, root), L"\\Temp");
  else if (n > 3 && tmp[n - 1] == L'\\')
    tmp[n - 1] = L'\0';
  wmemcpy(drive, root, 2);
  wchar_t *pd = known_folder(&FOLDERID_ProgramData, L"C:\\ProgramData");
  wchar_t *pf = known_folder(&FOLDERID_ProgramFiles, L"C:\\Program Files");
  env_put(e, WJOIN(L"SystemRoot=", root));
  env_put(e, WJOIN(L"windir=", root));
  env_put(e, WJOIN(L"SystemDrive=", drive));
  env_put(e, WJOIN(L"ComSpec=", sys, L"\\cmd.exe"));
  env_put(e, WJOIN(L"PATH=", sys, L";", root, L";", sys, L"\\WindowsPowerShell\\v1.0\\"));
  env_put(e, WJOIN(L"PATHEXT=.COM;.EXE;.BAT;.CMD;.VBS;.VBE;.JS;.JSE;.WSF;.WSH;.MSC"));
  env_put(e, WJOIN(L"TEMP=", tmp));
  env_put(e, WJOIN(L"TMP=", tmp));
  env_put(e, WJOIN(L"ProgramData=", pd));
  env_put(e, WJOIN(L"ProgramFiles=", pf));
  free(pd);
  free(pf);
}

wchar_t *kvvm_hooks_env_block(const char *const *env)
{
  struct envv e = {NULL, 0};
  bool ok = true;
  env_base(&e);
  for (size_t i = 0; env && env[i]; i++) {
    wchar_t *w = kvvm_win_wide(env[i]);
    ok = ok && w && wcschr(w, L'=') && w[0] != L'=';
    env_put(&e, w);
  }
  store_parts(&e, env);
  qsort(e.v, e.n, sizeof *e.v, env_cmp);
  size_t len = 1;
  for (size_t i = 0; i < e.n; i++)
    len += wcslen(e.v[i]) + 1;
  wchar_t *block = kvvm_xmalloc(len * sizeof *block), *p = block;
  for (size_t i = 0; i < e.n; i++) {
    size_t k = wcslen(e.v[i]) + 1;
    wmemcpy(p, e.v[i], k);
    p += k;
    free(e.v[i]);
  }
  *p = L'\0';
  free(e.v);
  if (!ok)
    free(block);
  return ok ? block : NULL;
}

static void pump(HANDLE r, struct hook_out *o)
{
  char buf[4096];
  DWORD avail = 0, got = 0;
  while (PeekNamedPipe(r, NULL, 0, NULL, &avail, NULL) && avail > 0 &&
         ReadFile(r, buf, avail < sizeof buf ? avail : (DWORD)sizeof buf, &got, NULL) && got > 0)
    hook_out_feed(o, buf, got);
}

/* Until the hook exits, the deadline passes or kvvm is asked to stop. */
static enum hook_end watch(HANDLE proc, HANDLE r, struct hook_out *o, int timeout_s)
{
  int64_t deadline = kvvm_clock_mono_ms() + (int64_t)timeout_s * 1000;
  HANDLE waits[2] = {proc, kvvm_win_stop_event()};
  for (;;) {
    pump(r, o);
    int64_t left = deadline - kvvm_clock_mono_ms();
    if (left <= 0)
      return HOOK_TIMED_OUT;
    DWORD w = WaitForMultipleObjects(waits[1] ? 2 : 1, waits, FALSE,
                                     (DWORD)(left < POLL_MS ? left : POLL_MS));
    if (w == WAIT_OBJECT_0 || w == WAIT_FAILED)
      return HOOK_EXITED;
    if (w == WAIT_OBJECT_0 + 1)
      return HOOK_STOPPED;
  }
}

/* A job that ends its processes when its last handle closes; NULL (logged) if none. */
static HANDLE make_job(const char *name)
{
  char err[160];
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION li;
  memset(&li, 0, sizeof li);
  li.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
  HANDLE job = CreateJobObjectW(NULL, NULL);
  if (job && !SetInformationJobObject(job, JobObjectExtendedLimitInformation, &li, sizeof li)) {
    CloseHandle(job);
    job = NULL;
  }
  if (!job)
    KVVM_WARN("hook %s: no job object (%s): a timeout ends the hook but not what it started",
              name, kvvm_win_strerror(GetLastError(), err, sizeof err));
  return job;
}

/* stdin: NUL; stdout and stderr: the pipe's write end. Only those two are inherited. */
static bool start(const wchar_t *app, wchar_t *cmdline, wchar_t *envblock, HANDLE nul,
                  HANDLE w, PROCESS_INFORMATION *pi)
{
  wchar_t root[MAX_PATH], sys[MAX_PATH];
  HANDLE list[2] = {nul, w};
  SIZE_T size = 0;
  system_dirs(root, sys);
  InitializeProcThreadAttributeList(NULL, 1, 0, &size);
  STARTUPINFOEXW si;
  memset(&si, 0, sizeof si);
  si.StartupInfo.cb = sizeof si;
  si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  si.StartupInfo.hStdInput = nul;
  si.StartupInfo.hStdOutput = si.StartupInfo.hStdError = w;
  si.lpAttributeList = kvvm_xmalloc(size);
  bool ok = InitializeProcThreadAttributeList(si.lpAttributeList, 1, 0, &size);
  bool made = ok;
  ok = ok && UpdateProcThreadAttribute(si.lpAttributeList, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST,
                                       list, sizeof list, NULL, NULL) &&
       CreateProcessW(app, cmdline, NULL, NULL, TRUE,
                      EXTENDED_STARTUPINFO_PRESENT | CREATE_SUSPENDED | CREATE_NO_WINDOW |
                          CREATE_UNICODE_ENVIRONMENT,
                      envblock, sys, &si.StartupInfo, pi);
  DWORD code = GetLastError();
  if (made)
    DeleteProcThreadAttributeList(si.lpAttributeList);
  free(si.lpAttributeList);
  SetLastError(code);
  return ok;
}

/* The pipe (read end ours, write end inheritable) and NUL (inheritable). */
static bool handles(HANDLE *r, HANDLE *w, HANDLE *nul)
{
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
  *r = *w = NULL;
  *nul = CreateFileW(L"NUL", GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, &sa,
                     OPEN_EXISTING, 0, NULL);
  if (*nul == INVALID_HANDLE_VALUE) {
    *nul = NULL;
    return false;
  }
  return CreatePipe(r, w, &sa, 0) && SetHandleInformation(*r, HANDLE_FLAG_INHERIT, 0);
}

static void close_all(HANDLE *h, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (h[i])
      CloseHandle(h[i]);
}

/* After the hook: the job ended (the whole tree), its output read, its code taken. */
static void finish(PROCESS_INFORMATION *pi, HANDLE job, HANDLE r, struct hook_out *o,
                   unsigned long *code)
{
  DWORD c = 1;
  if (!job || !TerminateJobObject(job, 1))
    TerminateProcess(pi->hProcess, 1);
  WaitForSingleObject(pi->hProcess, 5000);
  GetExitCodeProcess(pi->hProcess, &c);
  *code = c;
  pump(r, o);
  hook_out_flush(o);
}

enum hook_end kvvm_hooks_spawn(const char *name, const wchar_t *app, wchar_t *cmdline,
                               wchar_t *envblock, int timeout_s, unsigned long *code)
{
  HANDLE h[4] = {NULL, NULL, NULL, NULL};   /* read end, write end, NUL, job */
  PROCESS_INFORMATION pi;
  struct hook_out o = {.name = name, .drop_cr = true};
  enum hook_end end = HOOK_NOT_STARTED;
  bool made = handles(&h[0], &h[1], &h[2]);
  if (!made || !start(app, cmdline, envblock, h[2], h[1], &pi)) {
    *code = GetLastError();
    close_all(h, 4);
    return end;
  }
  CloseHandle(h[1]);   /* the hook's now: the pipe ends when its last writer does */
  h[1] = NULL;
  h[3] = make_job(name);
  if (h[3] && !AssignProcessToJobObject(h[3], pi.hProcess)) {
    char err[160];
    KVVM_WARN("hook %s: not in a job of its own (%s): a timeout ends the hook but not what "
              "it started", name, kvvm_win_strerror(GetLastError(), err, sizeof err));
    CloseHandle(h[3]);
    h[3] = NULL;
  }
  ResumeThread(pi.hThread);
  CloseHandle(pi.hThread);
  end = watch(pi.hProcess, h[0], &o, timeout_s);
  finish(&pi, h[3], h[0], &o, code);
  CloseHandle(pi.hProcess);
  close_all(h, 4);
  return end;
}
