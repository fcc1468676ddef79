/* kvvm run: the sync engine in the foreground, without the guest agent (a machine outside
 * Azure's agent, or trying kvvm out). The same pass as kvvmd (kvvm_sync_pass, commit, hooks)
 * and the same schedule (kvvm_plan: poll with jitter, capped backoff per failed
 * certificate), under the same lock, so it never runs beside kvvmd. It reports to the
 * terminal instead of a status file; it writes kvvmd's pid file so `kvvm status` and
 * `kvvm sync-now` work with it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/cli.h"
#include "kvvm/clock.h"
#include "kvvm/fileio.h"
#include "kvvm/hooks.h"
#include "kvvm/http.h"
#include "kvvm/identity.h"
#include "kvvm/metrics.h"
#include "kvvm/mem.h"
#include "kvvm/paths.h"
#include "kvvm/plan.h"
#include "kvvm/proc.h"
#include "kvvm/service.h"
#include "kvvm/store.h"
#include "kvvm/sync.h"
#include "kvvm/wake.h"

static const char run_help[] =
    "usage: kvvm run --config FILE [--once]\n"
    "Run the sync engine in the foreground without the guest agent. FILE is a settings\n"
    "document in any form check-settings accepts (\"-\": standard input). Certificates go\n"
    "where the settings say, state to KVVM_STATE_DIR (default /var/lib/kvvm), renewal hooks\n"
    "run from KVVM_HOOKS_DIR (default /etc/kvvm/hooks.d), as under kvvmd. One line per\n"
    "certificate after each pass; while certificates are still pending, a progress line.\n"
    "Polls at the settings' interval until SIGTERM or Ctrl-C; SIGUSR1 or `kvvm sync-now`\n"
    "starts a pass at once. Holds kvvmd's lock: it does not start while kvvmd runs.\n"
    "--once   one pass, then exit.\n"
    "Exit status: 0 (with --once: every certificate installed, none with an error); 1 a\n"
    "certificate is not installed or has an error (--once) or the settings are invalid;\n"
    "2 usage; 3 kvvmd or another run holds the lock.\n";

struct runner {
  const struct kvvm_config *cfg;
  struct kvvm_store *store;
  struct kvvm_plan plan;  /* outcomes and when each certificate is next due */
  struct kvvm_lock *lock;
};

static void print_outcome(const struct kvvm_cert_cfg *cc, const struct kvvm_cert_outcome *o)
{
  char exp[32];
  kvvm_cli_time(o->not_after, exp, sizeof(exp));
  if (o->state == KVVM_CERT_INSTALLED)
    printf("installed  %s  version %s  thumbprint %s  expires %s%s\n", cc->url, o->version,
           o->thumbprint, exp, o->changed ? "  (new)" : "");
  else
    printf("%-10s %s  %s\n", o->state == KVVM_CERT_PENDING ? "pending" : "failed", cc->url,
           o->why ? o->why : kvvm_err_str(o->err));
  if (o->state == KVVM_CERT_INSTALLED && o->why)
    printf("           %s\n", o->why);
}

static void run_pass(struct runner *r)
{
  size_t n = r->cfg->n_certs;
  bool *due = kvvm_plan_due(&r->plan);
  int64_t start = kvvm_clock_mono_ms();
  struct kvvm_pass_facts facts;
  kvvm_sync_pass(r->store, r->cfg, due, r->plan.out);
  /* Durable before the terminal says installed; hooks after, so they see the files. */
  kvvm_store_commit(r->store);
  struct kvvm_hooks_opts hopts = {NULL, 0};
  if (kvvm_hooks_run_due(kvvm_store_installed(r->store), &hopts) == KVVM_E_HOOK)
    printf("a renewal hook failed: see the log lines above\n");
  kvvm_plan_done(&r->plan, due);
  kvvm_metrics_pass(&facts, start, n, due, r->plan.out);
  kvvm_metrics_write(r->cfg, r->plan.out, &facts);
  for (size_t i = 0; i < n; i++)
    if (due[i])
      print_outcome(&r->cfg->certs[i], &r->plan.out[i]);
  fflush(stdout);
  free(due);
}

static size_t count_installed(const struct runner *r)
{
  size_t k = 0;
  for (size_t i = 0; i < r->cfg->n_certs; i++)
    k += r->plan.out[i].state == KVVM_CERT_INSTALLED;
  return k;
}

/* Every certificate installed and none with an error in the last pass: a script running
 * --once must hear about a new version that could not be installed (disk full, say) even
 * though the previous one still serves. */
static bool all_good(const struct runner *r)
{
  for (size_t i = 0; i < r->cfg->n_certs; i++)
    if (r->plan.out[i].state != KVVM_CERT_INSTALLED || r->plan.out[i].err != KVVM_OK)
      return false;
  return true;
}

