/* clock_windows.c and rand_windows.c under wine (or Windows): the wall clock against the C
 * library's, the monotonic clock and sleeps measured against each other, a stop (the stop
 * event set) ending a long sleep at once and making kvvm_clock_stopping true for good, and
 * random bytes that differ call to call, large requests included. Run by
 * tests/windows/base.sh. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <windows.h>

#include "kvvm/clock.h"
#include "kvvm/rand.h"
#include "windows/win_int.h"

static int failed, passed;

#define CHECK(c) check((c), #c, __LINE__)

static void check(bool ok, const char *what, int line)
{
  if (ok) {
    passed++;
    return;
  }
  failed++;
  fprintf(stderr, "FAIL line %d: %s\n", line, what);
}

static void clocks(void)
{
  time_t now = kvvm_clock_now(), libc = time(NULL);
  CHECK(now - libc <= 1 && libc - now <= 1);
  int64_t a = kvvm_clock_mono_ms();
  Sleep(100);
  int64_t b = kvvm_clock_mono_ms();
  CHECK(b - a >= 80 && b - a < 2000);
  kvvm_clock_sleep_ms(300);
  int64_t c = kvvm_clock_mono_ms();
  CHECK(c - b >= 280 && c - b < 3000);
  kvvm_clock_sleep_ms(0);
  kvvm_clock_sleep_ms(-5);
  CHECK(kvvm_clock_mono_ms() - c < 100);
  CHECK(!kvvm_clock_stopping());
}

static void stop_ends_sleeps(void)
{
  CHECK(SetEvent(kvvm_win_stop_event()));
  int64_t a = kvvm_clock_mono_ms();
  kvvm_clock_sleep_ms(60000);
  kvvm_clock_sleep_ms(60000);
  CHECK(kvvm_clock_mono_ms() - a < 1000);
  CHECK(kvvm_clock_stopping());
  CHECK(kvvm_clock_stopping()); /* manual reset: still set when asked again */
}

static void random_bytes(void)
{
  unsigned char x[32] = {0}, y[32] = {0}, zero[32] = {0};
  CHECK(kvvm_rand_bytes(x, sizeof x) == KVVM_OK);
  CHECK(kvvm_rand_bytes(y, sizeof y) == KVVM_OK);
  CHECK(memcmp(x, zero, sizeof x) != 0 && memcmp(x, y, sizeof x) != 0);
  size_t big = (size_t)4 << 20;
  unsigned char *m = calloc(1, big);
  CHECK(m && kvvm_rand_bytes(m, big) == KVVM_OK);
  /* The last KiB is filled too, not only the first piece. */
  CHECK(m && memcmp(m + big - sizeof zero, zero, sizeof zero) != 0);
  free(m);
  CHECK(kvvm_rand_bytes(x, 0) == KVVM_OK);
}

int main(void)
{
  clocks();
  random_bytes();
  stop_ends_sleeps(); /* last: the stop event stays set */
  printf("clock_rand_windows: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
