/* The allocator's platform half (mem_linux.c, mem_windows.c): how big a block really is, so
 * jansson's buffers can be wiped whole before they are freed. */
#ifndef KVVM_MEM_INT_H
#define KVVM_MEM_INT_H

#include <stddef.h>

/* The usable size of a block from malloc (at least what was asked for). */
size_t kvvm_mem_usable(void *p);

#endif
