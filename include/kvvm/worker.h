/* A piece of work run in a child process, for kvvmd's passes (daemon.c): everything a pass
 * needs -- libcurl and its libraries, TLS state, the installed state, fetched secrets --
 * lives and dies in the child, so the service between passes holds only its settings and
 * schedule (issue 8: idle memory). The child is a fork: it starts with the parent's
 * settings and schedule and answers through a pipe. Per platform: worker_linux.c. */
#ifndef KVVM_WORKER_H
#define KVVM_WORKER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include "kvvm/err.h"

/* Runs in the child; writes its answer to fd; the return value is the child's exit status. */
typedef int kvvm_worker_fn(void *arg, int fd);

struct kvvm_worker_result {
  char *data;        /* what the child wrote (free it) */
  size_t len;
  bool stop;         /* SIGTERM or SIGINT came meanwhile (and was passed on to the child) */
  char ended[120];   /* how the child ended, in words: "exited 0", "killed by signal 9" */
  bool clean;        /* it exited with status 0 */
};

/* Run fn(arg, fd) in a child and wait for it. signals are the ones the caller has blocked
 * and takes synchronously: they are watched meanwhile; SIGTERM and SIGINT are passed to the
 * child, and any other stays pending for the caller, as if no child had run. The child dies
 * with the caller (it holds what the caller holds, kvvmd's lock among them). Fails only
 * when no child could be made (logged). */
enum kvvm_err kvvm_worker_run(kvvm_worker_fn *fn, void *arg, const sigset_t *signals,
                              struct kvvm_worker_result *res);
/* Write all of buf to fd (the child's answer); false on failure. */
bool kvvm_worker_answer(int fd, const void *buf, size_t len);

#endif
