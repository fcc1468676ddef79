/* What both hook runners (posix/hooks_posix.c, windows/hooks_*_windows.c) share, kept in
 * the portable hooks.c: the failures of one run as one line, the name order, and a hook's
 * output cut into lines for the log. */
#ifndef KVVM_HOOKS_RUN_INT_H
#define KVVM_HOOKS_RUN_INT_H

#include <stdbool.h>
#include <stddef.h>

#define HOOK_OUTPUT_LOG_MAX (64 * 1024)  /* per hook: a runaway hook must not flood the log */
#define HOOK_LINE_MAX_LOG 1024

/* The failures of one run, "; "-separated, for the status message (s: the caller's). */
struct hook_notes {
  char *s;
  size_t len, used;
};

void hook_note(struct hook_notes *n, const char *fmt, ...) __attribute__((format(gnu_printf, 2, 3)));

/* qsort comparison of char * names: hooks run in byte order of their names. */
int hook_name_cmp(const void *a, const void *b);

/* A hook's output to the log as "hook <name>: <line>", up to HOOK_OUTPUT_LOG_MAX per hook;
 * control bytes as '?'; with drop_cr, CRs are left out (cmd ends its lines with CR LF). */
struct hook_out {
  const char *name;
  bool drop_cr;
  char line[HOOK_LINE_MAX_LOG + 1];
  size_t fill, logged;
};

void hook_out_feed(struct hook_out *o, const char *buf, size_t n);
/* The last line, when the output did not end with one. */
void hook_out_flush(struct hook_out *o);

#endif
