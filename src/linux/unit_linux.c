/* The handler-owned systemd unit: rendered from <root>/share/kvvmd.service.in, written only
 * when its text changes, with an environment file for what the unit does not inherit from
 * the agent (proxy, Arc identity endpoint, testing aids). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/paths.h"
#include "kvvm/service.h"
#include "linux/service_int.h"

#define UNIT_NAME "kvvmd.service"
#define SYSTEMCTL_TIMEOUT_S 120

static const char *unit_dir(void)
{
  /* A testing aid, like KVVM_STATE_DIR: tests keep the unit out of /etc. */
  const char *d = getenv("KVVM_UNIT_DIR");
  return d && d[0] == '/' ? d : "/etc/systemd/system";
}

static char *unit_path(void) { return kvvm_path_join(unit_dir(), UNIT_NAME); }
static char *env_path(void) { return kvvm_path_join(kvvm_paths_state_dir(), "kvvmd.env"); }

/* Paths go into the unit unquoted, so anything systemd would split or unescape is refused. */
static bool unit_safe(const char *s)
{
  return s[0] == '/' && !strpbrk(s, " \t\r\n\"'\\%$;");
}

static char *replace_all(const char *text, const char *key, const char *val)
{
  size_t klen = strlen(key), vlen = strlen(val), n = 0;
  for (const char *p = text; (p = strstr(p, key)) != NULL; p += klen)
    n++;
  char *out = kvvm_xmalloc(strlen(text) + n * vlen + 1), *o = out;
  for (const char *p = text, *hit; ; p = hit + klen) {
    hit = strstr(p, key);
    size_t len = hit ? (size_t)(hit - p) : strlen(p);
    memcpy(o, p, len);
    o += len;
    if (!hit)
      break;
    memcpy(o, val, vlen);
    o += vlen;
  }
  *o = '\0';
  return out;
}

/* "-/a -/b": the dash lets the unit start while a store folder does not exist yet. */
static char *rw_list(const char *root, const char *const *rw_paths)
{
  char *list = kvvm_xasprintf("-%s -%s", root, kvvm_paths_state_dir());
  for (const char *const *p = rw_paths; p && *p; p++) {
    if (!unit_safe(*p)) {
      KVVM_WARN("folder \"%s\" cannot be named in a systemd unit; kvvmd may not write it", *p);
      continue;
    }
    char *next = kvvm_xasprintf("%s -%s", list, *p);
    free(list);
    list = next;
  }
  return list;
}

static enum kvvm_err render_unit(const char *root, const char *const *rw_paths, char **out)
{
  char *tpl_path = kvvm_path_join(root, "share/kvvmd.service.in"), *tpl = NULL;
  enum kvvm_err rc = kvvm_file_read(tpl_path, 65536, &tpl, NULL);
  if (rc != KVVM_OK) {
    KVVM_ERR("%s: cannot read the unit template", tpl_path);
    free(tpl_path);
    return KVVM_E_SERVICE;
  }
  char *exe = kvvm_path_join(root, "bin/kvvmd"), *envf = env_path();
  char *rw = rw_list(root, rw_paths);
  char *a = replace_all(tpl, "@KVVMD@", exe);
  char *b = replace_all(a, "@ENVFILE@", envf);
  *out = replace_all(b, "@RWPATHS@", rw);
  rc = unit_safe(root) ? KVVM_OK : KVVM_E_SERVICE;
  if (rc != KVVM_OK)
    KVVM_ERR("package folder \"%s\" cannot be named in a systemd unit", root);
  free(a);
  free(b);
  free(rw);
  free(exe);
  free(envf);
  free(tpl);
  free(tpl_path);
  return rc;
}

/* Systemd environment files take NAME="value" with \ and " escaped; values with line
 * breaks cannot be expressed and are left out. */
static char *render_env(void)
{
  char **env = kvvm_service_env_linux();
  char *text = kvvm_xstrdup("");
  for (char **e = env; *e; e++) {
    char *eq = strchr(*e, '=');
    if (!eq || strpbrk(eq, "\r\n\"\\")) {
      KVVM_WARN("environment variable %.*s left out of the unit's environment",
                (int)(eq ? eq - *e : 0), *e);
      continue;
    }
    char *next = kvvm_xasprintf("%s%.*s\"%s\"\n", text, (int)(eq - *e + 1), *e, eq + 1);
    free(text);
    text = next;
  }
  kvvm_strv_free(env);
  return text;
}

