/* Test build only, forced in with -include: the POSIX and glibc calls that portable files still
 * make (mem.c, certmat_bundle.c), mapped to their Windows equivalents until engineer "core"
 * moves them behind the agreed compat header (Windows issue I). */
#ifndef KVVM_TEST_COMPAT_H
#define KVVM_TEST_COMPAT_H
#include <direct.h>
#include <io.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <winsock2.h>
#include <windows.h>

#define explicit_bzero(p, n) SecureZeroMemory((p), (n))
#define malloc_usable_size(p) _msize(p)
#define timegm(tm) _mkgmtime(tm)
static inline struct tm *kvvm_test_gmtime_r(const time_t *t, struct tm *out)
{
  return gmtime_s(out, t) == 0 ? out : NULL;
}
#define gmtime_r(t, out) kvvm_test_gmtime_r((t), (out))
static inline void *kvvm_test_memmem(const void *h, size_t hn, const void *n, size_t nn)
{
  const char *p = h;
  for (size_t i = 0; nn <= hn && i <= hn - nn; i++)
    if (memcmp(p + i, n, nn) == 0)
      return (void *)(uintptr_t)(p + i);
  return NULL;
}
#define memmem kvvm_test_memmem
static inline char *kvvm_test_mkdtemp(char *t)
{
  return _mktemp(t) && _mkdir(t) == 0 ? t : NULL;
}
#define mkdtemp kvvm_test_mkdtemp
#endif
