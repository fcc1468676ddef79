/* Running hooks on POSIX: the folder reached by the store's safe walk, each file opened
 * with O_NOFOLLOW and checked on its descriptor, and that descriptor executed (fexecve), so
 * what was checked is what runs. The child gets its own session, default signal handling,
 * /dev/null as stdin, a pipe to us as stdout and stderr, and nothing else. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kvvm/clock.h"
#include "kvvm/hooks.h"
#include "store/hooks_int.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/paths.h"
#include "store/store_int.h"
#include "posix/acl_int.h"

#define HOOK_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define EXEC_FD 3

/* Names in the folder, in byte order; hidden names (editors' and our own temp files) skipped. */
static char **list(int dfd, size_t *n)
{
  int fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  char **names = kvvm_xcalloc(1, sizeof *names);
  struct dirent *e;
  *n = 0;
  if (!d) {
    if (fd >= 0)
      close(fd);
    return names;
  }
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    names = kvvm_xrealloc(names, (*n + 2) * sizeof *names);
    names[(*n)++] = kvvm_xstrdup(e->d_name);
  }
  names[*n] = NULL;
  closedir(d);
  qsort(names, *n, sizeof *names, hook_name_cmp);
  return names;
}

/* Open a hook and check it on the descriptor. 1: run it; 0: not a hook (a folder, not
 * executable); -1: unsafe or unreadable (noted). */
static int open_checked(int dfd, const char *dir, const char *name, int *fd, struct hook_notes *n)
{
  struct stat st;
  char bad[160];
  *fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (*fd < 0) {
    hook_note(n, "%s skipped: %s", name, errno == ELOOP ? "a symbolic link" : strerror(errno));
    KVVM_ERR("hook %s/%s skipped: %s", dir, name, errno == ELOOP ? "a symbolic link (not "
             "followed)" : strerror(errno));
    return -1;
  }
  int ok = 1;
  if (fstat(*fd, &st) != 0 || S_ISDIR(st.st_mode) || !(st.st_mode & S_IXUSR)) {
    KVVM_DEBUG("%s/%s: not an executable file; not run", dir, name);
    ok = 0;
  } else if (!S_ISREG(st.st_mode)) {
    snprintf(bad, sizeof bad, "not a regular file");
    ok = -1;
  } else if (kvvm_acl_writable_by_others(*fd, &st, false, bad, sizeof bad)) {
    ok = -1;
  }
  if (ok < 0) {
    hook_note(n, "%s skipped as unsafe: %s", name, bad);
    KVVM_ERR("hook %s/%s skipped as unsafe: %s", dir, name, bad);
  }
  if (ok <= 0) {
    close(*fd);
    *fd = -1;
  }
  return ok;
}

/* In the child, before fexecve: only async-signal-safe calls (kvvmd may have threads). */
/* Every descriptor from lo up is closed. close_range(2) through syscall(): glibc wraps it only
 * from 2.34 (the release build targets 2.31) and kernels before 5.9 answer ENOSYS, in which
 * case the loop does the work. */
static void close_from(int lo)
{
#ifdef SYS_close_range
  if (syscall(SYS_close_range, (unsigned)lo, ~0U, 0U) == 0)
    return;
#endif
  for (int i = lo; i < 65536; i++)
    close(i);
}

static void child(int fd, bool script, int devnull, int out, char *const *argv,
                  char *const *envp)
{
  static const char msg[] = "kvvm: cannot execute the hook\n";
  struct sigaction dfl;
  sigset_t none;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++)
    sigaction(sig, &dfl, NULL);  /* ignored signals would stay ignored across exec */
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  setsid();
  /* Lift the three above the slots they go to, then place them. */
  int hfd = fcntl(fd, F_DUPFD, 10), hnull = fcntl(devnull, F_DUPFD, 10);
  int hout = fcntl(out, F_DUPFD, 10);
  if (hfd < 0 || hnull < 0 || hout < 0 || dup2(hnull, 0) < 0 || dup2(hout, 1) < 0 ||
      dup2(hout, 2) < 0 || dup2(hfd, EXEC_FD) < 0)
    _exit(127);
  close_from(EXEC_FD + 1);
  /* A script's interpreter reads it through /dev/fd/3, so only then does it stay open. */
  if (!script)
    fcntl(EXEC_FD, F_SETFD, FD_CLOEXEC);
  if (chdir("/") == 0)
    fexecve(EXEC_FD, argv, envp);
  if (write(2, msg, sizeof msg - 1) < 0)
    _exit(127);
  _exit(127);
}

/* Read the child's output until it exits or the deadline passes (then its whole process
 * group is killed). Returns the wait status. */
