/* `kvvmd worker`: one job for kvvmd in a fresh process (docs/worker-protocol.md). It loads
 * the settings kvvmd serves, opens the store, runs the pass as kvvmd asked -- sync what is
 * due, commit, run the hooks -- and answers with every certificate's outcome. It holds
 * kvvmd-worker.lock meanwhile, so the worker of a new kvvmd waits for that of a killed one
 * (still finishing a system call) instead of writing the store beside it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/clock.h"
#include "kvvm/fileio.h"
#include "kvvm/hooks.h"
#include "kvvm/installed.h"
#include "kvvm/log.h"
#include "kvvm/phase.h"
#include "kvvm/mem.h"
#include "kvvm/paths.h"
#include "kvvm/store.h"
#include "kvvm/worker.h"
#include "service/daemon_int.h"
#include "service/worker_int.h"

#define HENV_FILE "HandlerEnvironment.json"
#define HENV_MAX (64 * 1024)

struct job {
  struct kvvm_worker_req req;
  struct kvvm_henv *henv;
  struct kvvm_config *cfg;
  char why[900];              /* why cfg cannot be used */
  bool cfg_ok;                /* cfg is what kvvmd serves */
  struct kvvm_lock *lock;     /* kvvmd-worker.lock: held until the pass is answered */
  struct kvvm_store *store;
  struct kvvm_worker_ans ans;
};

enum kvvm_err kvvm_daemon_load_settings(const struct kvvm_henv *h, long seq, bool quiet,
                                        struct kvvm_config **cfg, char *why, size_t len)
{
  /* The agent keeps its transport certificates in Lib.Dir, the package folder's parent. */
  char *lib = kvvm_path_dirname(h->root);
  struct kvvm_settings_opts opts = {.default_store_root = kvvm_paths_store_root(),
                                    .certs_dir = lib,
                                    .store_kind = kvvm_paths_store_kind(),
                                    .quiet = quiet};
  enum kvvm_err rc = kvvm_settings_load(h->config_dir, seq, &opts, cfg, why, len);
  free(lib);
  return rc;
}

void kvvm_daemon_fail_due(struct kvvm_cert_outcome *out, const bool *due, size_t n,
                          enum kvvm_err err, const char *why)
{
  for (size_t i = 0; i < n; i++)
    if (due[i]) {
      out[i].err = err;
      kvvm_outcome_say(&out[i], "%s", why);
    }
}

static enum kvvm_err read_request(struct kvvm_worker_req *r)
{
  size_t cap = 65536, len = 0, got;
  char *buf = kvvm_xmalloc(cap);
  while ((got = fread(buf + len, 1, cap - len, stdin)) > 0) {
    len += got;
    if (len == cap && cap < KVVM_WORKER_MSG_MAX)
      buf = kvvm_xrealloc(buf, cap *= 2);
    else if (len == cap)
      break;
  }
  enum kvvm_err rc = KVVM_E_INTERNAL;
  if (ferror(stdin) || len == cap)
    KVVM_ERR("the pass worker could not read its request (%s)",
             ferror(stdin) ? "a read error" : "too large");
  else
    rc = kvvm_worker_req_decode(buf, len, r);
  free(buf);
  return rc;
}

static enum kvvm_err load_henv(const char *root, struct kvvm_henv **h)
{
  char *path = kvvm_path_join(root, HENV_FILE), *text = NULL;
  enum kvvm_err rc = kvvm_file_read(path, HENV_MAX, &text, NULL);
  if (rc == KVVM_OK)
    rc = kvvm_henv_parse(text, root, h);
  else
    KVVM_ERR("the pass worker cannot read %s: %s", path, kvvm_err_str(rc));
  free(text);
  free(path);
  return rc;
}

/* The worker lock, then the store (installed.json in memory). Either fails only when the
 * state folder is unusable, which they log. */
