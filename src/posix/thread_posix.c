/* kvvm/thread.h with pthreads. */
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>

#include "kvvm/mem.h"
#include "kvvm/thread.h"

struct kvvm_thread {
  pthread_t id;
  void (*fn)(void *);
  void *arg;
};

struct kvvm_mutex {
  pthread_mutex_t m;
};

struct kvvm_cond {
  pthread_cond_t c;
};

static void *trampoline(void *p)
{
  struct kvvm_thread *t = p;
  t->fn(t->arg);
  return NULL;
}

enum kvvm_err kvvm_thread_start(struct kvvm_thread **t, void (*fn)(void *), void *arg)
{
  *t = kvvm_xcalloc(1, sizeof **t);
  (*t)->fn = fn;
  (*t)->arg = arg;
  /* One malloc arena for all threads: a second one would hold its own heap, about 1 MiB more
   * anonymous memory in a first sync of 1,000 certificates, for little contention. */
  mallopt(M_ARENA_MAX, 1);
  if (pthread_create(&(*t)->id, NULL, trampoline, *t) == 0)
    return KVVM_OK;
  free(*t);
  *t = NULL;
  return KVVM_E_INTERNAL;
}

void kvvm_thread_join(struct kvvm_thread *t)
{
  if (!t)
    return;
  pthread_join(t->id, NULL);
  free(t);
}

struct kvvm_mutex *kvvm_mutex_new(void)
{
  struct kvvm_mutex *m = kvvm_xcalloc(1, sizeof *m);
  if (pthread_mutex_init(&m->m, NULL) == 0)
    return m;
  free(m);
  return NULL;
}

void kvvm_mutex_free(struct kvvm_mutex *m)
{
  if (!m)
    return;
  pthread_mutex_destroy(&m->m);
  free(m);
}

void kvvm_mutex_lock(struct kvvm_mutex *m) { pthread_mutex_lock(&m->m); }

void kvvm_mutex_unlock(struct kvvm_mutex *m) { pthread_mutex_unlock(&m->m); }

struct kvvm_cond *kvvm_cond_new(void)
{
  struct kvvm_cond *c = kvvm_xcalloc(1, sizeof *c);
  if (pthread_cond_init(&c->c, NULL) == 0)
    return c;
  free(c);
  return NULL;
}

void kvvm_cond_free(struct kvvm_cond *c)
{
  if (!c)
    return;
  pthread_cond_destroy(&c->c);
  free(c);
}

void kvvm_cond_wait(struct kvvm_cond *c, struct kvvm_mutex *m) { pthread_cond_wait(&c->c, &m->m); }

void kvvm_cond_signal(struct kvvm_cond *c) { pthread_cond_signal(&c->c); }
