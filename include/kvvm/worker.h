/* kvvmd's pass worker: a fresh process of kvvmd's own executable (`<exe> worker`), so that
 * everything a pass needs -- libcurl and its libraries, TLS state, the installed state,
 * fetched secrets -- lives and dies in it, and the service between passes holds only its
 * settings and schedule (issue 8: idle memory). The two exchange one message each way
 * (docs/worker-protocol.md): the request on the worker's stdin, the answer on its stdout.
 * Per platform: worker_linux.c, worker_windows.c. */
#ifndef KVVM_WORKER_H
#define KVVM_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include "kvvm/err.h"

struct kvvm_worker_result {
  char *data;        /* what the worker wrote (free it) */
  size_t len;
  bool stop;         /* a stop was asked for meanwhile (and passed on to the worker) */
  char ended[120];   /* how the worker ended, in words: "exited 0", "killed by signal 9" */
  bool clean;        /* it exited with status 0 */
};

/* Start `<exe> worker`, give it request, read its answer and wait for it to end. Meanwhile
 * a stop (kvvm_wake) is passed on to the worker and any other request stays pending for
 * the caller, as if no worker had run. The worker dies with the caller. Fails only when no
 * worker could be started (logged). */
KVVM_API enum kvvm_err kvvm_worker_run(const char *exe, const char *request, size_t len,
                                       struct kvvm_worker_result *res);

/* In `kvvmd worker`, before anything else: take what kvvmd handed over on the command
 * line after "worker" (on Windows its stop event). False (logged) when it makes no sense. */
KVVM_API bool kvvm_worker_adopt(int argc, char **argv);

#endif
