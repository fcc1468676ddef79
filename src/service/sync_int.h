/* Inside the sync module: the pipe that hands fetched secrets from the thread that keeps the
 * requests flowing to a second thread that decodes and installs them (sync_pipe.c). */
#ifndef KVVM_SYNC_INT_H
#define KVVM_SYNC_INT_H
#include <stddef.h>
#include "kvvm/kv.h"

typedef void (*sync_pipe_fn)(void *user, size_t k, struct kvvm_kv_result *r);

struct sync_pipe;

/* A thread that calls fn(user, k, r) on each result pushed, in order, with at most cap
 * results waiting. NULL when no thread can be had: the caller then calls fn itself. */
struct sync_pipe *sync_pipe_start(sync_pipe_fn fn, void *user, size_t cap);
/* Hand r to the thread (its contents move; r is left empty), waiting while cap are queued. */
void sync_pipe_push(struct sync_pipe *p, size_t k, struct kvvm_kv_result *r);
/* Wait until every result pushed has been handled, then end the thread. */
void sync_pipe_finish(struct sync_pipe *p);
#endif