static bool store_ready(struct job *j)
{
  char *lock = kvvm_path_join(kvvm_paths_state_dir(), "kvvmd-worker.lock");
  bool ok = kvvm_dir_ensure(kvvm_paths_state_dir(), 0700) == KVVM_OK &&
            kvvm_lock_open(lock, true, false, &j->lock) == KVVM_OK &&
            kvvm_store_open(NULL, &j->store) == KVVM_OK;
  free(lock);
  return ok;
}

/* The settings loaded here are the ones kvvmd serves: the same file, read the same way. */
static bool same_settings(struct job *j)
{
  if (!j->cfg) {
    if (!j->why[0])
      snprintf(j->why, sizeof j->why, "the settings of sequence %ld cannot be read again",
               j->req.seq);
    return false;
  }
  char *fp = kvvm_worker_settings_fp(j->cfg);
  bool same = !j->req.settings_fp || strcmp(fp, j->req.settings_fp) == 0;
  free(fp);
  if (!same || (j->req.job == KVVM_JOB_PASS && j->cfg->n_certs != j->req.n))
    snprintf(j->why, sizeof j->why, "the settings of sequence %ld changed on disk after kvvmd "
             "read them; it reads them again on its next reload (enable)", j->req.seq);
  return j->why[0] == '\0';
}

/* A failing hook shows in its certificate's substatus (it never blocks the install). */
static void note_hook_errors(struct job *j)
{
  struct kvvm_installed *inst = kvvm_store_installed(j->store);
  for (size_t i = 0; i < j->cfg->n_certs; i++) {
    const struct kvvm_cert_cfg *cc = &j->cfg->certs[i];
    struct kvvm_cert_outcome *o = &j->ans.out[i];
    bool due;
    const char *err = o->err == KVVM_OK ? kvvm_installed_hook_error(inst, cc->url,
                                                                     cc->store_dir, &due) : NULL;
    if (err) {
      o->err = KVVM_E_HOOK;
      o->hook_again = due;
      kvvm_outcome_say(o, "renewal hook failed: %s", err);
    }
    kvvm_installed_park(inst);   /* one parsed record at a time */
  }
}

/* The commit could not make the pass durable (a disk error, logged): the versions it was to
 * put in place are not called installed; the next pass installs them again. */
static void commit_failed(struct job *j)
{
  struct kvvm_worker_ans *a = &j->ans;
  for (size_t i = 0; i < a->n; i++)
    if ((!j->req.due || j->req.due[i]) && a->out[i].changed) {
      a->out[i].err = KVVM_E_IO;
      a->out[i].changed = false;
      a->changed--;
      kvvm_outcome_say(&a->out[i], "version %s could not be written to disk durably (details "
                       "in kvvm.log); it is installed again on the next pass",
                       a->out[i].version);
    }
}

/* Sync what is due, commit, run the hooks. New settings (no pass yet) first bring the
 * grants in line, so they follow at once. */
static void pass_in_store(struct job *j)
{
  struct kvvm_worker_ans *a = &j->ans;
  if (j->req.reconcile)
    kvvm_store_reconcile_grants(j->store, j->cfg);
  a->changed = kvvm_sync_pass(j->store, j->cfg, j->req.due, a->out);
  /* Durable before the status says installed; hooks after, so they see the files. */
  struct kvvm_phase_mark m;
  kvvm_phase_begin(&m);
  if (kvvm_store_commit(j->store) != KVVM_OK)
    commit_failed(j);
  kvvm_phase_end(KVVM_PHASE_COMMIT, &m);
  struct kvvm_hooks_opts hopts = {NULL, 0};
  kvvm_phase_begin(&m);
  kvvm_hooks_run_due(kvvm_store_installed(j->store), &hopts);
  kvvm_phase_end(KVVM_PHASE_HOOKS, &m);
  note_hook_errors(j);
  const char *err = kvvm_installed_pass_hook_error(kvvm_store_installed(j->store));
  snprintf(a->pass_hook_error, sizeof a->pass_hook_error, "%s", err ? err : "");
}

