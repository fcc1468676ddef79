/* kvvmd's single-instance lock and pid file, shared by kvvmd and `kvvm run` on every
 * platform: the lock says that an instance runs, the pid file which one and from where. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/clock.h"
#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/paths.h"
#include "kvvm/proc.h"
#include "kvvm/service.h"

/* The lock held while the kvvmd in the pid file is gone: a killed kvvmd's pass worker dies
 * with it, but only once the system call it is in returns (an fsync on a busy disk). That
 * lock is waited for, up to this long; a kvvmd that runs is given way to at once. */
#define LOCK_WAIT_MS 10000
#define LOCK_RETRY_MS 100

char *kvvm_service_lock_path(void) { return kvvm_path_join(kvvm_paths_state_dir(), "kvvmd.lock"); }
char *kvvm_service_pid_path(void) { return kvvm_path_join(kvvm_paths_state_dir(), "kvvmd.pid"); }

static bool other_kvvmd_runs(void)
{
  struct kvvm_daemon other;
  kvvm_service_query(&other);
  bool runs = other.running;
  kvvm_daemon_clear(&other);
  return runs;
}

static enum kvvm_err lock_waiting(const char *lock, struct kvvm_lock **out)
{
  enum kvvm_err rc = kvvm_lock_open(lock, true, true, out);
  int64_t end = kvvm_clock_mono_ms() + LOCK_WAIT_MS;
  while (rc == KVVM_E_LOCKED && kvvm_clock_mono_ms() < end && !kvvm_clock_stopping() &&
         !other_kvvmd_runs()) {
    kvvm_clock_sleep_ms(LOCK_RETRY_MS);
    rc = kvvm_lock_open(lock, true, true, out);
  }
  return rc;
}

enum kvvm_err kvvm_service_hold(const char *exe, bool wait_for_dead, struct kvvm_lock **out)
{
  char *lock = kvvm_service_lock_path(), *pidf = kvvm_service_pid_path();
  *out = NULL;
  enum kvvm_err rc = kvvm_dir_ensure(kvvm_paths_state_dir(), 0700);
  if (rc == KVVM_OK)
    rc = wait_for_dead ? lock_waiting(lock, out) : kvvm_lock_open(lock, true, true, out);
  if (rc == KVVM_E_LOCKED)
    KVVM_INFO("another kvvmd or kvvm run holds %s", lock);
  if (rc == KVVM_OK) {
    char *text = kvvm_xasprintf("%ld\n%s\n", kvvm_proc_self_id(), exe);
    rc = kvvm_file_write_atomic(pidf, text, strlen(text), 0600);
    free(text);
  }
  if (rc != KVVM_OK) {
    kvvm_lock_close(*out);
    *out = NULL;
  }
  free(lock);
  free(pidf);
  return rc;
}

void kvvm_service_release(struct kvvm_lock *l)
{
  if (!l)
    return;
  /* The pid file goes first: while the lock is held, a pid file is taken at its word. */
  char *pidf = kvvm_service_pid_path();
  kvvm_file_remove(pidf);
  free(pidf);
  kvvm_lock_close(l);
}

void kvvm_daemon_clear(struct kvvm_daemon *d)
{
  free(d->exe);
  d->exe = NULL;
  d->running = false;
  d->pid = 0;
}
