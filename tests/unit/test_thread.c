/* The pass worker's second thread (kvvm/thread.h) and the phase totals it shares the process
 * with (kvvm/phase.h): a producer and a consumer hand 10,000 numbers through a one-slot
 * mailbox, so every wait and wake-up is taken many times; the phase file gets one line with
 * the counts of the phases timed on either thread. Portable: also run under wine. */
#include <stdbool.h>

#include "kt.h"
#include "kt_os.h"
#include "kvvm/fileio.h"
#include "kvvm/mem.h"
#include "kvvm/phase.h"
#include "kvvm/thread.h"

#define ITEMS 10000

struct box {
  struct kvvm_mutex *mu;
  struct kvvm_cond *full, *empty;
  bool has;
  long value, sum, seen;
};

static void consume(void *arg)
{
  struct box *b = arg;
  for (;;) {
    struct kvvm_phase_mark m;
    kvvm_phase_begin(&m);
    kvvm_mutex_lock(b->mu);
    while (!b->has)
      kvvm_cond_wait(b->full, b->mu);
    long v = b->value;
    b->has = false;
    kvvm_cond_signal(b->empty);
    kvvm_mutex_unlock(b->mu);
    kvvm_phase_end(KVVM_PHASE_DECODE, &m);
    if (v < 0)
      return;
    b->sum += v;
    b->seen++;
  }
}

static void put(struct box *b, long v)
{
  kvvm_mutex_lock(b->mu);
  while (b->has)
    kvvm_cond_wait(b->empty, b->mu);
  b->value = v;
  b->has = true;
  kvvm_cond_signal(b->full);
  kvvm_mutex_unlock(b->mu);
}

static void handover_and_phases(void)
{
  char *dir = kt_tmpdir(), *file = kvvm_path_join(dir, "phases.jsonl"), *text = NULL;
  size_t len = 0;
  struct box b = {kvvm_mutex_new(), kvvm_cond_new(), kvvm_cond_new(), false, 0, 0, 0};
  struct kvvm_thread *t = NULL;
  kt_setenv("KVVM_PHASES_FILE", file);
  KT_CHECK(b.mu && b.full && b.empty);
  KT_CHECK(kvvm_thread_start(&t, consume, &b) == KVVM_OK);
  for (long i = 1; i <= ITEMS; i++) {
    struct kvvm_phase_mark m;
    kvvm_phase_begin(&m);
    put(&b, i);
    kvvm_phase_end(KVVM_PHASE_LOCAL_WAIT, &m);
  }
  put(&b, -1);
  kvvm_thread_join(t);
  KT_CHECK(b.seen == ITEMS && b.sum == (long)ITEMS * (ITEMS + 1) / 2);
  kvvm_phase_write();
  KT_CHECK(kvvm_file_read(file, 1 << 16, &text, &len) == KVVM_OK);
  KT_CONTAINS(text ? text : "", "\"local_wait\": {\"wall_ms\": ");
  KT_CONTAINS(text ? text : "", ", \"count\": 10000}");   /* the producer's puts */
  KT_CONTAINS(text ? text : "", ", \"count\": 10001}");   /* the consumer's takes */
  KT_CONTAINS(text ? text : "", "\"process_cpu_ms\": ");
  KT_CHECK(text && text[len - 1] == '\n' && !strchr(text, '\n')[1]);
  kvvm_cond_free(b.full);
  kvvm_cond_free(b.empty);
  kvvm_mutex_free(b.mu);
  free(text);
  free(file);
  free(dir);
}

int main(void)
{
  static const struct kt_case cases[] = {KT_CASE(handover_and_phases)};
  return KT_RUN("thread", cases);
}
