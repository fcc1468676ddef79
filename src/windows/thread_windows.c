/* kvvm/thread.h with Win32: a thread, an SRW lock, a condition variable. */
#include <windows.h>
#include <stdlib.h>

#include "kvvm/mem.h"
#include "kvvm/thread.h"

struct kvvm_thread {
  HANDLE h;
  void (*fn)(void *);
  void *arg;
};

struct kvvm_mutex {
  SRWLOCK l;
};

struct kvvm_cond {
  CONDITION_VARIABLE c;
};

static DWORD WINAPI trampoline(LPVOID p)
{
  struct kvvm_thread *t = p;
  t->fn(t->arg);
  return 0;
}

enum kvvm_err kvvm_thread_start(struct kvvm_thread **t, void (*fn)(void *), void *arg)
{
  *t = kvvm_xcalloc(1, sizeof **t);
  (*t)->fn = fn;
  (*t)->arg = arg;
  (*t)->h = CreateThread(NULL, 0, trampoline, *t, 0, NULL);
  if ((*t)->h)
    return KVVM_OK;
  free(*t);
  *t = NULL;
  return KVVM_E_INTERNAL;
}

void kvvm_thread_join(struct kvvm_thread *t)
{
  if (!t)
    return;
  WaitForSingleObject(t->h, INFINITE);
  CloseHandle(t->h);
  free(t);
}

struct kvvm_mutex *kvvm_mutex_new(void)
{
  struct kvvm_mutex *m = kvvm_xcalloc(1, sizeof *m);
  InitializeSRWLock(&m->l);
  return m;
}

void kvvm_mutex_free(struct kvvm_mutex *m) { free(m); }

void kvvm_mutex_lock(struct kvvm_mutex *m) { AcquireSRWLockExclusive(&m->l); }

void kvvm_mutex_unlock(struct kvvm_mutex *m) { ReleaseSRWLockExclusive(&m->l); }

struct kvvm_cond *kvvm_cond_new(void)
{
  struct kvvm_cond *c = kvvm_xcalloc(1, sizeof *c);
  InitializeConditionVariable(&c->c);
  return c;
}

void kvvm_cond_free(struct kvvm_cond *c) { free(c); }

void kvvm_cond_wait(struct kvvm_cond *c, struct kvvm_mutex *m)
{
  SleepConditionVariableSRW(&c->c, &m->l, INFINITE, 0);
}

void kvvm_cond_signal(struct kvvm_cond *c) { WakeConditionVariable(&c->c); }