static int watch(pid_t pid, int rfd, struct hook_out *o, int timeout_s, bool *timed_out)
{
  int64_t deadline = kvvm_clock_mono_ms() + (int64_t)timeout_s * 1000;
  int status = 0;
  char buf[4096];
  *timed_out = false;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    int64_t left = deadline - kvvm_clock_mono_ms();
    if (left <= 0) {
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      *timed_out = true;
      break;
    }
    struct pollfd p = {.fd = rfd, .events = POLLIN};
    if (poll(&p, rfd >= 0 ? 1 : 0, (int)(left < 20 ? left : 20)) <= 0)
      continue;
    ssize_t r = read(rfd, buf, sizeof buf);
    if (r > 0)
      hook_out_feed(o, buf, (size_t)r);
    else if (r == 0 || errno != EINTR)
      rfd = -1;  /* closed by us below */
  }
  return status;
}

/* What a grandchild that outlived the hook left in the pipe is logged; it is not waited for. */
static void drain(int rfd, struct hook_out *o)
{
  char buf[4096];
  ssize_t r;
  fcntl(rfd, F_SETFL, O_NONBLOCK);
  while ((r = read(rfd, buf, sizeof buf)) > 0)
    hook_out_feed(o, buf, (size_t)r);
  hook_out_flush(o);
}

static bool is_script(int fd)
{
  char head[2];
  return pread(fd, head, 2, 0) == 2 && head[0] == '#' && head[1] == '!';
}

static void run_one(int fd, const char *name, char *const *envp, int timeout_s,
                    struct hook_notes *n)
{
  int pfd[2], devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  char *arg0 = kvvm_xstrdup(name), *argv[] = {arg0, NULL};
  struct hook_out o = {.name = name};
  bool timed_out = false;
  int64_t start = kvvm_clock_mono_ms();
  pid_t pid = -1;
  if (devnull >= 0 && pipe2(pfd, O_CLOEXEC) == 0) {
    pid = fork();
    if (pid == 0)
      child(fd, is_script(fd), devnull, pfd[1], argv, envp);
    close(pfd[1]);
    int status = pid > 0 ? watch(pid, pfd[0], &o, timeout_s, &timed_out) : 0;
    drain(pfd[0], &o);
    close(pfd[0]);
    if (pid > 0 && timed_out)
      hook_note(n, "%s timed out after %d s (killed)", name, timeout_s);
    else if (pid > 0 && WIFSIGNALED(status))
      hook_note(n, "%s was killed by signal %d", name, WTERMSIG(status));
    else if (pid > 0 && WEXITSTATUS(status) != 0)
      hook_note(n, "%s exited %d", name, WEXITSTATUS(status));
    else if (pid > 0)
      KVVM_INFO("hook %s: ok (%lld ms)", name, (long long)(kvvm_clock_mono_ms() - start));
  }
  if (pid < 0)
    hook_note(n, "%s could not be started: %s", name, strerror(errno));
  if (devnull >= 0)
    close(devnull);
  free(arg0);
}

static char **environment(const char *const *env)
{
  size_t n = 0;
  while (env && env[n])
    n++;
  char **envp = kvvm_xcalloc(n + 2, sizeof *envp);
  envp[0] = kvvm_xstrdup(HOOK_PATH);
  for (size_t i = 0; i < n; i++)
    envp[i + 1] = kvvm_xstrdup(env[i]);
  return envp;
}

enum kvvm_err kvvm_hooks_run(const struct kvvm_hooks_opts *opts, const char *const *env,
                             char *why, size_t whylen)
{
  const char *dir = opts && opts->dir ? opts->dir : kvvm_paths_hooks_dir();
  int timeout = opts && opts->timeout_s > 0 ? opts->timeout_s : KVVM_HOOK_TIMEOUT_DEFAULT_S;
  struct hook_notes n = {why, whylen, 0};
  char bad[512];
  int dfd;
  if (whylen)
    why[0] = '\0';
  enum kvvm_err rc = store_dir_open(dir, false, NULL, NULL, &dfd, bad, sizeof bad);
  if (rc == KVVM_E_NOENT)
    return KVVM_OK;
  if (rc != KVVM_OK) {
    hook_note(&n, "no hook run: %s", bad);
    KVVM_ERR("hooks: %s", bad);
    return KVVM_E_HOOK;
  }
  size_t count;
  char **names = list(dfd, &count), **envp = environment(env);
  for (size_t i = 0; i < count; i++) {
    int fd;
    if (open_checked(dfd, dir, names[i], &fd, &n) > 0) {
      run_one(fd, names[i], envp, timeout, &n);
      close(fd);
    }
  }
  close(dfd);
  kvvm_strv_free(names);
  kvvm_strv_free(envp);
  if (n.used)
    KVVM_WARN("hooks: %s", why);
  return n.used ? KVVM_E_HOOK : KVVM_OK;
}
