/* Debian's static libjansson.a is built as position-dependent code: its one reference to the
 * C library's `stdin` (json_loadf labels input read from stdin) cannot be linked into a
 * shared object. The build renames that reference to this private pointer (objcopy
 * --redefine-sym, see the Makefile), so jansson can live inside libkvvm.so and a VM needs
 * no jansson of its own. kvvm never hands stdin to jansson, so the label is all it loses. */
#include <stdio.h>

__attribute__((visibility("hidden"))) FILE *kvvm_jansson_stdin;
