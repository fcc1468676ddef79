/* What kvvmd (daemon.c) and its pass worker (daemon_worker.c, `kvvmd worker`) share. */
#ifndef KVVM_SERVICE_DAEMON_INT_H
#define KVVM_SERVICE_DAEMON_INT_H

#include <stdbool.h>
#include <stddef.h>
#include "kvvm/err.h"
#include "kvvm/henv.h"
#include "kvvm/settings.h"
#include "kvvm/sync.h"

/* Load <seq>.settings the way kvvmd serves them (its store root, the agent's certificates
 * for protected settings); quiet: without the settings' own log lines (the worker's read).
 * why gets the reason when they are refused. */
enum kvvm_err kvvm_daemon_load_settings(const struct kvvm_henv *h, long seq, bool quiet,
                                        struct kvvm_config **cfg, char *why, size_t len);
/* Every certificate due fails with err and why (the ones not due keep their outcome). */
void kvvm_daemon_fail_due(struct kvvm_cert_outcome *out, const bool *due, size_t n,
                          enum kvvm_err err, const char *why);
/* `kvvmd worker`: read the request on stdin, do the job, answer on stdout. Returns the
 * process exit code. */
int kvvm_daemon_worker_main(int argc, char **argv);

#endif