/* While the first sync is incomplete, one progress line, refreshed each second on a
 * terminal (printed once per wait otherwise, so a log stays short). */
static void progress(const struct runner *r, int64_t left_ms, bool first)
{
  size_t k = count_installed(r), n = r->cfg->n_certs;
  bool tty = kvvm_proc_stdout_is_tty();
  if (k == n || (!tty && !first))
    return;
  printf("%sfirst sync: %zu of %zu installed; next attempt in %lld s%s", tty ? "\r" : "", k,
         n, (long long)((left_ms + 999) / 1000), tty ? "   " : "\n");
  fflush(stdout);
}

/* Sleep until the next pass is due or something is asked for (kvvm_wake). */
static enum kvvm_wake wait_next(struct runner *r)
{
  bool first = true;
  for (;;) {
    int64_t left = kvvm_plan_next(&r->plan) - kvvm_clock_mono_ms();
    if (left <= 0)
      return KVVM_WAKE_TIMEOUT;
    progress(r, left, first);
    first = false;
    int64_t slice = count_installed(r) < r->cfg->n_certs && left > 1000 ? 1000 : left;
    enum kvvm_wake w = kvvm_wake_wait(slice);
    if (w != KVVM_WAKE_TIMEOUT)
      return w;
  }
}

static int serve(struct runner *r, bool once)
{
  printf("first sync: fetching %zu certificate(s)\n", r->cfg->n_certs);
  fflush(stdout);
  for (;;) {
    run_pass(r);
    if (once || kvvm_clock_stopping())
      break;
    enum kvvm_wake w = wait_next(r);
    if (kvvm_proc_stdout_is_tty() && count_installed(r) < r->cfg->n_certs)
      printf("\n");
    /* Its settings are a file named on the command line: a hang-up (RELOAD) ends it, as
     * closing its terminal always did, only now after the work in progress. */
    if (w == KVVM_WAKE_STOP || w == KVVM_WAKE_RELOAD)
      break;
    if (w == KVVM_WAKE_PASS)
      kvvm_plan_poll_now(&r->plan);
  }
  return all_good(r) ? KVVM_CLI_OK : KVVM_CLI_FAIL;
}

static int start(struct runner *r, bool once)
{
  size_t n = r->cfg->n_certs ? r->cfg->n_certs : 1;
  char *exe = kvvm_paths_self_exe();
  enum kvvm_err rc = kvvm_service_hold(exe ? exe : "kvvm", false, &r->lock);
  free(exe);
  if (rc == KVVM_E_LOCKED) {
    fprintf(stderr, "kvvm: kvvmd or another `kvvm run` is running (it holds the lock)\n");
    return KVVM_CLI_NOT_RUNNING;
  }
  if (rc == KVVM_OK)
    rc = kvvm_store_open(NULL, &r->store);
  if (rc != KVVM_OK) {
    fprintf(stderr, "kvvm: cannot use the state folder %s: %s\n", kvvm_paths_state_dir(),
            kvvm_err_str(rc));
    return KVVM_CLI_FAIL;
  }
  kvvm_plan_init(&r->plan, n, r->cfg->polling_s);
  kvvm_store_sweep(r->store, r->cfg);
  kvvm_store_reconcile_grants(r->store, r->cfg);
  return serve(r, once);
}

static bool parse_args(int argc, char **argv, const char **config, bool *once)
{
  *config = NULL;
  *once = false;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--once") == 0)
      *once = true;
    else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
      *config = argv[++i];
    else
      return false;
  }
  return *config != NULL;
}

int kvvm_cli_run(int argc, char **argv)
{
  const char *config, *form;
  bool once;
  char why[1024] = "";
  struct kvvm_config *cfg = NULL;
  if (kvvm_cli_wants_help(argc, argv, run_help))
    return KVVM_CLI_OK;
  if (!parse_args(argc, argv, &config, &once)) {
    fputs(run_help, stderr);
    return KVVM_CLI_USAGE;
  }
  struct runner r = {0};
  /* Before anything else, taken synchronously: a stop ends a pass's retries cleanly
   * (kvvm_clock), SIGUSR1 (sync-now) asks for a pass. */
  kvvm_wake_init();
  int rc = KVVM_CLI_FAIL;
  if (kvvm_cli_load_doc(config, &cfg, &form, why, sizeof(why)) != KVVM_OK) {
    fprintf(stderr, "kvvm: invalid settings (%s): %s\n", form, why);
    goto out;
  }
  for (char **w = cfg->warnings; w && *w; w++)
    printf("warning: %s\n", *w);
  r.cfg = cfg;
  rc = start(&r, once);
out:
  kvvm_service_release(r.lock);
  kvvm_store_close(r.store);
  kvvm_identity_forget();
  kvvm_http_shutdown();
  kvvm_plan_free(&r.plan);
  kvvm_config_free(cfg);
  return rc;
}
