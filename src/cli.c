/* kvvm: what an operator on the VM asks of the service. Output is for people; nothing here
 * prints a secret (settings are shown only in their normalised, secret-free form). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/cli.h"
#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/paths.h"
#include "kvvm/service.h"
#include "kvvm/settings.h"
#include "kvvm/state.h"
#include "kvvm/version.h"

static int usage(FILE *f)
{
  fprintf(f, "usage: kvvm <command>\n"
             "  status                 is kvvmd running, and which settings it serves\n"
             "  check-settings FILE    check a <seq>.settings file; print the normalised form\n"
             "  sync-now               ask kvvmd for a pass at once\n"
             "  --version              print the version\n");
  return f == stdout ? 0 : kvvm_err_exit_code(KVVM_E_USAGE);
}

static int cmd_status(void)
{
  struct kvvm_daemon d;
  struct kvvm_state *st = NULL;
  kvvm_service_query(&d);
  kvvm_state_load(kvvm_paths_state_dir(), &st);
  printf("kvvm %s\n", kvvm_version());
  if (d.running)
    printf("kvvmd: running, pid %ld, %s\n", d.pid, d.exe ? d.exe : "?");
  else
    printf("kvvmd: not running\n");
  const char *pkg = kvvm_state_get_str(st, "package_dir");
  printf("settings: sequence %ld from %s\n", kvvm_state_get_int(st, "applied_seq", -1),
         pkg ? pkg : "(none applied)");
  printf("state folder: %s\n", kvvm_paths_state_dir());
  int rc = d.running ? 0 : 3;
  kvvm_daemon_clear(&d);
  kvvm_state_free(st);
  return rc;
}

/* Accepts the agent's envelope as it is on disk. */
static int cmd_check(const char *path)
{
  char *text = NULL, why[1024] = "";
  size_t len = 0;
  struct kvvm_config *cfg = NULL;
  struct kvvm_settings_opts opts = {kvvm_paths_store_root(), NULL};
  if (kvvm_file_read(path, 1 << 20, &text, &len) != KVVM_OK) {
    fprintf(stderr, "kvvm: cannot read %s\n", path);
    return kvvm_err_exit_code(KVVM_E_IO);
  }
  enum kvvm_err rc = kvvm_settings_parse(text, len, &opts, &cfg, why, sizeof(why));
  if (rc != KVVM_OK) {
    printf("invalid: %s\n", why);
  } else {
    char *canon = kvvm_config_to_json(cfg);
    printf("valid: %zu certificate(s)\n%s\n", cfg->n_certs, canon);
    for (char **w = cfg->warnings; w && *w; w++)
      printf("warning: %s\n", *w);
    free(canon);
  }
  kvvm_config_free(cfg);
  free(text);
  return kvvm_err_exit_code(rc);
}

int kvvm_cli_main(int argc, char **argv)
{
  kvvm_log_set_stderr_level(KVVM_LOG_ERR);
  if (argc < 2)
    return usage(stderr);
  const char *cmd = argv[1];
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
    printf("kvvm %s\n", kvvm_version());
    return 0;
  }
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0)
    return usage(stdout);
  if (strcmp(cmd, "status") == 0)
    return cmd_status();
  if (strcmp(cmd, "check-settings") == 0 && argc == 3)
    return cmd_check(argv[2]);
  if (strcmp(cmd, "sync-now") == 0)
    return kvvm_err_exit_code(kvvm_service_sync_now());
  return usage(stderr);
}
