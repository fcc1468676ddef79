/* Default locations on Windows: kvvm's state and hooks under %ProgramData%\kvvm, outside the
 * package folder, so they survive an update or a downgrade (the agent deletes the old
 * folder). Variables are read as UTF-16 and kept as UTF-8: getenv would give them in the
 * ANSI code page, which cannot hold every path. Each value is worked out once per process. */
#include <stdbool.h>
#include <stdlib.h>
#include <windows.h>
#include <shlobj.h>

#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/paths.h"
#include "windows/win_int.h"

/* A variable's value as UTF-8, or NULL when it is unset or cannot be converted. */
static char *env_utf8(const wchar_t *name)
{
  DWORD n = GetEnvironmentVariableW(name, NULL, 0);
  if (n == 0)
    return NULL;
  wchar_t *w = kvvm_xmalloc(n * sizeof *w);
  char *s = GetEnvironmentVariableW(name, w, n) == n - 1 ? kvvm_win_utf8(w) : NULL;
  free(w);
  return s;
}

/* C:\... (or C:/...) and \\server\share\...; a relative or drive-relative path would depend
 * on the working directory, which the agent, the SCM and an operator all set differently. */
static bool absolute(const char *p)
{
  bool drive = ((p[0] >= 'A' && p[0] <= 'Z') || (p[0] >= 'a' && p[0] <= 'z')) && p[1] == ':' &&
               (p[2] == '\\' || p[2] == '/');
  return drive || (p[0] == '\\' && p[1] == '\\');
}

const char *kvvm_win_program_data(void)
{
  static char *dir;
  wchar_t *w = NULL;
  if (dir)
    return dir;
  if (SHGetKnownFolderPath(&FOLDERID_ProgramData, 0, NULL, &w) == S_OK)
    dir = kvvm_win_utf8(w);
  CoTaskMemFree(w);
  if (!dir) {
    /* Only a damaged profile gets here; Windows has put ProgramData there since Vista. */
    KVVM_WARN("the ProgramData folder is unknown; using C:\\ProgramData");
    dir = kvvm_xstrdup("C:\\ProgramData");
  }
  return dir;
}

/* The variable when it holds an absolute path, else <ProgramData>\<sub>. */
static char *env_or(const wchar_t *name, const char *sub)
{
  char *v = env_utf8(name);
  if (v && absolute(v))
    return v;
  free(v);
  return kvvm_xasprintf("%s\\%s", kvvm_win_program_data(), sub);
}

const char *kvvm_paths_state_dir(void)
{
  static char *dir;
  if (!dir)
    dir = env_or(L"KVVM_STATE_DIR", "kvvm");
  return dir;
}

const char *kvvm_paths_hooks_dir(void)
{
  static char *dir;
  if (!dir)
    dir = env_or(L"KVVM_HOOKS_DIR", "kvvm\\hooks");
  return dir;
}

/* The certificate store is crypt32's system store, not a folder: settings map location and
 * name to "LocalMachine\\MY" and the like (settings_cert.c), so no root is needed; this is
 * what `kvvm status` shows as the default location. */
const char *kvvm_paths_store_root(void) { return "LocalMachine"; }

/* Windows keeps its roots in the Root store, which the Windows store's own chain check
 * (store_chain_windows.c) reads: there is no bundle file. */
const char *kvvm_paths_trust_file(void) { return NULL; }

/* No default: node_exporter is not packaged for Windows, and windows_exporter's textfile
 * folder is named in the settings when it is wanted (README, Metrics). */
const char *kvvm_paths_metrics_dir(void) { return NULL; }

enum kvvm_store_kind kvvm_paths_store_kind(void) { return KVVM_STORE_WINDOWS; }

bool kvvm_paths_update_uninstalls_first(void) { return true; }

/* GetModuleFileNameW truncates silently: grow until the path fits (long paths exceed
 * MAX_PATH). */
char *kvvm_paths_self_exe(void)
{
  for (DWORD cap = MAX_PATH; cap <= 32768; cap *= 2) {
    wchar_t *w = kvvm_xmalloc(cap * sizeof *w);
    DWORD n = GetModuleFileNameW(NULL, w, cap);
    bool fits = n > 0 && n < cap;
    char *exe = fits ? kvvm_win_utf8(w) : NULL;
    free(w);
    if (fits || n == 0)
      return exe;
  }
  return NULL;
}
