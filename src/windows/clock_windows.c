/* The real clocks on Windows (clock_posix.c is the POSIX twin). Tests replace these by
 * defining the same kvvm_clock_* functions (see clock.h), so nothing here may be called by
 * another name inside this file, and the four stay in one object: a static link that takes
 * the test's definitions must not need this file for anything else. */
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "kvvm/clock.h"
#include "windows/win_int.h"

/* FILETIME counts 100 ns ticks since 1601-01-01; this many lie before 1970-01-01. */
#define EPOCH_DIFF_TICKS 116444736000000000ULL
#define TICKS_PER_S 10000000ULL

time_t kvvm_clock_now(void)
{
  FILETIME ft;
  GetSystemTimeAsFileTime(&ft);
  uint64_t t = (uint64_t)ft.dwHighDateTime << 32 | ft.dwLowDateTime;
  return (time_t)((t - EPOCH_DIFF_TICKS) / TICKS_PER_S);
}

/* GetTickCount64 ticks every 10-16 ms: plenty for deadlines and retries, and unlike
 * QueryPerformanceCounter it needs no frequency arithmetic that could overflow. */
int64_t kvvm_clock_mono_ms(void) { return (int64_t)GetTickCount64(); }

/* The stop event is the service's SIGTERM: once set it stays set (manual reset), so a stop
 * is seen by every later sleep and by kvvm_clock_stopping alike. */
bool kvvm_clock_stopping(void)
{
  HANDLE ev = kvvm_win_stop_event();
  return ev && WaitForSingleObject(ev, 0) == WAIT_OBJECT_0;
}

void kvvm_clock_sleep_ms(int64_t ms)
{
  HANDLE ev = kvvm_win_stop_event();
  int64_t end = kvvm_clock_mono_ms() + ms;
  /* In pieces below INFINITE, so no sleep is mistaken for "forever". */
  for (int64_t left = ms; left > 0; left = end - kvvm_clock_mono_ms()) {
    DWORD piece = left > 0x7fffffff ? 0x7fffffff : (DWORD)left;
    if (!ev) {
      Sleep(piece);  /* no event could be made: sleep on, as a process without one would */
      continue;
    }
    if (WaitForSingleObject(ev, piece) == WAIT_OBJECT_0)
      return;
  }
}
