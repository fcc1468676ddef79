/* kvvmd's environment on Windows. The SCM starts a service with the system's environment,
 * not the agent's, so enable's proxies, identity endpoints and KVVM_* testing aids
 * (kvvm_service_env) would never reach kvvmd. Windows documents a REG_MULTI_SZ value
 * `Environment` under the service's key for this, but wine 8's services.exe never reads it
 * (measured: a test service saw none of it, even after services.exe restarted), so kvvm
 * could not test it. Instead enable writes <package>\kvvmd.env ("NAME=value" lines, UTF-8)
 * and `kvvmd service` sets those variables before anything else runs. The file sits beside
 * bin\, not in the state folder: KVVM_STATE_DIR is itself one of the variables, and whoever
 * may write the package folder may replace kvvmd.exe anyway. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/paths.h"
#include "kvvm/service.h"
#include "windows/service_int.h"
#include "windows/win_int.h"

#define ENV_MAX (1 << 20)

/* This process's environment as UTF-8 "NAME=value" strings. Entries that begin with '='
 * (the per-drive current folders) are not variables. */
static char **process_env(void)
{
  wchar_t *block = GetEnvironmentStringsW();
  size_t n = 0, cap = 16;
  char **v = kvvm_xcalloc(cap, sizeof *v);
  for (const wchar_t *p = block; p && *p; p += wcslen(p) + 1) {
    char *s = p[0] == L'=' ? NULL : kvvm_win_utf8(p);
    if (!s)
      continue;
    if (n + 1 >= cap)
      v = kvvm_xrealloc(v, (cap *= 2) * sizeof *v);
    v[n++] = s;
  }
  v[n] = NULL;
  if (block)
    FreeEnvironmentStringsW(block);
  return v;
}

/* One variable a line: a value with a line break cannot be written and is left out. */
static char *render(void)
{
  char **all = process_env(), **env = kvvm_service_env((const char *const *)all);
  char *text = kvvm_xstrdup("");
  for (char **e = env; *e; e++) {
    if (strpbrk(*e, "\r\n")) {
      KVVM_WARN("environment variable %.*s left out of kvvmd's environment",
                (int)strcspn(*e, "="), *e);
      continue;
    }
    char *next = kvvm_xasprintf("%s%s\n", text, *e);
    free(text);
    text = next;
  }
  kvvm_strv_free(env);
  kvvm_strv_free(all);
  return text;
}

enum kvvm_err kvvm_win_service_env_write(const char *root, bool *changed)
{
  char *path = kvvm_path_join(root, KVVM_SVC_ENV_NAME), *text = render(), *old = NULL;
  enum kvvm_err rc = KVVM_OK;
  *changed = !(kvvm_file_read(path, ENV_MAX, &old, NULL) == KVVM_OK && strcmp(old, text) == 0);
  if (*changed)
    rc = kvvm_file_write_atomic(path, text, strlen(text), 0600);
  kvvm_free_secret(old, old ? strlen(old) : 0);
  kvvm_free_secret(text, strlen(text));
  free(path);
  return rc;
}

/* _wputenv sets the variable for Win32 and for the C library's getenv alike. */
static enum kvvm_err put_line(const char *line)
{
  const char *eq = strchr(line, '=');
  if (!eq || eq == line) {
    KVVM_ERR(KVVM_SVC_ENV_NAME ": \"%.40s\" is not NAME=value", line);
    return KVVM_E_SERVICE;
  }
  wchar_t *w = kvvm_win_wide(line);
  bool ok = w && _wputenv(w) == 0;
  free(w);
  if (!ok)
    KVVM_ERR(KVVM_SVC_ENV_NAME ": cannot set %.*s", (int)(eq - line), line);
  return ok ? KVVM_OK : KVVM_E_SERVICE;
}

enum kvvm_err kvvm_win_service_env_load(void)
{
  char *exe = kvvm_paths_self_exe(), *bin = exe ? kvvm_path_dirname(exe) : NULL;
  char *root = bin ? kvvm_path_dirname(bin) : NULL, *path = NULL, *text = NULL;
  size_t len = 0;
  enum kvvm_err rc = KVVM_E_SERVICE;
  if (!root) {
    KVVM_ERR("cannot tell kvvmd's package folder");
    goto out;
  }
  path = kvvm_path_join(root, KVVM_SVC_ENV_NAME);
  rc = kvvm_file_read(path, ENV_MAX, &text, &len);
  if (rc == KVVM_E_NOENT) {
    rc = KVVM_OK;   /* an enable older than this file: the system's environment only */
    goto out;
  }
  for (char *line = text, *next; rc == KVVM_OK && line && *line; line = next) {
    next = strchr(line, '\n');
    if (next)
      *next++ = '\0';
    rc = put_line(line);
  }
out:
  kvvm_free_secret(text, len);   /* a proxy URL may carry a password */
  free(path);
  free(root);
  free(bin);
  free(exe);
  return rc;
}
