/* The platform half of the phase totals (src/posix/phase_posix.c,
 * src/windows/phase_windows.c): the clocks. */
#ifndef KVVM_PHASE_INT_H
#define KVVM_PHASE_INT_H
#include <stdint.h>

/* A monotonic clock, nanoseconds. */
int64_t kvvm_phase_os_wall_ns(void);
/* CPU time (user and system), nanoseconds: of the calling thread, or of the whole process. */
int64_t kvvm_phase_os_cpu_ns(int whole_process);
#endif
