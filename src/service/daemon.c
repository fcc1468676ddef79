/* kvvmd: one instance (flock in the state folder), requests (stop, reload, pass now) taken
 * synchronously through kvvm_wake, so the process sleeps between passes with no periodic
 * wake-ups. A pass syncs the certificates that are due (all of them when the poll comes
 * round, failed ones on their own backoff) in a pass worker, a fresh process of this
 * executable (worker.h, daemon_worker.c, docs/worker-protocol.md), which answers with the
 * outcomes; kvvmd then rewrites the status. Between passes kvvmd holds its settings and
 * schedule only: no libcurl, no TLS state, no installed state. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "kvvm/clock.h"
#include "kvvm/daemon.h"
#include "kvvm/fileio.h"
#include "kvvm/henv.h"
#include "kvvm/http.h"
#include "kvvm/log.h"
#include "kvvm/metrics.h"
#include "kvvm/mem.h"
#include "kvvm/paths.h"
#include "kvvm/proc.h"
#include "kvvm/plan.h"
#include "kvvm/report.h"
#include "kvvm/seqno.h"
#include "kvvm/service.h"
#include "kvvm/settings.h"
#include "kvvm/status.h"
#include "kvvm/sync.h"
#include "kvvm/version.h"
#include "kvvm/wake.h"
#include "kvvm/worker.h"
#include "service/daemon_int.h"
#include "service/worker_int.h"

struct daemon {
  struct kvvm_henv *henv;
  char *exe;                 /* ours: the pass worker is `<exe> worker` */
  struct kvvm_config *cfg;   /* the last good settings */
  char *cfg_fp;              /* their fingerprint, for the worker to check */
  long cfg_seq;
  long seq;                  /* the sequence number whose status we write */
  char why[900];             /* why the settings of seq were refused, if they were */
  struct kvvm_lock *lock;  /* the single-instance lock, while held */
  struct kvvm_plan plan;      /* per certificate of cfg: outcomes and when each is due */
  bool passed;               /* a pass has run with cfg */
  bool stop;                 /* a stop came during a pass */
  char pass_hook_error[512]; /* the once-per-pass hooks' failure, from the last pass */
  struct kvvm_pass_facts last_pass; /* for the metrics file */
};

/* Serve <root>/mrseq (written by enable); without one, the newest settings file. */
static enum kvvm_err current_seq(const struct kvvm_henv *h, long *seq)
{
  if (kvvm_seqno_read_mrseq(h->root, seq) == KVVM_OK)
    return KVVM_OK;
  return kvvm_seqno_current(h->config_dir, seq);
}

/* New settings: every certificate is due now, and grants follow the settings at once. */
static void adopt(struct daemon *d, struct kvvm_config *cfg)
{
  size_t n = cfg->n_certs;
  kvvm_metrics_retire(d->cfg, cfg);
  kvvm_config_free(d->cfg);
  free(d->cfg_fp);
  d->cfg = cfg;
  d->cfg_fp = kvvm_worker_settings_fp(cfg);
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
  if (kvvm_daemon_load_settings(d->henv, d->seq, false, &cfg, d->why, sizeof(d->why)) !=
      KVVM_OK)
    return;
  adopt(d, cfg);
  d->cfg_seq = d->seq;
  KVVM_INFO("serving settings of sequence %ld: %zu certificate(s), polling every %u s", d->seq,
            cfg->n_certs, cfg->polling_s);
}

/* Hand req to a pass worker and wait for it; NULL result data when none could start. */
static void ask_worker(struct daemon *d, const struct kvvm_worker_req *req,
                       struct kvvm_worker_result *w)
{
  size_t len;
  char *text = d->exe ? kvvm_worker_req_encode(req, &len) : NULL;
  /* The request's JSON tree is freed: give its pages back rather than hold them beside the
   * worker for the whole pass (at 1,000 certificates, 1.4 MiB of the peak). */
  kvvm_mem_release();
  memset(w, 0, sizeof *w);
  if (!d->exe)
    KVVM_ERR("kvvmd cannot find its own executable to start its pass worker");
  if (!text || kvvm_worker_run(d->exe, text, len, w) != KVVM_OK)
    snprintf(w->ended, sizeof w->ended, "could not be started");
  free(text);
  d->stop = d->stop || w->stop;
}

/* Take the worker's answer; a worker that ended without a whole one (killed, crashed, not
 * started) fails the certificates it had, to be retried on their backoff. */
