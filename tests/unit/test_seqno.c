/* Sequence numbers: the agent's variable first, then the newest settings file by mtime
 * (numbers are not guaranteed to grow); mrseq round trip. */
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <utime.h>

#include "kt.h"
#include "kvvm/fileio.h"
#include "kvvm/mem.h"
#include "kvvm/seqno.h"

static void touch_at(const char *dir, const char *name, time_t when)
{
  char *p = kvvm_path_join(dir, name);
  kt_write(p, "{}");
  struct utimbuf t = {when, when};
  utime(p, &t);
  free(p);
}

static void env_wins(void)
{
  char *dir = kt_tmpdir();
  touch_at(dir, "7.settings", 1000);
  long seq = -1;
  kt_setenv("ConfigSequenceNumber", "3");
  KT_CHECK(kvvm_seqno_current(dir, &seq) == KVVM_OK && seq == 3);
  /* A value that is not a number is not trusted: fall back to the files. */
  kt_setenv("ConfigSequenceNumber", "3x");
  KT_CHECK(kvvm_seqno_current(dir, &seq) == KVVM_OK && seq == 7);
  kt_unsetenv("ConfigSequenceNumber");
  kt_rmtree(dir);
  free(dir);
}

/* After a delete and re-add the numbers restart at 0: the newest file wins, not the highest. */
static void newest_by_mtime(void)
{
  char *dir = kt_tmpdir();
  kt_unsetenv("ConfigSequenceNumber");
  touch_at(dir, "12.settings", 1000);
  touch_at(dir, "0.settings", 2000);
  touch_at(dir, "HandlerState", 3000);
  touch_at(dir, "5.settings.bak", 4000);
  long seq = -1;
  KT_CHECK(kvvm_seqno_current(dir, &seq) == KVVM_OK && seq == 0);
  /* Equal mtimes: the highest number, the agent's tie-break. */
  touch_at(dir, "4.settings", 2000);
  KT_CHECK(kvvm_seqno_current(dir, &seq) == KVVM_OK && seq == 4);
  kt_rmtree(dir);
  free(dir);
}

static void none_is_error(void)
{
  char *dir = kt_tmpdir();
  kt_unsetenv("ConfigSequenceNumber");
  long seq = -1;
  KT_CHECK(kvvm_seqno_current(dir, &seq) == KVVM_E_SEQNO);
  KT_CHECK(kvvm_seqno_current("/nonexistent-kvvm", &seq) == KVVM_E_SEQNO);
  kt_rmtree(dir);
  free(dir);
}

static void mrseq_round_trip(void)
{
  char *dir = kt_tmpdir();
  long seq = -1;
  KT_CHECK(kvvm_seqno_read_mrseq(dir, &seq) == KVVM_E_NOENT);
  KT_CHECK(kvvm_seqno_write_mrseq(dir, 42) == KVVM_OK);
  KT_CHECK(kvvm_seqno_read_mrseq(dir, &seq) == KVVM_OK && seq == 42);
#ifndef _WIN32
  /* Other handlers write "42\n"; garbage is ignored rather than trusted. */
  char *p = kvvm_path_join(dir, "mrseq");
  kt_write(p, "17\n");
  KT_CHECK(kvvm_seqno_read_mrseq(dir, &seq) == KVVM_OK && seq == 17);
  kt_write(p, "-1");
  KT_CHECK(kvvm_seqno_read_mrseq(dir, &seq) == KVVM_E_NOENT);
  free(p);
#else
  KT_SKIP("the mrseq file other handlers write: on Windows mrseq is the agent's registry value");
#endif
  kt_rmtree(dir);
  free(dir);
}

int main(void)
{
  static const struct kt_case cases[] = {KT_CASE(env_wins), KT_CASE(newest_by_mtime),
                                         KT_CASE(none_is_error), KT_CASE(mrseq_round_trip)};
  return KT_RUN("seqno", cases);
}
