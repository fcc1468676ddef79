/* Test build only: the few functions the store test needs (log, clock, fileio, paths), on
 * plain C and Win32, standing in for the Windows files of log.c, clock.c and fileio that
 * engineer "core" is writing. Once those exist, build-store-test.sh links them instead and
 * this file goes. Nothing here is atomic or careful the way fileio_posix.c is: it only has
 * to let installed.c read and write installed.json in a test folder. */
#include <direct.h>
#include <errno.h>
#include <io.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvvm/clock.h"
#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/paths.h"

void kvvm_log(enum kvvm_log_level lvl, const char *fmt, ...)
{
  static const char *const names[] = {"debug", "info", "warn", "error"};
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "kvvm %s: ", names[lvl]);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

time_t kvvm_clock_now(void) { return time(NULL); }

/* paths_windows.c is engineer "wsvc"'s; the test always passes its own state folder. */
const char *kvvm_paths_state_dir(void) { return "C:\\ProgramData\\kvvm"; }

char *kvvm_path_join(const char *a, const char *b) { return kvvm_xasprintf("%s\\%s", a, b); }

enum kvvm_err kvvm_file_read(const char *path, size_t max, char **out, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return errno == ENOENT ? KVVM_E_NOENT : KVVM_E_IO;
  char *buf = kvvm_xmalloc(max + 1);
  size_t n = fread(buf, 1, max + 1, f);
  fclose(f);
  if (n > max) {
    free(buf);
    return KVVM_E_IO;
  }
  buf[n] = '\0';
  *out = buf;
  if (len)
    *len = n;
  return KVVM_OK;
}

int kvvm_fd_write_all(int fd, const void *data, size_t len)
{
  return _write(fd, data, (unsigned)len) == (int)len ? 0 : -1;
}

enum kvvm_err kvvm_dir_ensure(const char *path, mode_t mode)
{
  (void)mode;
  return _mkdir(path) == 0 || errno == EEXIST ? KVVM_OK : KVVM_E_IO;
}

enum kvvm_err kvvm_file_write_atomic_with(const char *path, mode_t mode,
                                          int (*fill)(int fd, void *ctx), void *ctx)
{
  (void)mode;
  char *tmp = kvvm_xasprintf("%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  int rc = f ? fill(_fileno(f), ctx) : -1;
  if (f && fclose(f) != 0)
    rc = -1;
  if (rc == 0 && (remove(path) == 0 || errno == ENOENT) && rename(tmp, path) != 0)
    rc = -1;
  free(tmp);
  return rc == 0 ? KVVM_OK : KVVM_E_IO;
}
