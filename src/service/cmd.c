/* The five handler commands behind one runner. Each step is short and says why; the agent's
 * rules they follow are in agent-protocol.md (§6 lifecycle, §10 traps). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kvvm/cmd.h"
#include "kvvm/fileio.h"
#include "kvvm/henv.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/metrics.h"
#include "kvvm/paths.h"
#include "kvvm/proc.h"
#include "kvvm/seqno.h"
#include "kvvm/service.h"
#include "kvvm/settings.h"
#include "kvvm/state.h"
#include "kvvm/status.h"
#include "kvvm/version.h"

struct ctx {
  const char *name;
  struct kvvm_henv *henv;
};

/* State keys shared by the commands. */
#define ST_SEQ "applied_seq"
#define ST_CONFIG "applied_config"
#define ST_PACKAGE "package_dir"
#define ST_UPDATED_FROM "updated_from"

static enum kvvm_err write_status(const struct ctx *c, long seq, enum kvvm_status_value v,
                                  int code, const char *msg)
{
  struct kvvm_status st = {.operation = "Enable", .value = v, .code = code, .message = msg};
  return kvvm_status_write(c->henv->status_dir, seq, &st);
}

static enum kvvm_err read_config(const struct ctx *c, long seq, struct kvvm_config **cfg,
                                 char *why, size_t whylen)
{
  /* The agent keeps its transport certificates in Lib.Dir, the package folder's parent. */
  char *lib = kvvm_path_dirname(c->henv->root);
  struct kvvm_settings_opts opts = {.default_store_root = kvvm_paths_store_root(),
                                    .certs_dir = lib,
                                    .store_kind = kvvm_paths_store_kind()};
  enum kvvm_err rc = kvvm_settings_load(c->henv->config_dir, seq, &opts, cfg, why, whylen);
  free(lib);
  return rc;
}

/* A settings error is reported in the status file first: exiting non-zero after only a
 * transitioning status would leave CRP waiting for its own timeout. */
static enum kvvm_err load_config(const struct ctx *c, long seq, struct kvvm_config **cfg)
{
  char why[1024] = "";
  enum kvvm_err rc = read_config(c, seq, cfg, why, sizeof(why));
  if (rc == KVVM_OK)
    return KVVM_OK;
  if (!why[0])
    snprintf(why, sizeof(why), "settings of sequence %ld could not be read", seq);
  KVVM_ERR("settings of sequence %ld refused: %s", seq, why);
  write_status(c, seq, KVVM_ST_ERROR, kvvm_err_status_code(rc), why);
  return rc;
}

static void add_unique(char ***v, size_t *n, const char *path)
{
  for (size_t i = 0; i < *n; i++)
    if (strcmp((*v)[i], path) == 0)
      return;
  *v = kvvm_xrealloc(*v, (*n + 2) * sizeof(**v));
  (*v)[(*n)++] = kvvm_xstrdup(path);
  (*v)[*n] = NULL;
}

/* Folders above a store that others cannot traverse get kvvm's traverse-only ACL entries
 * when a certificate grants read to an account: kvvmd must be able to write their ACLs
 * inside its sandbox too. */
static void add_closed_ancestors(char ***v, size_t *n, const char *dir)
{
  char *p = kvvm_path_dirname(dir), *up = kvvm_path_dirname(p);
  /* Up to the root, which is its own folder ("/"; "C:\" on Windows). */
  while (strcmp(p, up) != 0 && strcmp(p, ".") != 0) {
    struct kvvm_file_info fi;
    if (kvvm_file_info(p, &fi) == KVVM_OK && !(fi.mode & 01))
      add_unique(v, n, p);
    free(p);
    p = up;
    up = kvvm_path_dirname(p);
  }
  free(up);
  free(p);
}

/* The folders kvvmd writes beyond its own: the agent's log folder for kvvm.log (under
 * /var/log, read-only in the unit's sandbox otherwise), and each store folder, created now
 * (0700) so the unit's read-write list names folders that exist. Windows' stores are the
 * system's ("LocalMachine\MY"), not folders: making one would leave an empty
 * LocalMachine\MY folder in the package folder, the working directory. A NULL-terminated
 * list; kvvm_strv_free. */
static char **writable_dirs(const struct ctx *c, const struct kvvm_config *cfg)
{
  char **v = kvvm_xcalloc(1, sizeof(*v));
  size_t n = 0;
  add_unique(&v, &n, c->henv->log_dir);
  for (size_t i = 0; kvvm_paths_store_kind() == KVVM_STORE_FILES && i < cfg->n_certs; i++) {
    const struct kvvm_cert_cfg *cc = &cfg->certs[i];
    if (kvvm_dir_ensure(cc->store_dir, 0700) != KVVM_OK)
      continue;
    add_unique(&v, &n, cc->store_dir);
    if (cc->n_acls || (cc->accounts && cc->accounts[0]))
      add_closed_ancestors(&v, &n, cc->store_dir);
  }
  return v;
}

