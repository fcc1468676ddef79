/* Running hooks on Windows (include/kvvm/hooks.h; the due queue is store/hooks.c). The hooks
 * folder and the folder above it are opened and checked on their handles (hooks_acl_windows.c)
 * and held, not shareable for delete, until every hook has run, so neither can be renamed or
 * replaced meanwhile. Each hook is opened without write or delete sharing and checked on that
 * handle, which is held while the hook runs.
 *
 * What was checked is what runs, as far as Windows allows: it has no fexecve, so the process
 * is started by path (an .exe by the loader, a script by its interpreter, which reopens it).
 * While our handle is open, no one can open the file for writing, rename or delete it (the
 * share mode), nor could anyone who held it open for writing before (the open would have
 * failed), so the path still names the file checked. What remains: an administrator (or
 * SYSTEM) changing it in between, who needs no race to do harm; and a hook reaching beyond
 * itself (a script calling another file) is the hook's own business, as on Linux. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#include "kvvm/clock.h"
#include "kvvm/fileio.h"
#include "kvvm/hooks.h"
#include "store/hooks_int.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/paths.h"
#include "windows/hooks_int.h"
#include "windows/win_int.h"

/* Skipped as on Linux: hidden files, names starting with '.' (ours and editors' temp files)
 * or '~' (Office's and editors' lock and backup files), and folders. */
static bool listed(const WIN32_FIND_DATAW *fd)
{
  return fd->cFileName[0] != L'.' && fd->cFileName[0] != L'~' &&
         !(fd->dwFileAttributes & (FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_DIRECTORY));
}

/* The names in dir, in byte order of their UTF-8; NULL with *err set when it cannot be
 * listed (ERROR_PATH_NOT_FOUND or ERROR_FILE_NOT_FOUND: there is no such folder). */
static char **list(const char *dir, size_t *n, DWORD *err)
{
  char *pattern = kvvm_path_join(dir, "*");
  wchar_t *w = kvvm_win_wide(pattern);
  WIN32_FIND_DATAW fd;
  HANDLE h = w ? FindFirstFileW(w, &fd) : INVALID_HANDLE_VALUE;
  char **names = NULL;
  *n = 0;
  *err = w ? GetLastError() : ERROR_INVALID_NAME;
  free(pattern);
  free(w);
  if (h == INVALID_HANDLE_VALUE)
    return NULL;
  names = kvvm_xcalloc(1, sizeof *names);
  do {
    char *name = listed(&fd) ? kvvm_win_utf8(fd.cFileName) : NULL;
    if (!name)
      continue;
    names = kvvm_xrealloc(names, (*n + 2) * sizeof *names);
    names[(*n)++] = name;
  } while (FindNextFileW(h, &fd));
  FindClose(h);
  names[*n] = NULL;
  qsort(names, *n, sizeof *names, hook_name_cmp);
  return names;
}

/* path opened as itself (never through a link), readable and not shareable for writing or
 * deleting, with its attributes; INVALID_HANDLE_VALUE with the reason in why. */
static HANDLE open_held(const char *path, bool folder, char *why, size_t n)
{
  char err[160];
  BY_HANDLE_FILE_INFORMATION bi;
  wchar_t *w = kvvm_win_wide(path);
  HANDLE h = w ? CreateFileW(w, READ_CONTROL | FILE_READ_ATTRIBUTES | (folder ? 0 : GENERIC_READ),
                             FILE_SHARE_READ | (folder ? FILE_SHARE_WRITE : 0), NULL,
                             OPEN_EXISTING,
                             FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS, NULL)
               : INVALID_HANDLE_VALUE;
  DWORD e = w ? GetLastError() : ERROR_INVALID_NAME;
  free(w);
  if (h == INVALID_HANDLE_VALUE) {
    snprintf(why, n, "cannot be opened: %s%s", kvvm_win_strerror(e, err, sizeof err),
             e == ERROR_SHARING_VIOLATION ? " (another program holds it open)" : "");
    return h;
  }
  if (!GetFileInformationByHandle(h, &bi))
    snprintf(why, n, "cannot be examined: %s", kvvm_win_strerror(GetLastError(), err, sizeof err));
  else if (bi.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT)
    snprintf(why, n, "is a symbolic link or junction (not followed)");
  else if (!(bi.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) != !folder)
    snprintf(why, n, folder ? "is not a folder" : "is a folder");
  else
    kvvm_hooks_handle_fault(h, path, folder, why, n);
  if (why[0]) {
    CloseHandle(h);
    h = INVALID_HANDLE_VALUE;
  }
  return h;
}

/* The hooks folder and the one above it, checked and held in held[0..1]. */
static bool folders_safe(const char *dir, HANDLE held[2], struct hook_notes *n)
{
  char why[512];
  char *parent = kvvm_path_dirname(dir);
  const char *paths[2] = {dir, parent};
  bool ok = true;
  held[0] = held[1] = INVALID_HANDLE_VALUE;
  for (int i = 0; i < 2 && ok; i++) {
    why[0] = '\0';
    held[i] = open_held(paths[i], true, why, sizeof why);
    if (held[i] == INVALID_HANDLE_VALUE) {
      hook_note(n, "no hook run: %s %s", paths[i], why);
      KVVM_ERR("hooks: no hook run: %s %s", paths[i], why);
      ok = false;
    }
  }
  free(parent);
  return ok;
}