/* Write path with text unless it already holds exactly that; *changed says which. */
static enum kvvm_err write_if_changed(const char *path, const char *text, mode_t mode,
                                      bool *changed)
{
  char *old = NULL;
  *changed = !(kvvm_file_read(path, 1 << 20, &old, NULL) == KVVM_OK && strcmp(old, text) == 0);
  free(old);
  if (!*changed)
    return KVVM_OK;
  return kvvm_file_write_atomic(path, text, strlen(text), mode);
}

static enum kvvm_err systemctl(const char *verb, bool quiet_fail)
{
  const char *argv[] = {"systemctl", verb, UNIT_NAME, NULL};
  int rc = kvvm_service_run(argv, SYSTEMCTL_TIMEOUT_S);
  if (rc == 0)
    return KVVM_OK;
  if (!quiet_fail)
    KVVM_ERR("systemctl %s " UNIT_NAME " failed (exit %d)", verb, rc);
  return KVVM_E_SERVICE;
}

static enum kvvm_err daemon_reload(void)
{
  const char *argv[] = {"systemctl", "daemon-reload", NULL};
  if (kvvm_service_run(argv, SYSTEMCTL_TIMEOUT_S) == 0)
    return KVVM_OK;
  KVVM_ERR("systemctl daemon-reload failed");
  return KVVM_E_SERVICE;
}

enum kvvm_err kvvm_unit_ensure(const char *root, const char *const *rw_paths, bool running_here,
                               bool reload)
{
  char *unit = NULL, *env = render_env(), *upath = unit_path(), *epath = env_path();
  bool unit_changed = false, env_changed = false;
  enum kvvm_err rc = render_unit(root, rw_paths, &unit);
  if (rc == KVVM_OK)
    rc = kvvm_dir_ensure(kvvm_paths_state_dir(), 0700);
  if (rc == KVVM_OK)
    rc = write_if_changed(epath, env, 0600, &env_changed);
  if (rc == KVVM_OK)
    rc = write_if_changed(upath, unit, 0644, &unit_changed);
  if (rc != KVVM_OK)
    goto out;
  if (unit_changed && (rc = daemon_reload()) != KVVM_OK)
    goto out;
  /* Also after a disable, which took the unit off the boot (kvvm_unit_stop). */
  if ((unit_changed || !running_here) && (rc = systemctl("enable", false)) != KVVM_OK)
    goto out;
  if (unit_changed || env_changed || !running_here)
    rc = systemctl(systemctl("is-active", true) == KVVM_OK ? "restart" : "start", false);
  else if (reload)
    rc = systemctl("reload", false);
  if (rc == KVVM_OK)
    KVVM_INFO(UNIT_NAME " runs %s/bin/kvvmd%s", root, unit_changed ? " (unit rewritten)" : "");
out:
  free(unit);
  free(env);
  free(upath);
  free(epath);
  return rc;
}

enum kvvm_err kvvm_unit_stop(void)
{
  char *upath = unit_path();
  bool present = kvvm_path_exists(upath);
  free(upath);
  /* systemctl stop waits for the unit's own stop timeout, then systemd sends SIGKILL. A
   * disabled extension stays stopped across a reboot: the agent runs no enable for it, so
   * the unit leaves the boot until enable puts it back. */
  enum kvvm_err rc = present ? systemctl("stop", false) : KVVM_OK;
  if (present && rc == KVVM_OK)
    rc = systemctl("disable", false);
  return rc;
}

/* The unit belongs to root when its ExecStart names root's kvvmd. */
static bool unit_runs(const char *upath, const char *root)
{
  char *text = NULL, *want = kvvm_xasprintf("ExecStart=%s/bin/kvvmd\n", root);
  bool yes = kvvm_file_read(upath, 1 << 20, &text, NULL) == KVVM_OK && strstr(text, want);
  free(text);
  free(want);
  return yes;
}

enum kvvm_err kvvm_unit_remove(const char *root)
{
  char *upath = unit_path(), *epath = env_path();
  enum kvvm_err rc = KVVM_OK;
  if (unit_runs(upath, root)) {
    systemctl("stop", false);
    systemctl("disable", false);
    if (remove(upath) != 0 || remove(epath) != 0)
      KVVM_WARN("could not remove %s or %s", upath, epath);
    rc = daemon_reload();
  } else {
    KVVM_INFO(UNIT_NAME " does not run %s; left in place", root);
  }
  free(upath);
  free(epath);
  return rc;
}