/* Did anything change since the last enable that kvvmd must pick up? */
static bool settings_changed(const struct ctx *c, const struct kvvm_state *st, long seq,
                             const char *canon)
{
  const char *old = kvvm_state_get_str(st, ST_CONFIG);
  const char *pkg = kvvm_state_get_str(st, ST_PACKAGE);
  enum kvvm_status_value v;
  return kvvm_state_get_int(st, ST_SEQ, -1) != seq || !old || strcmp(old, canon) != 0 ||
         !pkg || strcmp(pkg, c->henv->root) != 0 ||
         kvvm_status_read_value(c->henv->status_dir, seq, &v) != KVVM_OK;
}

static bool daemon_runs_here(const struct ctx *c)
{
  struct kvvm_daemon d;
  kvvm_service_query(&d);
  size_t n = strlen(c->henv->root);
  bool here = d.running && d.exe && strncmp(d.exe, c->henv->root, n) == 0 &&
              (d.exe[n] == '/' || d.exe[n] == '\\');   /* Windows: the SCM's binary path */
  kvvm_daemon_clear(&d);
  return here;
}

static enum kvvm_err record_applied(const struct ctx *c, struct kvvm_state *st, long seq,
                                    const char *canon)
{
  kvvm_state_set_int(st, ST_SEQ, seq);
  kvvm_state_set_str(st, ST_CONFIG, canon);
  kvvm_state_set_str(st, ST_PACKAGE, c->henv->root);
  kvvm_state_set_str(st, "written_by", kvvm_version());
  enum kvvm_err rc = kvvm_state_save(kvvm_paths_state_dir(), st);
  /* kvvmd serves the number in mrseq; the agent copies mrseq on update. */
  return rc == KVVM_OK ? kvvm_seqno_write_mrseq(c->henv->root, seq) : rc;
}

/* enable: validate, say `transitioning` only when something is about to change (a terminal
 * status must not flip back on the agent's routine re-enable), make sure kvvmd runs these
 * settings, return quickly. */
static enum kvvm_err do_enable(struct ctx *c)
{
  long seq;
  struct kvvm_config *cfg = NULL;
  struct kvvm_state *st = NULL;
  char *canon = NULL;
  char **dirs = NULL;
  enum kvvm_err rc = kvvm_seqno_current(c->henv->config_dir, &seq);
  if (rc != KVVM_OK || (rc = load_config(c, seq, &cfg)) != KVVM_OK)
    goto out;
  canon = kvvm_config_to_json(cfg);
  kvvm_state_load(kvvm_paths_state_dir(), &st);
  bool changed = settings_changed(c, st, seq, canon);
  bool running = daemon_runs_here(c);
  KVVM_INFO("sequence %ld: settings %s, kvvmd %s", seq, changed ? "new or changed" : "unchanged",
            running ? "running" : "not running here");
  if (changed || !running) {
    char msg[256];
    snprintf(msg, sizeof(msg), "kvvm %s: applying the settings of sequence %ld (%zu certificate(s))",
             kvvm_version(), seq, cfg->n_certs);
    if ((rc = write_status(c, seq, KVVM_ST_TRANSITIONING, 0, msg)) != KVVM_OK)
      goto out;
  }
  kvvm_state_del(st, ST_UPDATED_FROM);
  if ((rc = record_applied(c, st, seq, canon)) != KVVM_OK)
    goto out;
  dirs = writable_dirs(c, cfg);
  rc = kvvm_service_ensure(c->henv->root, (const char *const *)dirs, changed && running);
  if (rc != KVVM_OK)
    write_status(c, seq, KVVM_ST_ERROR, kvvm_err_status_code(rc),
                 "kvvmd could not be started; see kvvm.log in the extension's log folder");
out:
  kvvm_strv_free(dirs);
  free(canon);
  kvvm_state_free(st);
  kvvm_config_free(cfg);
  return rc;
}

/* install: prepare only. It exits 0 whatever the settings say: a failing install leaves
 * the agent reporting no status at all, while enable can say what is wrong. */
static enum kvvm_err do_install(struct ctx *c)
{
  (void)c;
  if (kvvm_dir_ensure(kvvm_paths_state_dir(), 0700) != KVVM_OK)
    KVVM_WARN("state folder %s could not be created; enable will try again",
              kvvm_paths_state_dir());
  return KVVM_OK;
}

static enum kvvm_err do_disable(struct ctx *c)
{
  (void)c;
  return kvvm_service_stop();
}

/* update runs in the new package before the old one's uninstall: it marks the folder being
 * left, so that uninstall knows it must leave kvvm's unit and state to the new version. */
static enum kvvm_err do_update(struct ctx *c)
{
  struct kvvm_state *st = NULL;
  kvvm_state_load(kvvm_paths_state_dir(), &st);
  const char *from = getenv("AZURE_GUEST_AGENT_UPDATING_FROM_VERSION");
  const char *old_pkg = kvvm_state_get_str(st, ST_PACKAGE);
  KVVM_INFO("update from version %s (package %s) to %s, state format %d",
            from ? from : "?", old_pkg ? old_pkg : "none", c->henv->root, kvvm_state_format(st));
  if (old_pkg)
    kvvm_state_set_str(st, ST_UPDATED_FROM, old_pkg);
  enum kvvm_err rc = kvvm_state_save(kvvm_paths_state_dir(), st);
  kvvm_state_free(st);
  return rc;
}

