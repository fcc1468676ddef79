/* mem's platform half on Windows (msvcrt's malloc). */
#include <malloc.h>

#include "kvvm/mem.h"
#include "base/mem_int.h"

size_t kvvm_mem_usable(void *p) { return _msize(p); }

/* Give the CRT heap's free pages back before kvvmd sleeps, as malloc_trim does on Linux. */
void kvvm_mem_release(void) { _heapmin(); }
