/* kvvmd: one instance (flock in the state folder), one process, signals blocked before
 * anything else and taken synchronously with sigtimedwait, so the process sleeps between
 * passes with no periodic wake-ups. The sync engine joins in its own module; until then a
 * pass validates the settings and reports them truthfully. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvvm/daemon.h"
#include "kvvm/fileio.h"
#include "kvvm/henv.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/paths.h"
#include "kvvm/seqno.h"
#include "kvvm/service.h"
#include "kvvm/settings.h"
#include "kvvm/status.h"
#include "kvvm/version.h"

struct daemon {
  struct kvvm_henv *henv;
  struct kvvm_config *cfg;   /* the last good settings */
  long cfg_seq;
  long seq;                  /* the sequence number whose status we write */
  char why[900];             /* why the settings of seq were refused, if they were */
  int lock_fd;
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
  kvvm_config_free(d->cfg);
  d->cfg = cfg;
  d->cfg_seq = d->seq;
  KVVM_INFO("serving settings of sequence %ld: %zu certificate(s), polling every %u s", d->seq,
            cfg->n_certs, cfg->polling_s);
}

static void append_warnings(char *msg, size_t len, const struct kvvm_config *cfg)
{
  for (char **w = cfg->warnings; w && *w; w++) {
    size_t used = strlen(msg);
    snprintf(msg + used, len - used, "%s%s", w == cfg->warnings ? " Warnings: " : "; ", *w);
  }
}

static void report(const struct daemon *d)
{
  char msg[1024];
  struct kvvm_status st = {.operation = "Enable", .value = KVVM_ST_SUCCESS, .message = msg};
  const struct kvvm_config *cfg = d->cfg;
  if (d->why[0]) {
    st.value = KVVM_ST_ERROR;
    st.code = kvvm_err_status_code(KVVM_E_SETTINGS);
    snprintf(msg, sizeof(msg), "%s%s", d->why,
             cfg ? " (kvvmd keeps the last valid settings)" : "");
  } else if (cfg->require_initial_sync) {
    st.value = KVVM_ST_TRANSITIONING;
    snprintf(msg, sizeof(msg), "kvvm %s: waiting for the initial sync of %zu certificate(s); "
             "this build has no sync engine yet.", kvvm_version(), cfg->n_certs);
  } else {
    snprintf(msg, sizeof(msg), "kvvm %s: settings accepted, %zu certificate(s) observed, "
             "polling every %u s; this build has no sync engine yet.", kvvm_version(),
             cfg->n_certs, cfg->polling_s);
  }
  if (cfg && !d->why[0])
    append_warnings(msg, sizeof(msg), cfg);
  if (d->seq >= 0)
    kvvm_status_write(d->henv->status_dir, d->seq, &st);
}

static enum kvvm_err take_lock(struct daemon *d, const char *exe)
{
  char *lock = kvvm_service_lock_path(), *pidf = kvvm_service_pid_path();
  enum kvvm_err rc = kvvm_dir_ensure(kvvm_paths_state_dir(), 0700);
  if (rc == KVVM_OK)
    rc = kvvm_lock_open(lock, true, true, &d->lock_fd);
  if (rc == KVVM_E_LOCKED)
    KVVM_INFO("another kvvmd holds %s; exiting", lock);
  if (rc == KVVM_OK) {
    char *text = kvvm_xasprintf("%ld\n%s\n", (long)getpid(), exe);
    rc = kvvm_file_write_atomic(pidf, text, strlen(text), 0600);
    free(text);
  }
  free(lock);
  free(pidf);
  return rc;
}

static void release_lock(struct daemon *d)
{
  if (d->lock_fd < 0)
    return;
  char *pidf = kvvm_service_pid_path();
  unlink(pidf);
  free(pidf);
  close(d->lock_fd);
  d->lock_fd = -1;
}

/* Sleep until the next pass is due or a signal asks for something. Returns the signal,
 * or 0 when the time is up. */
static int wait_next(const sigset_t *set, unsigned seconds)
{
  struct timespec ts = {(time_t)seconds, 0};
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

static void serve(struct daemon *d, const sigset_t *set)
{
  load_settings(d);
  for (;;) {
    report(d);
    unsigned interval = d->cfg ? d->cfg->polling_s : 3600;
    int sig = wait_next(set, interval);
    if (sig == SIGTERM || sig == SIGINT) {
      KVVM_INFO("signal %d: stopping", sig);
      return;
    }
    if (sig == SIGHUP)
      load_settings(d);
    else
      KVVM_DEBUG(sig ? "pass requested" : "pass due");
  }
}

int kvvm_daemon_main(int argc, char **argv)
{
  sigset_t set;
  block_signals(&set);
  (void)argc;
  (void)argv;
  struct daemon d = {.seq = -1, .cfg_seq = -1, .lock_fd = -1};
  char *exe = kvvm_paths_self_exe();
  enum kvvm_err rc = kvvm_henv_load(exe, &d.henv);
  if (rc != KVVM_OK)
    goto out;
  kvvm_log_open(d.henv->log_dir, "kvvmd");
  rc = take_lock(&d, exe ? exe : "?");
  if (rc != KVVM_OK)
    goto out;
  KVVM_INFO("kvvmd %s started from %s", kvvm_version(), d.henv->root);
  kvvm_dir_sweep_prefix(d.henv->status_dir, KVVM_TEMP_PREFIX);
  serve(&d, &set);
out:
  release_lock(&d);
  kvvm_config_free(d.cfg);
  kvvm_henv_free(d.henv);
  free(exe);
  kvvm_log_close();
  return rc == KVVM_E_LOCKED ? 0 : kvvm_err_exit_code(rc);
}