/* Where the agent uninstalls the old version before updating (Windows), that uninstall
 * cannot see the update coming except by the new version's package, unpacked beside its own
 * in ...\Plugins\<Publisher>.<Type>\ (folder names compared as Windows does, ignoring case). */
static bool other_version_beside(const struct ctx *c)
{
  if (!kvvm_paths_update_uninstalls_first())
    return false;
  char *parent = kvvm_path_dirname(c->henv->root), **names = NULL;
  const char *self = c->henv->root + strlen(parent);
  bool found = false;
  self += strspn(self, "\\/");
  if (kvvm_dir_list(parent, &names) != KVVM_OK)
    names = NULL;
  for (char **n = names; n && *n && !found; n++) {
    char *dir = kvvm_path_join(parent, *n), *manifest = kvvm_path_join(dir, "HandlerManifest.json");
    struct kvvm_file_info fi;
    found = strcasecmp(*n, self) != 0 && kvvm_file_info(manifest, &fi) == KVVM_OK && fi.is_file;
    free(manifest);
    free(dir);
  }
  kvvm_strv_free(names);
  free(parent);
  return found;
}

/* The metrics file of the settings last applied goes with the extension: node_exporter would
 * otherwise serve its series, expiry times included, for ever. Settings that cannot be read
 * any more leave it (logged). */
static void retire_metrics(const struct ctx *c, long seq)
{
  struct kvvm_config *cfg = NULL;
  char why[1024] = "";
  if (seq < 0)
    return;
  if (read_config(c, seq, &cfg, why, sizeof(why)) == KVVM_OK)
    kvvm_metrics_retire(cfg, NULL);
  else
    KVVM_WARN("settings of sequence %ld unreadable (%s): a kvvm.prom they named is left", seq,
              why);
  kvvm_config_free(cfg);
}

/* A real uninstall removes what kvvm owns (unit, state) and leaves certificates and logs;
 * the uninstall that is part of an update leaves everything to the new version. */
static enum kvvm_err do_uninstall(struct ctx *c)
{
  struct kvvm_state *st = NULL;
  const char *dir = kvvm_paths_state_dir();
  kvvm_state_load(dir, &st);
  const char *from = kvvm_state_get_str(st, ST_UPDATED_FROM);
  enum kvvm_err rc = KVVM_OK;
  struct kvvm_daemon d;
  kvvm_service_query(&d);
  bool elsewhere = d.running && !daemon_runs_here(c);
  kvvm_daemon_clear(&d);
  if (elsewhere) {
    KVVM_INFO("kvvmd runs from another package folder; this uninstall leaves it alone");
  } else if (from && strcmp(from, c->henv->root) == 0) {
    KVVM_INFO("uninstall during an update: the new version keeps kvvmd's unit and state");
    kvvm_state_del(st, ST_UPDATED_FROM);
    rc = kvvm_state_save(dir, st);
  } else if (other_version_beside(c)) {
    /* The service goes (its executable is about to go too; enable makes it again), the
     * state stays for the new version. */
    KVVM_INFO("another version's package is beside this one: uninstall during an update; "
              "the state is kept for the new version");
    rc = kvvm_service_remove(c->henv->root);
  } else {
    rc = kvvm_service_remove(c->henv->root);
    retire_metrics(c, kvvm_state_get_int(st, ST_SEQ, -1));
    if (rc == KVVM_OK)
      rc = kvvm_state_remove_all(dir);
    KVVM_INFO("uninstalled; installed certificates are left in place");
  }
  kvvm_state_free(st);
  return rc;
}

struct cmd_row {
  const char *name;
  enum kvvm_err (*fn)(struct ctx *);
};

static const struct cmd_row cmds[] = {
  [KVVM_CMD_INSTALL] = {"install", do_install},
  [KVVM_CMD_ENABLE] = {"enable", do_enable},
  [KVVM_CMD_DISABLE] = {"disable", do_disable},
  [KVVM_CMD_UPDATE] = {"update", do_update},
  [KVVM_CMD_UNINSTALL] = {"uninstall", do_uninstall},
};

int kvvm_cmd_main(enum kvvm_cmd_op op, int argc, char **argv)
{
  (void)argc;
  (void)argv;
  struct ctx c = {.name = cmds[op].name};
  kvvm_proc_protect();
  char *exe = kvvm_paths_self_exe();
  enum kvvm_err rc = kvvm_henv_load(exe, &c.henv);
  if (rc == KVVM_OK) {
    kvvm_log_open(c.henv->log_dir, c.name);
    KVVM_INFO("%s: kvvm %s in %s", c.name, kvvm_version(), c.henv->root);
    rc = cmds[op].fn(&c);
    KVVM_INFO("%s: %s", c.name, kvvm_err_str(rc));
  }
  if (rc != KVVM_OK)
    fprintf(stderr, "kvvm %s: %s (details in kvvm.log)\n", c.name, kvvm_err_str(rc));
  kvvm_henv_free(c.henv);
  free(exe);
  kvvm_log_close();
  return kvvm_err_exit_code(rc);
}
