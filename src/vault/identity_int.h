/* What identity.c shares with the platform files that read Azure Arc's challenge key
 * (identity_arc_linux.c, identity_arc_windows.c). */
#ifndef KVVM_IDENTITY_INT_H
#define KVVM_IDENTITY_INT_H

#include <stdbool.h>
#include <stddef.h>

/* The key read from the file goes into a header: a trailing newline is dropped (key
 * shortened in place), other control bytes refused. False when nothing usable is left. */
bool kvvm_arc_key_text_ok(char *key, size_t *len);

#endif
