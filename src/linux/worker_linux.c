/* kvvm_worker_run on Linux: fork, then exec `<exe> worker` with one end of a socketpair as
 * its stdin and stdout (a socket, so kvvmd writes with MSG_NOSIGNAL: a worker gone early is
 * an error, not a SIGPIPE), and a signalfd for the signals the caller blocks, watched with
 * the socket by poll: the parent needs no handler and wakes only for the exchange or a
 * signal. PR_SET_PDEATHSIG, set before exec, survives it and kills the worker with its
 * parent: a kvvmd killed by SIGKILL takes its pass with it (the store's writes are atomic).
 * The worker inherits the blocked signals, so it takes SIGTERM in its sleeps (kvvm_clock). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/worker.h"
#include "posix/posix_int.h"

#define READ_STEP 65536

/* In the child, before exec: only async-signal-safe calls. */
static void child(const char *exe, pid_t parent, int sock)
{
  static char arg0[] = "kvvmd", arg1[] = "worker";
  char *argv[] = {arg0, arg1, NULL};
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != parent)
    _exit(70);   /* the parent is already gone: nobody wants the answer */
  /* Above 2 first, so a socket that came out as 0 or 1 is not closed by its own dup2. */
  int s = fcntl(sock, F_DUPFD, 3);
  if (s < 0 || dup2(s, 0) < 0 || dup2(s, 1) < 0)
    _exit(71);
  close(s);
  /* A kvvmd started with stderr closed: the worker's log copies must not land in a file
   * it opens as descriptor 2. */
  if (fcntl(2, F_GETFD) < 0 && open("/dev/null", O_WRONLY) != 2)
    _exit(72);
  execv(exe, argv);
  _exit(127);
}

bool kvvm_worker_adopt(int argc, char **argv)
{
  (void)argv;
  prctl(PR_SET_NAME, "kvvm-worker", 0, 0, 0);   /* what ps and top show beside kvvmd */
  if (argc == 2)
    return true;
  KVVM_ERR("kvvmd worker takes no arguments on this system");
  return false;
}

/* The request, as far as the worker has taken it. */
struct exchange {
  const char *req;
  size_t len, sent;
  size_t cap;   /* of res->data */
};

/* Send what the socket takes; once all is sent (or the worker is gone), say so. */
static void give_request(int sock, struct exchange *x)
{
  ssize_t n = send(sock, x->req + x->sent, x->len - x->sent, MSG_NOSIGNAL);
  if (n > 0)
    x->sent += (size_t)n;
  else if (errno != EINTR && errno != EAGAIN)
    x->sent = x->len;   /* it ended early: how, waitpid says */
  if (x->sent == x->len)
    shutdown(sock, SHUT_WR);
}

/* Append what the socket has; false at its end (or on an error). */
static bool take_answer(int sock, struct exchange *x, struct kvvm_worker_result *res)
{
  if (x->cap - res->len < READ_STEP) {
    x->cap = x->cap * 2 + READ_STEP;
    res->data = kvvm_xrealloc(res->data, x->cap);
  }
  ssize_t r = read(sock, res->data + res->len, x->cap - res->len);
  if (r < 0)
    return errno == EINTR || errno == EAGAIN;
  res->len += (size_t)r;
  return r > 0;
}

/* A signal the caller takes: SIGTERM and SIGINT go on to the worker; others are kept in
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

/* Blocked, so they stay pending until the caller waits for them, as if no worker had run. */
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

/* Until the worker closes its end (it exits; nothing it starts inherits the socket). */
static void watch(int sock, int sfd, pid_t pid, struct exchange *x, sigset_t *again,
                  struct kvvm_worker_result *res)
{
  bool open = true;
  if (x->len == 0)
    shutdown(sock, SHUT_WR);
  while (open) {
    struct pollfd fds[2] = {{sock, POLLIN | (x->sent < x->len ? POLLOUT : 0), 0},
                            {sfd, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      KVVM_ERR("waiting for the pass worker: poll: %s", strerror(errno));
      break;
    }
    if (fds[1].revents & POLLIN)
      take_signal(sfd, pid, again, res);
    if (fds[0].revents & POLLOUT)
      give_request(sock, x);
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR))
      open = take_answer(sock, x, res);
  }
}

static void close_all(const int *fds, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (fds[i] >= 0)
      close(fds[i]);
}

enum kvvm_err kvvm_worker_run(const char *exe, const char *request, size_t len,
                              struct kvvm_worker_result *res)
{
  memset(res, 0, sizeof *res);
  sigset_t blocked, again;
  sigprocmask(SIG_BLOCK, NULL, &blocked);
  sigemptyset(&again);
  int fds[3] = {signalfd(-1, &blocked, SFD_CLOEXEC | SFD_NONBLOCK), -1, -1};
  pid_t parent = getpid(), pid = -1;
  if (fds[0] < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds + 1) != 0 ||
      (pid = fork()) < 0) {
    KVVM_ERR("cannot start the pass worker %s: %s", exe, strerror(errno));
    close_all(fds, 3);
    return KVVM_E_INTERNAL;
  }
  if (pid == 0)
    child(exe, parent, fds[2]);
  close(fds[2]);
  fds[2] = -1;
  fcntl(fds[1], F_SETFL, O_NONBLOCK);
  struct exchange x = {request, len, 0, 0};
  watch(fds[1], fds[0], pid, &x, &again, res);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  describe_end(status, res);
  close_all(fds, 3);
  raise_again(&again);
  return KVVM_OK;
}
