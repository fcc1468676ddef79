/* The pass's second thread (sync_int.h). The first thread runs curl: it must never wait for
 * a decode or a flush, or the 16 requests in flight thin out (the first sync's breakdown in
 * docs/benchmarks.md). Only the second thread touches the store and installed.json during
 * the fetch; the first keeps the network and the tokens. The queue is bounded so the values
 * waiting stay few (each one is a secret, wiped when handled). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/mem.h"
#include "kvvm/thread.h"
#include "service/sync_int.h"

struct item {
  size_t k;
  struct kvvm_kv_result r;
};

struct sync_pipe {
  sync_pipe_fn fn;
  void *user;
  struct kvvm_mutex *mu;
  struct kvvm_cond *more, *room;   /* an item waits; a slot is free */
  struct item *ring;
  size_t cap, head, len;
  bool closed;
  struct kvvm_thread *thread;
};

/* The next item, or false once closed and empty. */
static bool take(struct sync_pipe *p, struct item *it)
{
  kvvm_mutex_lock(p->mu);
  while (!p->len && !p->closed)
    kvvm_cond_wait(p->more, p->mu);
  bool got = p->len > 0;
  if (got) {
    *it = p->ring[p->head];
    memset(&p->ring[p->head], 0, sizeof p->ring[p->head]);
    p->head = (p->head + 1) % p->cap;
    p->len--;
    kvvm_cond_signal(p->room);
  }
  kvvm_mutex_unlock(p->mu);
  return got;
}

static void drain(void *arg)
{
  struct sync_pipe *p = arg;
  struct item it;
  while (take(p, &it))
    p->fn(p->user, it.k, &it.r);
}

static void pipe_free(struct sync_pipe *p)
{
  kvvm_cond_free(p->more);
  kvvm_cond_free(p->room);
  kvvm_mutex_free(p->mu);
  free(p->ring);
  free(p);
}

struct sync_pipe *sync_pipe_start(sync_pipe_fn fn, void *user, size_t cap)
{
  struct sync_pipe *p = kvvm_xcalloc(1, sizeof *p);
  p->fn = fn;
  p->user = user;
  p->cap = cap ? cap : 1;
  p->ring = kvvm_xcalloc(p->cap, sizeof *p->ring);
  p->mu = kvvm_mutex_new();
  p->more = kvvm_cond_new();
  p->room = kvvm_cond_new();
  if (p->mu && p->more && p->room && kvvm_thread_start(&p->thread, drain, p) == KVVM_OK)
    return p;
  pipe_free(p);
  return NULL;
}

void sync_pipe_push(struct sync_pipe *p, size_t k, struct kvvm_kv_result *r)
{
  kvvm_mutex_lock(p->mu);
  while (p->len == p->cap)
    kvvm_cond_wait(p->room, p->mu);
  struct item *it = &p->ring[(p->head + p->len) % p->cap];
  it->k = k;
  it->r = *r;
  memset(r, 0, sizeof *r);
  p->len++;
  kvvm_cond_signal(p->more);
  kvvm_mutex_unlock(p->mu);
}

void sync_pipe_finish(struct sync_pipe *p)
{
  kvvm_mutex_lock(p->mu);
  p->closed = true;
  kvvm_cond_signal(p->more);
  kvvm_mutex_unlock(p->mu);
  kvvm_thread_join(p->thread);
  pipe_free(p);
}
