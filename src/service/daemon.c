/* kvvmd: one instance (flock in the state folder), signals blocked before anything else
 * and taken synchronously with sigtimedwait, so the process sleeps between passes with no
 * periodic wake-ups. A pass syncs the certificates that are due (all of them when the poll
 * comes round, failed ones on their own backoff) in a worker process (worker.h), which
 * answers with the outcomes; kvvmd then rewrites the status. Between passes kvvmd holds its
 * settings and schedule only: no libcurl, no TLS state, no installed state. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvvm/clock.h"
#include "kvvm/daemon.h"
#include "kvvm/fileio.h"
#include "kvvm/henv.h"
#include "kvvm/hooks.h"
#include "kvvm/http.h"
#include "kvvm/installed.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/paths.h"
#include "kvvm/proc.h"
#include "kvvm/plan.h"
#include "kvvm/report.h"
#include "kvvm/seqno.h"
#include "kvvm/service.h"
#include "kvvm/settings.h"
#include "kvvm/status.h"
#include "kvvm/store.h"
#include "kvvm/sync.h"
#include "kvvm/version.h"
#include "kvvm/worker.h"

struct daemon {
  struct kvvm_henv *henv;
  struct kvvm_config *cfg;   /* the last good settings */
  long cfg_seq;
  long seq;                  /* the sequence number whose status we write */
  char why[900];             /* why the settings of seq were refused, if they were */
  struct kvvm_lock *lock;    /* the single-instance lock, while held */
  struct kvvm_store *store;  /* in the worker only */
  struct kvvm_plan plan;      /* per certificate of cfg: outcomes and when each is due */
  bool passed;               /* a pass has run with cfg */
  bool stop;                 /* SIGTERM came during a pass */
  char pass_hook_error[512]; /* the once-per-pass hooks' failure, from the last pass */
  const sigset_t *signals;
};

/* What the pass worker answers, followed by cfg->n_certs outcomes (their why pointers are
 * the worker's) and then each outcome's text: its length (uint32_t, 0 for none) and bytes. */
struct pass_answer {
  size_t n, changed;
  bool stopping;
  char pass_hook_error[512];
};

static void block_signals(sigset_t *set)
{
  sigemptyset(set);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGHUP);
  sigaddset(set, SIGUSR1);
  sigprocmask(SIG_BLOCK, set, NULL);
}

/* Serve <root>/mrseq (written by enable); without one, the newest settings file. */
static enum kvvm_err current_seq(const struct kvvm_henv *h, long *seq)
{
  if (kvvm_seqno_read_mrseq(h->root, seq) == KVVM_OK)
    return KVVM_OK;
  return kvvm_seqno_current(h->config_dir, seq);
}

/* The store (installed.json in memory) is opened by the worker. Opening fails only when the
 * state folder is unusable, which kvvm_store_open logs. */
static bool store_ready(struct daemon *d)
{
  return d->store || kvvm_store_open(NULL, &d->store) == KVVM_OK;
}

/* New settings: every certificate is due now, and grants follow the settings at once. */
static void adopt(struct daemon *d, struct kvvm_config *cfg)
{
  size_t n = cfg->n_certs;
  kvvm_config_free(d->cfg);
  d->cfg = cfg;
  kvvm_plan_free(&d->plan);
  kvvm_plan_init(&d->plan, n, cfg->polling_s);
  d->passed = false;
}

/* Keep the last good settings when new ones are invalid: nothing installed is dropped
 * because of a typo. */
static void load_settings(struct daemon *d)
{
  struct kvvm_config *cfg = NULL;
  d->why[0] = '\0';
  if (current_seq(d->henv, &d->seq) != KVVM_OK) {
    snprintf(d->why, sizeof(d->why), "no sequence number: enable has not run");
    return;
  }
  /* The agent keeps its transport certificates in Lib.Dir, the package folder's parent. */
  char *lib = kvvm_path_dirname(d->henv->root);
  struct kvvm_settings_opts opts = {kvvm_paths_store_root(), lib};
  enum kvvm_err rc = kvvm_settings_load(d->henv->config_dir, d->seq, &opts, &cfg, d->why,
                                        sizeof(d->why));
  free(lib);
  if (rc != KVVM_OK)
    return;
  adopt(d, cfg);
  d->cfg_seq = d->seq;
  KVVM_INFO("serving settings of sequence %ld: %zu certificate(s), polling every %u s", d->seq,
            cfg->n_certs, cfg->polling_s);
}