static void report_end(enum hook_end end, const char *name, unsigned long code, int timeout_s,
                       int64_t start, struct hook_notes *n)
{
  char err[160];
  if (end == HOOK_NOT_STARTED)
    hook_note(n, "%s could not be started: %s", name, kvvm_win_strerror(code, err, sizeof err));
  else if (end == HOOK_TIMED_OUT)
    hook_note(n, "%s timed out after %d s (killed)", name, timeout_s);
  else if (end == HOOK_STOPPED)
    hook_note(n, "%s was stopped: kvvm is stopping", name);
  else if (code >= 0xC0000000UL)
    hook_note(n, "%s ended with status 0x%08lX (a crash)", name, code);
  else if (code != 0)
    hook_note(n, "%s exited %lu", name, code);
  else
    KVVM_INFO("hook %s: ok (%lld ms)", name, (long long)(kvvm_clock_mono_ms() - start));
}

/* One hook: checked on the handle held while it runs. False when kvvm is stopping. */
static bool run_one(const char *dir, const char *name, wchar_t *envblock, int timeout_s,
                    struct hook_notes *n)
{
  enum hook_kind kind = kvvm_hooks_kind(name);
  char why[512] = "", *path = kvvm_path_join(dir, name);
  wchar_t *wpath = kvvm_win_wide(path), *app = NULL, *cmd = NULL;
  enum hook_end end = HOOK_EXITED;
  HANDLE h = INVALID_HANDLE_VALUE;
  if (kind == HOOK_NONE) {
    hook_note(n, "%s not run: only .exe, .cmd, .bat and .ps1 files are hooks on Windows", name);
    KVVM_WARN("hook %s not run: only .exe, .cmd, .bat and .ps1 files are hooks on Windows",
              path);
  } else if ((h = open_held(path, false, why, sizeof why)) == INVALID_HANDLE_VALUE) {
    hook_note(n, "%s skipped as unsafe: %s", name, why);
    KVVM_ERR("hook %s skipped as unsafe: %s", path, why);
  } else if (wpath && kvvm_hooks_command(kind, wpath, &app, &cmd)) {
    unsigned long code = 0;
    int64_t start = kvvm_clock_mono_ms();
    KVVM_INFO("hook %s: starting", name);
    end = kvvm_hooks_spawn(name, app, cmd, envblock, timeout_s, &code);
    report_end(end, name, code, timeout_s, start, n);
  }
  if (h != INVALID_HANDLE_VALUE)
    CloseHandle(h);
  free(app);
  free(cmd);
  free(wpath);
  free(path);
  return end != HOOK_STOPPED;
}

/* Every hook in names, in order, until kvvm is asked to stop. */
static void run_all(const char *dir, char **names, size_t count, const char *const *env,
                    int timeout_s, struct hook_notes *n)
{
  wchar_t *envblock = kvvm_hooks_env_block(env);
  if (!envblock) {
    hook_note(n, "no hook run: a variable is not valid UTF-8");
    KVVM_ERR("hooks: no hook run: a variable is not valid UTF-8");
    return;
  }
  for (size_t i = 0; i < count; i++)
    if (!run_one(dir, names[i], envblock, timeout_s, n)) {
      if (i + 1 < count)
        hook_note(n, "%zu hook(s) after it not run", count - i - 1);
      break;
    }
  free(envblock);
}

enum kvvm_err kvvm_hooks_run(const struct kvvm_hooks_opts *opts, const char *const *env,
                             char *why, size_t whylen)
{
  const char *dir = opts && opts->dir ? opts->dir : kvvm_paths_hooks_dir();
  int timeout = opts && opts->timeout_s > 0 ? opts->timeout_s : KVVM_HOOK_TIMEOUT_DEFAULT_S;
  struct hook_notes n = {why, whylen, 0};
  HANDLE held[2] = {INVALID_HANDLE_VALUE, INVALID_HANDLE_VALUE};
  size_t count = 0;
  DWORD e = 0;
  char err[160];
  if (whylen)
    why[0] = '\0';
  char **names = list(dir, &count, &e);
  if (!names && e != ERROR_PATH_NOT_FOUND && e != ERROR_FILE_NOT_FOUND) {
    hook_note(&n, "no hook run: %s cannot be listed: %s", dir, kvvm_win_strerror(e, err, sizeof err));
    KVVM_ERR("hooks: %s", why);
  } else if (count && folders_safe(dir, held, &n)) {   /* none: no hooks, whoever may write */
    run_all(dir, names, count, env, timeout, &n);
  }
  for (int i = 0; i < 2; i++)
    if (held[i] != INVALID_HANDLE_VALUE)
      CloseHandle(held[i]);
  kvvm_strv_free(names);
  if (n.used && names)
    KVVM_WARN("hooks: %s", why);
  return n.used ? KVVM_E_HOOK : KVVM_OK;
}
