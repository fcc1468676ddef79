/* mem's platform half on Linux (glibc's malloc). */
#include <malloc.h>

#include "kvvm/mem.h"
#include "base/mem_int.h"

size_t kvvm_mem_usable(void *p) { return malloc_usable_size(p); }

void kvvm_mem_release(void)
{
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}
