/* Allocation wrappers: on OOM log once and exit, so no caller carries an OOM branch. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "base/mem_int.h"

static void oom(size_t n)
{
  KVVM_ERR("out of memory allocating %zu bytes", n);
  exit(3);
}

void *kvvm_xmalloc(size_t n)
{
  void *p = malloc(n ? n : 1);
  if (!p)
    oom(n);
  return p;
}

void *kvvm_xcalloc(size_t n, size_t size)
{
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p)
    oom(n * size);
  return p;
}

void *kvvm_xrealloc(void *p, size_t n)
{
  void *q = realloc(p, n ? n : 1);
  if (!q)
    oom(n);
  return q;
}

char *kvvm_xstrdup(const char *s)
{
  if (!s)
    return NULL;
  size_t n = strlen(s) + 1;
  return memcpy(kvvm_xmalloc(n), s, n);
}

char *kvvm_xasprintf(const char *fmt, ...)
{
  va_list ap;
  char *s = NULL;
  va_start(ap, fmt);
  int n = vasprintf(&s, fmt, ap);
  va_end(ap);
  if (n < 0)
    oom(strlen(fmt));
  return s;
}

void kvvm_wipe(void *p, size_t n)
{
  /* A volatile pointer keeps the compiler from dropping stores to memory about to be freed. */
  volatile unsigned char *v = p;
  while (p && n--)
    *v++ = 0;
}

void kvvm_free_secret(void *p, size_t n)
{
  kvvm_wipe(p, n);
  free(p);
}

void kvvm_strv_free(char **v)
{
  if (!v)
    return;
  for (char **s = v; *s; s++)
    free(*s);
  free(v);
}

/* jansson's buffers hold tokens and secret values while they are parsed: wipe each one
 * before it goes back to the allocator. */
static void wipe_free(void *p)
{
  if (p)
    kvvm_wipe(p, kvvm_mem_usable(p));
  free(p);
}

/* jansson allocates through us too, so its out-of-memory is ours: logged, then exit. */
__attribute__((constructor)) static void route_jansson(void)
{
  json_set_alloc_funcs(kvvm_xmalloc, wipe_free);
}

