/* kvvm: what an operator on the VM asks of the service. Output is for people (and --json for
 * scripts); nothing here prints a secret (settings are shown only in their normalised,
 * secret-free form). Each subcommand lives in its own file: cli_status.c, cli_settings.c,
 * cli_run.c; this one dispatches and holds sync-now and wait. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/cli.h"
#include "kvvm/clock.h"
#include "kvvm/fileio.h"
#include "kvvm/henv.h"
#include "kvvm/installed.h"
#include "kvvm/log.h"
#include "kvvm/paths.h"
#include "kvvm/proc.h"
#include "kvvm/seqno.h"
#include "kvvm/service.h"
#include "kvvm/settings.h"
#include "kvvm/version.h"

#define WAIT_DEFAULT_S 600

static const char usage_text[] =
    "usage: kvvm <command> [options]   (kvvm <command> --help for each)\n"
    "  status [--json]             kvvmd and every observed certificate\n"
    "  check-settings FILE|-       validate a settings document; print the normalised form\n"
    "  wait [--timeout S]          return once every observed certificate is installed\n"
    "  sync-now                    ask kvvmd for a pass at once\n"
    "  run --config FILE [--once]  the sync engine in the foreground, without the agent\n"
    "  --version                   print the version\n";

static const char sync_help[] =
    "usage: kvvm sync-now\n"
    "Ask the running kvvmd (or `kvvm run`) for a pass at once; during a pass, one more pass\n"
    "follows it. Returns at once: see `kvvm status` or `kvvm wait` for the outcome.\n"
    "Exit status: 0 asked; non-zero when nothing runs.\n";

static const char wait_help[] =
    "usage: kvvm wait [--timeout S]\n"
    "Wait until every certificate in the settings kvvmd serves (the package's mrseq, as\n"
    "kvvmd reads it) is installed at its latest (or pinned) version, as installed.json\n"
    "records it. Waits also while the extension is not enabled yet. Checks once a second.\n"
    "--timeout S gives up after S seconds (default 600; 0 waits forever).\n"
    "Exit status: 0 installed; 1 timed out (the pending certificates and their last error\n"
    "are printed); 2 usage.\n";

bool kvvm_cli_wants_help(int argc, char **argv, const char *text)
{
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(text, stdout);
      return true;
    }
  }
  return false;
}

/* One level above the highest: nothing reaches stderr while the CLI reports the reason. */
void kvvm_cli_quiet(bool quiet)
{
  kvvm_log_set_stderr_level(quiet ? (enum kvvm_log_level)(KVVM_LOG_ERR + 1) : KVVM_LOG_ERR);
}

void kvvm_cli_time(time_t t, char *buf, size_t n)
{
  struct tm tm;
  if (!t || !gmtime_r(&t, &tm))
    snprintf(buf, n, "-");
  else
    strftime(buf, n, "%Y-%m-%d %H:%M UTC", &tm);
}

struct kvvm_config *kvvm_cli_served_config(char *why, size_t whylen)
{
  struct kvvm_henv *h = NULL;
  struct kvvm_config *cfg = NULL;
  char *exe = kvvm_paths_self_exe();
  long seq;
  /* Not being under the agent is normal here (kvvm run) and wait asks every second. */
  kvvm_cli_quiet(true);
  if (kvvm_henv_load(exe, &h) != KVVM_OK)
    snprintf(why, whylen, "no HandlerEnvironment.json: kvvm is not in a package folder");
  else if (kvvm_seqno_read_mrseq(h->root, &seq) != KVVM_OK)
    snprintf(why, whylen, "the extension has not been enabled yet");
  else {
    char *lib = kvvm_path_dirname(h->root);
    struct kvvm_settings_opts opts = {.default_store_root = kvvm_paths_store_root(),
                                      .certs_dir = lib,
                                      .store_kind = kvvm_paths_store_kind()};
    kvvm_settings_load(h->config_dir, seq, &opts, &cfg, why, whylen);
    free(lib);
  }
  kvvm_cli_quiet(false);
  kvvm_henv_free(h);
  free(exe);
  return cfg;
}

