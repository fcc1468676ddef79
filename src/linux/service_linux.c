/* kvvmd control on Linux: query through the lock and pid file, detached start with setsid
 * and a double fork, stop with SIGTERM then SIGKILL. The systemd half is unit_linux.c. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/paths.h"
#include "kvvm/service.h"
#include "linux/service_int.h"

/* How long disable waits for kvvmd to finish the install in progress before SIGKILL. */
#define STOP_GRACE_MS 30000
/* How long enable waits for a started kvvmd to take its lock. */
#define START_WAIT_MS 10000

extern char **environ;

enum kvvm_service_mode kvvm_service_mode(void)
{
  const char *m = getenv("KVVM_SERVICE_MODE");
  if (m && strcmp(m, "systemd") == 0)
    return KVVM_SVC_SYSTEMD;
  if (m && strcmp(m, "detached") == 0)
    return KVVM_SVC_DETACHED;
  struct stat st;
  /* sd_booted()'s test: this folder exists only when PID 1 is systemd. */
  return lstat("/run/systemd/system", &st) == 0 && S_ISDIR(st.st_mode) ? KVVM_SVC_SYSTEMD
                                                                        : KVVM_SVC_DETACHED;
}


static void sleep_ms(long ms)
{
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* A process that has not exited (a zombie has: only its parent has yet to reap it). */
static bool pid_lives(long pid)
{
  char path[64], *text = NULL;
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  if (kvvm_file_read(path, 4096, &text, NULL) != KVVM_OK)
    return false;
  const char *end = strrchr(text, ')');   /* the name may hold spaces and parentheses */
  bool lives = end && end[1] == ' ' && end[2] != 'Z' && end[2] != 'X';
  free(text);
  return lives;
}

/* The pid file holds "pid\nexe\n"; it is trusted only while the lock is held and that pid
 * lives. kvvmd's pass worker holds the lock too, and outlives a killed kvvmd by as long as
 * the system call it is in (an fsync, say): that kvvmd is not running. */
enum kvvm_err kvvm_service_query(struct kvvm_daemon *d)
{
  char *lock = kvvm_service_lock_path(), *pidf = kvvm_service_pid_path(), *text = NULL;
  memset(d, 0, sizeof(*d));
  long pid;
  if (kvvm_lock_is_held(lock) && kvvm_file_read(pidf, 8192, &text, NULL) == KVVM_OK &&
      (pid = strtol(text, NULL, 10)) > 1 && pid_lives(pid)) {
    char *nl = strchr(text, '\n');
    d->pid = pid;
    d->running = true;
    if (nl && nl[1]) {
      nl[1 + strcspn(nl + 1, "\n")] = '\0';
      d->exe = kvvm_xstrdup(nl + 1);
    }
  }
  free(text);
  free(pidf);
  free(lock);
  return KVVM_OK;
}

static bool wait_lock(bool held, long ms)
{
  char *lock = kvvm_service_lock_path();
  bool ok = false;
  for (long waited = 0; waited <= ms; waited += 100) {
    if (kvvm_lock_is_held(lock) == held) {
      ok = true;
      break;
    }
    sleep_ms(100);
  }
  free(lock);
  return ok;
}

/* Grandchild: a new session, no inherited descriptors, stdio on /dev/null (kvvmd logs to its
 * own file; the agent's captured stdout files are unlinked temp files). */
static void exec_daemon(const char *exe)
{
  if (setsid() < 0 || chdir("/") != 0)
    _exit(127);
  int null = open("/dev/null", O_RDWR);
  if (null < 0)
    _exit(127);
  dup2(null, 0);
  dup2(null, 1);
  dup2(null, 2);
  for (int fd = 3; fd < 1024; fd++)
    close(fd);
  umask(077);
  char **env = kvvm_service_env_linux();
  char name[] = "kvvmd";
  char *const argv[] = {name, NULL};
  execve(exe, argv, env);
  _exit(127);
}

static enum kvvm_err start_detached(const char *root)
{
  char *exe = kvvm_xasprintf("%s/bin/kvvmd", root);
  enum kvvm_err rc = KVVM_E_SERVICE;
  pid_t child = fork();
  if (child < 0) {
    KVVM_ERR("fork: %s", strerror(errno));
    goto out;
  }
  if (child == 0) {
    /* The middle child exits at once, so kvvmd is re-parented and never a zombie of ours. */
    if (fork() == 0)
      exec_daemon(exe);
    _exit(0);
  }
  int st;
  while (waitpid(child, &st, 0) < 0 && errno == EINTR)
    ;
  if (!wait_lock(true, START_WAIT_MS)) {
    KVVM_ERR("%s did not start within %d s (see kvvm.log)", exe, START_WAIT_MS / 1000);
    goto out;
  }
  KVVM_INFO("started %s (detached)", exe);
  rc = KVVM_OK;
out:
  free(exe);
  return rc;
}

static enum kvvm_err signal_daemon(int sig)
{
  struct kvvm_daemon d;
  kvvm_service_query(&d);
  enum kvvm_err rc = KVVM_E_SERVICE;
  if (!d.running)
    KVVM_INFO("kvvmd is not running");
  else if (kill((pid_t)d.pid, sig) != 0)
    KVVM_ERR("kill %ld: %s", d.pid, strerror(errno));
  else
    rc = KVVM_OK;
  kvvm_daemon_clear(&d);
  return rc;
}

static enum kvvm_err stop_detached(void)
{
  struct kvvm_daemon d;
  kvvm_service_query(&d);
  if (!d.running)
    return KVVM_OK;
  long pid = d.pid;
  kvvm_daemon_clear(&d);
  KVVM_INFO("stopping kvvmd (pid %ld)", pid);
  if (kill((pid_t)pid, SIGTERM) != 0 && errno != ESRCH) {
    KVVM_ERR("kill %ld: %s", pid, strerror(errno));
    return KVVM_E_SERVICE;
  }
  if (wait_lock(false, STOP_GRACE_MS))
    return KVVM_OK;
  KVVM_WARN("kvvmd (pid %ld) did not stop within %d s; killing it", pid, STOP_GRACE_MS / 1000);
  kill((pid_t)pid, SIGKILL);
  if (wait_lock(false, 5000))
    return KVVM_OK;
  KVVM_ERR("kvvmd (pid %ld) survived SIGKILL", pid);
  return KVVM_E_SERVICE;
}

/* Does the running daemon's executable live in this package folder? */
static bool runs_from(const struct kvvm_daemon *d, const char *root)
{
  size_t n = strlen(root);
  return d->exe && strncmp(d->exe, root, n) == 0 && d->exe[n] == '/';
}

enum kvvm_err kvvm_service_ensure(const char *root, const char *const *rw_paths, bool reload)
{
  struct kvvm_daemon d;
  kvvm_service_query(&d);
  bool here = d.running && runs_from(&d, root);
  if (d.running && !here)
    KVVM_INFO("kvvmd runs from %s; replacing it with %s/bin/kvvmd", d.exe ? d.exe : "?", root);
  kvvm_daemon_clear(&d);
  if (kvvm_service_mode() == KVVM_SVC_SYSTEMD)
    return kvvm_unit_ensure(root, rw_paths, here, reload);
  if (here)
    return reload ? signal_daemon(SIGHUP) : KVVM_OK;
  enum kvvm_err rc = stop_detached();
  return rc == KVVM_OK ? start_detached(root) : rc;
}

enum kvvm_err kvvm_service_stop(void)
{
  if (kvvm_service_mode() == KVVM_SVC_SYSTEMD) {
    enum kvvm_err rc = kvvm_unit_stop();
    /* A kvvmd started outside the unit (e.g. before systemd took over) is stopped too. */
    return rc == KVVM_OK ? stop_detached() : rc;
  }
  return stop_detached();
}

enum kvvm_err kvvm_service_remove(const char *root)
{
  if (kvvm_service_mode() == KVVM_SVC_SYSTEMD)
    return kvvm_unit_remove(root);
  return stop_detached();
}

enum kvvm_err kvvm_service_sync_now(void) { return signal_daemon(SIGUSR1); }

/* systemd and the detached start both run kvvmd without a verb: a service dispatcher is
 * Windows's way alone. */
int kvvm_service_dispatch(int (*serve)(int argc, char **argv), int argc, char **argv)
{
  (void)serve;
  (void)argc;
  (void)argv;
  KVVM_ERR("`kvvmd service` starts the Windows service dispatcher; on Linux run kvvmd without "
           "a verb (enable starts it under systemd or detached)");
  return kvvm_err_exit_code(KVVM_E_USAGE);
}

/* service_env.c's list, with PATH: systemd and the detached start give kvvmd none, and its
 * hooks look commands up on it. */
char **kvvm_service_env_linux(void)
{
  char **out = kvvm_service_env((const char *const *)environ);
  const char *path = getenv("PATH");
  size_t n = 0;
  while (out[n])
    n++;
  out = kvvm_xrealloc(out, (n + 2) * sizeof(*out));
  out[n] = kvvm_xasprintf("PATH=%s", path && path[0] ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
  out[n + 1] = NULL;
  return out;
}

static int wait_child(pid_t pid, unsigned timeout_s)
{
  int st;
  for (unsigned waited = 0; waited <= timeout_s * 10; waited++) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (r < 0 && errno != EINTR)
      return -1;
    sleep_ms(100);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  return -1;
}

int kvvm_service_run(const char *const *argv, unsigned timeout_s)
{
  pid_t pid = fork();
  if (pid < 0) {
    KVVM_ERR("fork: %s", strerror(errno));
    return -1;
  }
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
    }
    size_t n = 0;
    while (argv[n])
      n++;
    char **copy = kvvm_xcalloc(n + 1, sizeof(*copy));
    for (size_t i = 0; i < n; i++)
      copy[i] = kvvm_xstrdup(argv[i]);
    execvp(copy[0], copy);
    _exit(127);
  }
  int rc = wait_child(pid, timeout_s);
  KVVM_DEBUG("%s %s: exit %d", argv[0], argv[1] ? argv[1] : "", rc);
  return rc;
}
