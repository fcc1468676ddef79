/* The clocks of the phase totals on POSIX (base/phase_int.h). */
#include <time.h>

#include "base/phase_int.h"

static int64_t ns(clockid_t id)
{
  struct timespec ts;
  if (clock_gettime(id, &ts) != 0)
    return 0;
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t kvvm_phase_os_wall_ns(void) { return ns(CLOCK_MONOTONIC); }

int64_t kvvm_phase_os_cpu_ns(int whole_process)
{
  return ns(whole_process ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_THREAD_CPUTIME_ID);
}
