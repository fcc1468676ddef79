/* The clocks of the phase totals on Windows (base/phase_int.h). */
#include <windows.h>

#include "base/phase_int.h"

int64_t kvvm_phase_os_wall_ns(void)
{
  LARGE_INTEGER c, f;
  if (!QueryPerformanceCounter(&c) || !QueryPerformanceFrequency(&f) || f.QuadPart <= 0)
    return 0;
  return (int64_t)(c.QuadPart / f.QuadPart) * 1000000000 +
         (int64_t)(c.QuadPart % f.QuadPart) * 1000000000 / f.QuadPart;
}

static int64_t filetime_ns(const FILETIME *t)
{
  return (int64_t)(((ULONGLONG)t->dwHighDateTime << 32) | t->dwLowDateTime) * 100;
}

int64_t kvvm_phase_os_cpu_ns(int whole_process)
{
  FILETIME created, exited, kernel, user;
  BOOL ok = whole_process ?
                GetProcessTimes(GetCurrentProcess(), &created, &exited, &kernel, &user) :
                GetThreadTimes(GetCurrentThread(), &created, &exited, &kernel, &user);
  return ok ? filetime_ns(&kernel) + filetime_ns(&user) : 0;
}