/* A failing hook shows in its certificate's substatus (it never blocks the install). */
static void note_hook_errors(struct daemon *d)
{
  struct kvvm_installed *inst = kvvm_store_installed(d->store);
  for (size_t i = 0; i < d->cfg->n_certs; i++) {
    const struct kvvm_cert_cfg *cc = &d->cfg->certs[i];
    struct kvvm_cert_outcome *o = &d->plan.out[i];
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

/* The pass, in the worker: sync what is due, commit, run the hooks, and answer. New
 * settings (no pass yet) first bring the grants in line, so they follow at once. */
struct pass_job {
  struct daemon *d;
  const bool *due;
};

static void pass_in_store(struct daemon *d, const bool *due, struct pass_answer *a)
{
  if (!d->passed)
    kvvm_store_reconcile_grants(d->store, d->cfg);
  a->changed = kvvm_sync_pass(d->store, d->cfg, due, d->plan.out);
  /* Durable before the status says installed; hooks after, so they see the files. */
  kvvm_store_commit(d->store);
  struct kvvm_hooks_opts hopts = {NULL, 0};
  kvvm_hooks_run_due(kvvm_store_installed(d->store), &hopts);
  note_hook_errors(d);
  const char *err = kvvm_installed_pass_hook_error(kvvm_store_installed(d->store));
  snprintf(a->pass_hook_error, sizeof a->pass_hook_error, "%s", err ? err : "");
}

static void fail_due(struct daemon *d, const bool *due, enum kvvm_err err, const char *why)
{
  for (size_t i = 0; i < d->cfg->n_certs; i++)
    if (due[i]) {
      d->plan.out[i].err = err;
      kvvm_outcome_say(&d->plan.out[i], "%s", why);
    }
}

static int pass_worker(void *arg, int fd)
{
  struct pass_job *job = arg;
  struct daemon *d = job->d;
  struct pass_answer a;
  memset(&a, 0, sizeof a);
  a.n = d->cfg->n_certs;
  if (store_ready(d)) {
    pass_in_store(d, job->due, &a);
  } else {
    /* Retried with backoff like any pass that failed; what is installed stays installed. */
    char why[300];
    snprintf(why, sizeof why, "kvvm's state folder %s cannot be used (details in kvvm.log)",
             kvvm_paths_state_dir());
    fail_due(d, job->due, KVVM_E_STATE, why);
  }
  a.stopping = kvvm_clock_stopping();
  bool ok = kvvm_worker_answer(fd, &a, sizeof a) &&
            kvvm_worker_answer(fd, d->plan.out, a.n * sizeof *d->plan.out);
  for (size_t i = 0; ok && i < a.n; i++) {
    const char *why = kvvm_outcome_why(&d->plan.out[i]);
    uint32_t len = (uint32_t)strlen(why);
    ok = kvvm_worker_answer(fd, &len, sizeof len) && kvvm_worker_answer(fd, why, len);
  }
  return ok ? 0 : 1;
}

/* Walk the outcomes' texts after the outcomes: count them, and set them when apply. False
 * when the answer is cut short or too long. */
static bool walk_texts(struct daemon *d, const char *p, const char *end, bool apply)
{
  for (size_t i = 0; i < d->cfg->n_certs; i++) {
    uint32_t len;
    if ((size_t)(end - p) < sizeof len)
      return false;
    memcpy(&len, p, sizeof len);
    p += sizeof len;
    if ((size_t)(end - p) < len)
      return false;
    if (apply)
      kvvm_outcome_say(&d->plan.out[i], "%.*s", (int)len, p);
    p += len;
  }
  return p == end;
}

/* Take the worker's answer; a worker that ended without a whole one (killed, crashed) fails
 * the certificates it had, to be retried on their backoff. */
static size_t take_answer(struct daemon *d, const bool *due, const struct kvvm_worker_result *w)
{
  const struct pass_answer *a = (const void *)w->data;
  size_t n = d->cfg->n_certs, fixed = sizeof *a + n * sizeof *d->plan.out;
  if (w->len < fixed || a->n != n || !walk_texts(d, w->data + fixed, w->data + w->len, false)) {
    char why[300];
    snprintf(why, sizeof why, "the pass worker %s without finishing the pass (details in "
             "kvvm.log)", w->ended);
    KVVM_ERR("%s", why);
    fail_due(d, due, KVVM_E_INTERNAL, why);
    d->stop = d->stop || w->stop;
    return 0;
  }
  kvvm_outcomes_clear(d->plan.out, n);
  memcpy(d->plan.out, w->data + sizeof *a, n * sizeof *d->plan.out);
  for (size_t i = 0; i < n; i++)
    d->plan.out[i].why = NULL;   /* the worker's pointers: the texts follow */
  walk_texts(d, w->data + fixed, w->data + w->len, true);
  memcpy(d->pass_hook_error, a->pass_hook_error, sizeof d->pass_hook_error);
  d->stop = d->stop || a->stopping || w->stop;
  return a->changed;
}

/* In the worker, once at start: what a killed kvvmd may have left in the store. */
static int start_up_worker(void *arg, int fd)
{
  struct daemon *d = arg;
  (void)fd;
  if (!store_ready(d))
    return 1;
  if (d->cfg)
    kvvm_store_sweep(d->store, d->cfg);
  /* Hooks a crash left due run now: the certificate they announce is already in place. */
  struct kvvm_hooks_opts hopts = {NULL, 0};
  kvvm_hooks_run_due(kvvm_store_installed(d->store), &hopts);
  return 0;
}

/* A state folder that cannot be used does not stop kvvmd: every pass then reports it per
 * certificate, and retries, until it is mended. */
static void start_up(struct daemon *d)
{
  struct kvvm_worker_result w;
  if (kvvm_worker_run(start_up_worker, d, d->signals, &w) == KVVM_OK && !w.clean)
    KVVM_WARN("clearing up after an earlier run did not finish: the worker %s", w.ended);
  d->stop = w.stop;
  free(w.data);
}

/* Run the certificates that are due; schedule the next attempt of each. */
static void run_pass(struct daemon *d)
{
  bool *due = kvvm_plan_due(&d->plan);
  struct pass_job job = {d, due};
  struct kvvm_worker_result w;
  size_t changed = 0;
  if (kvvm_worker_run(pass_worker, &job, d->signals, &w) == KVVM_OK)
    changed = take_answer(d, due, &w);
  else
    fail_due(d, due, KVVM_E_INTERNAL, "kvvmd could not start its pass worker (see kvvm.log)");
  free(w.data);
  kvvm_plan_done(&d->plan, due);
  d->passed = true;
  KVVM_INFO("pass done: %zu certificate(s) changed", changed);
  free(due);
}

static void append_warnings(char *msg, size_t len, const struct kvvm_config *cfg)
{
  for (char **w = cfg->warnings; w && *w; w++) {
    size_t used = strlen(msg);
    snprintf(msg + used, len - used, "%s%s", w == cfg->warnings ? " Warnings: " : "; ", *w);
  }
}

/* Before the first pass of new settings: polling has started. Without requireInitialSync
 * that is success (the documented behaviour); with it, dependents wait. */
static void report_started(const struct daemon *d)
{
  char msg[256];
  const struct kvvm_config *cfg = d->cfg;
  struct kvvm_status st = {.operation = "Enable", .message = msg,
                           .value = cfg->require_initial_sync ? KVVM_ST_TRANSITIONING
                                                              : KVVM_ST_SUCCESS};
  snprintf(msg, sizeof(msg), "kvvm %s: polling started for %zu certificate(s) every %u s; "
           "first sync in progress", kvvm_version(), cfg->n_certs, cfg->polling_s);
  if (d->seq >= 0)
    kvvm_status_write(d->henv->status_dir, d->seq, &st);
}

static void report(const struct daemon *d)
{
  if (d->seq < 0)
    return;
  struct kvvm_report r;
  memset(&r, 0, sizeof(r));
  if (d->why[0]) {
    r.status.operation = "Enable";
    r.status.value = KVVM_ST_ERROR;
    r.status.code = kvvm_err_status_code(KVVM_E_SETTINGS);
    snprintf(r.top, sizeof(r.top), "%s%s", d->why,
             d->cfg ? " (kvvmd keeps the last valid settings)" : "");
    r.status.message = r.top;
  } else {
    kvvm_report_build(d->cfg, d->plan.out, kvvm_clock_now(), &r);
    append_warnings(r.top, sizeof(r.top), d->cfg);
    /* The once-per-pass hooks belong to no certificate: their failure goes up here. */
    if (d->pass_hook_error[0]) {
      size_t used = strlen(r.top);
      snprintf(r.top + used, sizeof(r.top) - used, " Pass hooks failed: %s.",
               d->pass_hook_error);
    }
    /* Nobody should mistake a machine that trusts a test CA for a production one. */
    if (kvvm_http_test_overrides() || getenv("KVVM_ARC_TOKENS_DIR")) {
      size_t used = strlen(r.top);
      snprintf(r.top + used, sizeof(r.top) - used, " (test overrides active)");
    }
  }
  kvvm_status_write(d->henv->status_dir, d->seq, &r.status);
  if (!d->why[0])
    kvvm_report_clear(&r);
}

/* Sleep until the next pass is due or a signal asks for something. Returns the signal,
 * or 0 when the time is up. */
static int wait_next(const sigset_t *set, int64_t ms)
{
  if (ms < 0)
    ms = 0;
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  for (;;) {
    int sig = sigtimedwait(set, NULL, &ts);
    if (sig > 0)
      return sig;
    if (errno == EAGAIN)
      return 0;
    if (errno != EINTR)
      return SIGTERM;
  }
}

static int64_t next_due(const struct daemon *d)
{
  if (!d->cfg)
    return INT64_MAX / 2;
  return kvvm_plan_next(&d->plan);
}

static void serve(struct daemon *d, const sigset_t *set)
{
  for (;;) {
    if (d->cfg && !d->passed && !d->why[0])
      report_started(d);
    if (d->cfg && (!d->passed || kvvm_clock_mono_ms() >= next_due(d)))
      run_pass(d);
    /* A pass cut short by SIGTERM reports nothing: its failures are not the vault's. */
    if (d->stop || kvvm_clock_stopping()) {
      KVVM_INFO("stopping after the work in progress");
      return;
    }
    report(d);
    kvvm_mem_release();   /* the answer's buffer and the status text: give the pages back */
    int sig = wait_next(set, next_due(d) - kvvm_clock_mono_ms());
    if (sig == SIGTERM || sig == SIGINT) {
      KVVM_INFO("signal %d: stopping", sig);
      return;
    }
    if (sig == SIGHUP)
      load_settings(d);
    else if (sig == SIGUSR1 && d->cfg)
      kvvm_plan_poll_now(&d->plan);
  }
}

static int daemon_serve(int argc, char **argv)
{
  sigset_t set;
  kvvm_proc_protect();
  block_signals(&set);
  (void)argc;
  (void)argv;
  struct daemon d = {.seq = -1, .cfg_seq = -1};
  char *exe = kvvm_paths_self_exe();
  enum kvvm_err rc = kvvm_henv_load(exe, &d.henv);
  if (rc != KVVM_OK)
    goto out;
  kvvm_log_open(d.henv->log_dir, "kvvmd");
  /* Started right after a kill (enable replacing kvvmd), it waits for the dead one's lock. */
  rc = kvvm_service_hold(exe ? exe : "?", true, &d.lock);
  if (rc != KVVM_OK)
    goto out;
  KVVM_INFO("kvvmd %s started from %s", kvvm_version(), d.henv->root);
  kvvm_dir_sweep_prefix(d.henv->status_dir, KVVM_TEMP_PREFIX);
  d.signals = &set;
  load_settings(&d);
  start_up(&d);
  if (!d.stop)
    serve(&d, &set);
out:
  kvvm_service_release(d.lock);   /* store, tokens and connections lived and died in the workers */
  kvvm_plan_free(&d.plan);
  kvvm_config_free(d.cfg);
  kvvm_henv_free(d.henv);
  free(exe);
  kvvm_log_close();
  return rc == KVVM_E_LOCKED ? 0 : kvvm_err_exit_code(rc);
}

/* `kvvmd service`: the same serve loop, run by the platform's service manager. */
int kvvm_daemon_main(int argc, char **argv)
{
  if (argc > 1 && strcmp(argv[1], "service") == 0)
    return kvvm_service_dispatch(daemon_serve, argc, argv);
  return daemon_serve(argc, argv);
}