static size_t take_answer(struct daemon *d, const bool *due, const struct kvvm_worker_result *w)
{
  struct kvvm_worker_ans a;
  size_t n = d->cfg->n_certs;
  if (!w->len || kvvm_worker_ans_decode(w->data, w->len, n, &a) != KVVM_OK) {
    char why[300];
    snprintf(why, sizeof why, "the pass worker %s without finishing the pass (details in "
             "kvvm.log)", w->ended);
    KVVM_ERR("%s", why);
    kvvm_daemon_fail_due(d->plan.out, due, n, KVVM_E_INTERNAL, why);
    return 0;
  }
  kvvm_outcomes_clear(d->plan.out, n);
  memcpy(d->plan.out, a.out, n * sizeof *a.out);   /* the texts change hands */
  free(a.out);
  memcpy(d->pass_hook_error, a.pass_hook_error, sizeof d->pass_hook_error);
  d->stop = d->stop || a.stopping;
  return a.changed;
}

/* A state folder that cannot be used does not stop kvvmd: every pass then reports it per
 * certificate, and retries, until it is mended. */
static void start_up(struct daemon *d)
{
  struct kvvm_worker_req req = {KVVM_JOB_START_UP, d->henv->root, d->cfg ? d->cfg_seq : -1,
                                d->cfg_fp, false, 0, NULL, NULL};
  struct kvvm_worker_result w;
  ask_worker(d, &req, &w);
  if (!w.clean)
    KVVM_WARN("clearing up after an earlier run did not finish: the worker %s", w.ended);
  free(w.data);
}

/* Run the certificates that are due; schedule the next attempt of each. */
static void run_pass(struct daemon *d)
{
  bool *due = kvvm_plan_due(&d->plan);
  int64_t start = kvvm_clock_mono_ms();
  struct kvvm_worker_req req = {KVVM_JOB_PASS, d->henv->root, d->cfg_seq, d->cfg_fp,
                                !d->passed, d->cfg->n_certs, due, d->plan.out};
  struct kvvm_worker_result w;
  ask_worker(d, &req, &w);
  size_t changed = take_answer(d, due, &w);
  free(w.data);
  kvvm_metrics_pass(&d->last_pass, start, d->cfg->n_certs, due, d->plan.out);
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
  /* From the same outcomes; settings refused keep the last good ones, and their series. */
  if (d->cfg && d->passed)
    kvvm_metrics_write(d->cfg, d->plan.out, &d->last_pass);
}

static int64_t next_due(const struct daemon *d)
{
  if (!d->cfg)
    return INT64_MAX / 2;
  return kvvm_plan_next(&d->plan);
}

/* How long to sleep: until the next pass (-1: no settings, until asked). */
static int64_t sleep_ms(const struct daemon *d)
{
  if (!d->cfg)
    return -1;
  int64_t ms = kvvm_plan_next(&d->plan) - kvvm_clock_mono_ms();
  return ms < 0 ? 0 : ms;
}

static void serve(struct daemon *d)
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
    enum kvvm_wake w = kvvm_wake_wait(sleep_ms(d));
    if (w == KVVM_WAKE_STOP) {
      KVVM_INFO("asked to stop");
      return;
    }
    if (w == KVVM_WAKE_RELOAD)
      load_settings(d);
    else if (w == KVVM_WAKE_PASS && d->cfg)
      kvvm_plan_poll_now(&d->plan);
  }
}

static int daemon_serve(int argc, char **argv)
{
  (void)argc;
  (void)argv;
  struct daemon d = {.seq = -1, .cfg_seq = -1};
  char *exe = kvvm_paths_self_exe();
  d.exe = exe;
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
  load_settings(&d);
  start_up(&d);
  if (!d.stop)
    serve(&d);
out:
  kvvm_service_release(d.lock);   /* store, tokens and connections lived and died in the workers */
  kvvm_plan_free(&d.plan);
  kvvm_config_free(d.cfg);
  free(d.cfg_fp);
  kvvm_henv_free(d.henv);
  free(exe);
  kvvm_log_close();
  return rc == KVVM_E_LOCKED ? 0 : kvvm_err_exit_code(rc);
}

/* `kvvmd service`: the same serve loop, run by the platform's service manager;
 * `kvvmd worker`: one pass for the kvvmd that started it (docs/worker-protocol.md). */
int kvvm_daemon_main(int argc, char **argv)
{
  kvvm_proc_protect();
  kvvm_wake_init();
  if (argc > 1 && strcmp(argv[1], "worker") == 0)
    return kvvm_daemon_worker_main(argc, argv);
  if (argc > 1 && strcmp(argv[1], "service") == 0)
    return kvvm_service_dispatch(daemon_serve, argc, argv);
  return daemon_serve(argc, argv);
}