/* Installed means the version kvvmd would install is on disk; a later failed refresh of an
 * installed certificate does not make an application wait again. */
static bool cert_ready(struct kvvm_installed *st, const struct kvvm_cert_cfg *cc,
                       char *why, size_t whylen)
{
  struct kvvm_installed_cert rec;
  bool have = kvvm_installed_get(st, cc->url, cc->store_dir, &rec);
  if (have && rec.version && (!cc->version || strcmp(cc->version, rec.version) == 0))
    return true;
  snprintf(why, whylen, "%s: %s", cc->url,
           have && rec.last_error ? rec.last_error : "not installed yet");
  return false;
}

static bool all_ready(char *why, size_t whylen)
{
  struct kvvm_config *cfg = kvvm_cli_served_config(why, whylen);
  struct kvvm_installed *st = NULL;
  bool ready = cfg && kvvm_installed_load(kvvm_paths_state_dir(), &st) == KVVM_OK;
  for (size_t i = 0; ready && i < cfg->n_certs; i++)
    ready = cert_ready(st, &cfg->certs[i], why, whylen);
  kvvm_installed_free(st);
  kvvm_config_free(cfg);
  return ready;
}

static bool parse_timeout(int argc, char **argv, long *timeout_s)
{
  *timeout_s = WAIT_DEFAULT_S;
  if (argc == 2)
    return true;
  char *end = NULL;
  if (argc != 4 || strcmp(argv[2], "--timeout") != 0)
    return false;
  *timeout_s = strtol(argv[3], &end, 10);
  return *argv[3] && !*end && *timeout_s >= 0;
}

static int cmd_wait(int argc, char **argv)
{
  long timeout_s;
  char why[1024] = "";
  if (kvvm_cli_wants_help(argc, argv, wait_help))
    return KVVM_CLI_OK;
  if (!parse_timeout(argc, argv, &timeout_s)) {
    fputs(wait_help, stderr);
    return KVVM_CLI_USAGE;
  }
  int64_t deadline = kvvm_clock_mono_ms() + timeout_s * 1000;
  while (!all_ready(why, sizeof(why))) {
    if (timeout_s && kvvm_clock_mono_ms() >= deadline) {
      fprintf(stderr, "kvvm: timed out after %ld s: %s\n", timeout_s, why);
      return KVVM_CLI_FAIL;
    }
    kvvm_clock_sleep_ms(1000);
  }
  printf("every observed certificate is installed\n");
  return KVVM_CLI_OK;
}

static int cmd_sync_now(int argc, char **argv)
{
  if (kvvm_cli_wants_help(argc, argv, sync_help))
    return KVVM_CLI_OK;
  if (argc != 2) {
    fputs(sync_help, stderr);
    return KVVM_CLI_USAGE;
  }
  enum kvvm_err rc = kvvm_service_sync_now();
  if (rc != KVVM_OK)
    fprintf(stderr, "kvvm: kvvmd is not running\n");
  return kvvm_err_exit_code(rc);
}

int kvvm_cli_main(int argc, char **argv)
{
  kvvm_cli_quiet(false);
  kvvm_proc_protect();
  const char *cmd = argc >= 2 ? argv[1] : "";
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
    printf("kvvm %s\n", kvvm_version());
    return KVVM_CLI_OK;
  }
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0 || strcmp(cmd, "-h") == 0) {
    fputs(usage_text, stdout);
    return KVVM_CLI_OK;
  }
  if (strcmp(cmd, "status") == 0)
    return kvvm_cli_status(argc, argv);
  if (strcmp(cmd, "check-settings") == 0)
    return kvvm_cli_check(argc, argv);
  if (strcmp(cmd, "wait") == 0)
    return cmd_wait(argc, argv);
  if (strcmp(cmd, "sync-now") == 0)
    return cmd_sync_now(argc, argv);
  if (strcmp(cmd, "run") == 0)
    return kvvm_cli_run(argc, argv);
  fputs(usage_text, stderr);
  return KVVM_CLI_USAGE;
}