static void pass(struct job *j)
{
  struct kvvm_worker_ans *a = &j->ans;
  a->n = j->req.n;
  a->out = j->req.out;   /* the answer starts from what kvvmd holds */
  j->req.out = NULL;
  if (!j->cfg_ok) {
    KVVM_ERR("%s", j->why);
    kvvm_daemon_fail_due(a->out, j->req.due, a->n, KVVM_E_SETTINGS, j->why);
  } else if (store_ready(j)) {
    pass_in_store(j);
  } else {
    /* Retried with backoff like any pass that failed; what is installed stays installed. */
    char why[300];
    snprintf(why, sizeof why, "kvvm's state folder %s cannot be used (details in kvvm.log)",
             kvvm_paths_state_dir());
    kvvm_daemon_fail_due(a->out, j->req.due, a->n, KVVM_E_STATE, why);
  }
  /* The answer needs only the outcomes. The installed state (a first sync of 1,000: its
   * parked records) and the settings go before the answer's tree is built in their place:
   * built on top of them, it was the worker's peak (7.3 of 7.4 MiB). */
  kvvm_store_close(j->store);
  j->store = NULL;
  kvvm_config_free(j->cfg);
  j->cfg = NULL;
}

/* What a killed kvvmd may have left in the store: temp files, and hooks a crash left due
 * (the certificate they announce is already in place). */
static bool start_up(struct job *j)
{
  if (!store_ready(j))
    return false;
  if (j->cfg_ok)
    kvvm_store_sweep(j->store, j->cfg);
  struct kvvm_hooks_opts hopts = {NULL, 0};
  kvvm_hooks_run_due(kvvm_store_installed(j->store), &hopts);
  return true;
}

static bool answer(const struct kvvm_worker_ans *a)
{
  size_t len;
  kvvm_mem_release();   /* what the pass freed, before the answer's tree is built */
  char *text = kvvm_worker_ans_encode(a, &len);
  bool ok = text && fwrite(text, 1, len, stdout) == len && fflush(stdout) == 0;
  if (text && !ok)
    KVVM_ERR("the pass worker could not write its answer (kvvmd gone?)");
  free(text);
  return ok;
}

static void job_clear(struct job *j)
{
  kvvm_store_close(j->store);
  kvvm_worker_ans_clear(&j->ans);
  kvvm_worker_req_clear(&j->req);
  kvvm_config_free(j->cfg);
  kvvm_henv_free(j->henv);
  kvvm_lock_close(j->lock);
}

int kvvm_daemon_worker_main(int argc, char **argv)
{
  struct job j = {0};
  bool ok = false;
  struct kvvm_phase_mark m;
  kvvm_phase_begin(&m);
  if (!kvvm_worker_adopt(argc, argv) || read_request(&j.req) != KVVM_OK ||
      load_henv(j.req.root, &j.henv) != KVVM_OK)
    goto out;
  kvvm_log_open(j.henv->log_dir, "kvvmd");
  if (j.req.seq >= 0 &&
      kvvm_daemon_load_settings(j.henv, j.req.seq, true, &j.cfg, j.why, sizeof j.why) != KVVM_OK)
    KVVM_ERR("the pass worker cannot load the settings of sequence %ld: %s", j.req.seq, j.why);
  j.cfg_ok = j.req.seq >= 0 && same_settings(&j);
  /* The JSON trees of the request, the settings and their fingerprint are freed: give
   * their pages back rather than carry them through the pass (1,000 certificates: 2 MiB). */
  kvvm_mem_release();
  kvvm_phase_end(KVVM_PHASE_SETUP, &m);
  if (j.req.job == KVVM_JOB_PASS)
    pass(&j);
  ok = j.req.job == KVVM_JOB_PASS || start_up(&j);
  j.ans.stopping = kvvm_clock_stopping();
  kvvm_phase_begin(&m);
  ok = answer(&j.ans) && ok;
  kvvm_phase_end(KVVM_PHASE_ANSWER, &m);
  if (j.req.job == KVVM_JOB_PASS)
    kvvm_phase_write();
out:
  job_clear(&j);
  kvvm_log_close();
  return ok ? 0 : 1;
}
