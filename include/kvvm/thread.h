/* A second thread for the pass worker, and what it shares with the first: a mutex and a
 * condition variable (pthreads on POSIX, the Win32 primitives on Windows). Failures to make
 * one are reported (not logged) so the caller can do the work on its own thread instead. */
#ifndef KVVM_THREAD_H
#define KVVM_THREAD_H
#include "kvvm/err.h"

struct kvvm_thread;
struct kvvm_mutex;
struct kvvm_cond;

/* Run fn(arg) on a new thread. KVVM_E_INTERNAL when the system refuses one. */
KVVM_API enum kvvm_err kvvm_thread_start(struct kvvm_thread **t, void (*fn)(void *), void *arg);
/* Wait for the thread to return, then free it. */
KVVM_API void kvvm_thread_join(struct kvvm_thread *t);

/* NULL when the system refuses one. */
KVVM_API struct kvvm_mutex *kvvm_mutex_new(void);
KVVM_API void kvvm_mutex_free(struct kvvm_mutex *m);
KVVM_API void kvvm_mutex_lock(struct kvvm_mutex *m);
KVVM_API void kvvm_mutex_unlock(struct kvvm_mutex *m);

KVVM_API struct kvvm_cond *kvvm_cond_new(void);
KVVM_API void kvvm_cond_free(struct kvvm_cond *c);
/* Release m, wait for a signal, take m again (a wake-up may be spurious: loop on the
 * condition). */
KVVM_API void kvvm_cond_wait(struct kvvm_cond *c, struct kvvm_mutex *m);
KVVM_API void kvvm_cond_signal(struct kvvm_cond *c);
#endif
