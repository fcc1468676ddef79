/* kvvm_worker_run on Linux: fork, a pipe for the answer and a signalfd for the signals the
 * caller blocks, watched together with poll, so the parent needs no handler and wakes only
 * for the answer or a signal. PR_SET_PDEATHSIG kills the child with its parent: a kvvmd
 * killed by SIGKILL takes its pass with it, as it did when the pass ran in its own process
 * (the store's writes are atomic either way), and no orphan holds the lock. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/worker.h"
#include "posix/posix_int.h"

#define READ_STEP 65536

bool kvvm_worker_answer(int fd, const void *buf, size_t len)
{
  return kvvm_fd_write_all(fd, buf, len) == 0;
}

static void child(kvvm_worker_fn *fn, void *arg, pid_t parent, int fd)
{
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != parent)
    _exit(70);   /* the parent is already gone: nobody wants the answer */
  prctl(PR_SET_NAME, "kvvm-worker", 0, 0, 0);   /* what ps and top show beside kvvmd */
  _exit(fn(arg, fd));
}

/* Append what the pipe has; false at its end (or on an error). */
static bool take_answer(int fd, struct kvvm_worker_result *res, size_t *cap)
{
  if (*cap - res->len < READ_STEP) {
    *cap = *cap * 2 + READ_STEP;
    res->data = kvvm_xrealloc(res->data, *cap);
  }
  ssize_t r = read(fd, res->data + res->len, *cap - res->len);
  if (r < 0)
    return errno == EINTR || errno == EAGAIN;
  res->len += (size_t)r;
  return r > 0;
}

/* A signal the caller takes: SIGTERM and SIGINT go on to the child; others are kept in
 * again, to be raised for the caller once the signalfd is closed. */
static void take_signal(int sfd, pid_t pid, sigset_t *again, struct kvvm_worker_result *res)
{
  struct signalfd_siginfo si;
  if (read(sfd, &si, sizeof si) != (ssize_t)sizeof si)
    return;
  int sig = (int)si.ssi_signo;
  if (sig == SIGTERM || sig == SIGINT) {
    res->stop = true;
    kill(pid, SIGTERM);
  } else {
    sigaddset(again, sig);
  }
}

/* Blocked, so they stay pending until the caller waits for them, as if no child had run. */
static void raise_again(const sigset_t *again)
{
  for (int sig = 1; sig < NSIG; sig++)
    if (sigismember(again, sig) == 1)
      kill(getpid(), sig);
}

static void describe_end(int status, struct kvvm_worker_result *res)
{
  res->clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (WIFEXITED(status))
    snprintf(res->ended, sizeof res->ended, "exited %d", WEXITSTATUS(status));
  else if (WIFSIGNALED(status))
    snprintf(res->ended, sizeof res->ended, "killed by signal %d (%s)", WTERMSIG(status),
             strsignal(WTERMSIG(status)));
  else
    snprintf(res->ended, sizeof res->ended, "ended with status %#x", (unsigned)status);
}

/* Until the child closes the pipe (it exits; nothing it starts inherits the pipe). */
static void watch(int pfd, int sfd, pid_t pid, sigset_t *again, struct kvvm_worker_result *res)
{
  size_t cap = 0;
  struct pollfd fds[2] = {{pfd, POLLIN, 0}, {sfd, POLLIN, 0}};
  bool open = true;
  while (open) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      KVVM_ERR("waiting for the pass worker: poll: %s", strerror(errno));
      break;
    }
    if (fds[1].revents & POLLIN)
      take_signal(sfd, pid, again, res);
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR))
      open = take_answer(pfd, res, &cap);
  }
}

enum kvvm_err kvvm_worker_run(kvvm_worker_fn *fn, void *arg, const sigset_t *signals,
                              struct kvvm_worker_result *res)
{
  memset(res, 0, sizeof *res);
  int p[2] = {-1, -1}, sfd = signalfd(-1, signals, SFD_CLOEXEC | SFD_NONBLOCK);
  pid_t parent = getpid(), pid = -1;
  if (sfd < 0 || pipe2(p, O_CLOEXEC) != 0 || (pid = fork()) < 0) {
    KVVM_ERR("cannot start the pass worker: %s", strerror(errno));
    goto fail;
  }
  if (pid == 0) {
    close(p[0]);
    close(sfd);
    child(fn, arg, parent, p[1]);
  }
  close(p[1]);
  p[1] = -1;
  sigset_t again;
  sigemptyset(&again);
  watch(p[0], sfd, pid, &again, res);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  describe_end(status, res);
  close(p[0]);
  close(sfd);
  raise_again(&again);
  return KVVM_OK;
fail:
  if (p[0] >= 0)
    close(p[0]);
  if (p[1] >= 0)
    close(p[1]);
  if (sfd >= 0)
    close(sfd);
  return KVVM_E_INTERNAL;
}
