/* Files and folders on POSIX: bounded reads, atomic replace, exact-mode folders, flock. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"


char *kvvm_path_join(const char *a, const char *b)
{
  size_t n = strlen(a);
  const char *sep = (n && a[n - 1] == '/') ? "" : "/";
  while (*b == '/')
    b++;
  return kvvm_xasprintf("%s%s%s", a, sep, b);
}

char *kvvm_path_dirname(const char *path)
{
  const char *slash = strrchr(path, '/');
  if (!slash)
    return kvvm_xstrdup(".");
  if (slash == path)
    return kvvm_xstrdup("/");
  return kvvm_xasprintf("%.*s", (int)(slash - path), path);
}

bool kvvm_path_exists(const char *path)
{
  struct stat st;
  return lstat(path, &st) == 0;
}

static enum kvvm_err read_fd(int fd, const char *path, size_t max, char **out, size_t *len)
{
  size_t cap = 4096, n = 0;
  char *buf = kvvm_xmalloc(cap + 1);
  for (;;) {
    if (n == cap) {
      if (cap > max) {
        KVVM_ERR("%s: larger than %zu bytes", path, max);
        free(buf);
        return KVVM_E_IO;
      }
      cap *= 2;
      buf = kvvm_xrealloc(buf, cap + 1);
    }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      KVVM_ERR("%s: read: %s", path, strerror(errno));
      free(buf);
      return KVVM_E_IO;
    }
    if (r == 0)
      break;
    n += (size_t)r;
  }
  if (n > max) {
    KVVM_ERR("%s: larger than %zu bytes", path, max);
    free(buf);
    return KVVM_E_IO;
  }
  buf[n] = '\0';
  *out = buf;
  if (len)
    *len = n;
  return KVVM_OK;
}

enum kvvm_err kvvm_file_read(const char *path, size_t max, char **out, size_t *len)
{
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    if (errno == ENOENT)
      return KVVM_E_NOENT;
    KVVM_ERR("%s: open: %s", path, strerror(errno));
    return KVVM_E_IO;
  }
  struct stat st;
  enum kvvm_err rc = KVVM_E_IO;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
    KVVM_ERR("%s: not a regular file", path);
  else
    rc = read_fd(fd, path, max, out, len);
  close(fd);
  return rc;
}

int kvvm_fd_write_all(int fd, const void *data, size_t len)
{
  const char *p = data;
  while (len) {
    ssize_t w = write(fd, p, len);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return -1;
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

static int fsync_dir(const char *dir)
{
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  int r = fsync(fd);
  close(fd);
  return r;
}

/* Create a fresh temp file beside the target: O_EXCL and O_NOFOLLOW so nothing planted
 * in the folder (a symlink, a stale file) is ever written through. */
static int open_temp(const char *dir, char **tmp_out)
{
  for (int attempt = 0; attempt < 16; attempt++) {
    unsigned r = (unsigned)getpid() * 2654435761u ^ (unsigned)rand() ^ (unsigned)attempt;
    char *tmp = kvvm_xasprintf("%s/" KVVM_TEMP_PREFIX "%08x", dir, r);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
      *tmp_out = tmp;
      return fd;
    }
    int e = errno;
    free(tmp);
    if (e != EEXIST) {
      errno = e;
      return -1;
    }
  }
  errno = EEXIST;
  return -1;
}

struct bytes {
  const void *data;
  size_t len;
};

static int write_bytes(int fd, void *ctx)
{
  const struct bytes *b = ctx;
  return kvvm_fd_write_all(fd, b->data, b->len);
}

enum kvvm_err kvvm_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
  struct bytes b = {data, len};
  return kvvm_file_write_atomic_with(path, mode, write_bytes, &b);
}

enum kvvm_err kvvm_file_write_atomic_with(const char *path, mode_t mode,
                                          int (*fill)(int fd, void *ctx), void *ctx)
{
  enum kvvm_err rc = KVVM_E_IO;
  char *dir = kvvm_path_dirname(path), *tmp = NULL;
  int fd = open_temp(dir, &tmp);
  if (fd < 0) {
    KVVM_ERR("%s: cannot create a temp file: %s", dir, strerror(errno));
    goto out;
  }
  if (fill(fd, ctx) != 0 || fchmod(fd, mode) != 0 || fsync(fd) != 0) {
    KVVM_ERR("%s: write: %s", tmp, strerror(errno));
    goto out;
  }
  if (close(fd) != 0) {
    fd = -1;
    KVVM_ERR("%s: close: %s", tmp, strerror(errno));
    goto out;
  }
  fd = -1;
  if (rename(tmp, path) != 0) {
    KVVM_ERR("%s: rename: %s", path, strerror(errno));
    goto out;
  }
  free(tmp);
  tmp = NULL;
  if (fsync_dir(dir) != 0)
    KVVM_WARN("%s: fsync of the folder: %s", dir, strerror(errno));
  rc = KVVM_OK;
out:
  if (fd >= 0)
    close(fd);
  if (tmp)
    unlink(tmp);
  free(tmp);
  free(dir);
  return rc;
}

enum kvvm_err kvvm_dir_ensure(const char *path, mode_t mode)
{
  struct stat st;
  if (stat(path, &st) == 0) {
    if (S_ISDIR(st.st_mode))
      return KVVM_OK;
    KVVM_ERR("%s: exists and is not a folder", path);
    return KVVM_E_IO;
  }
  char *parent = kvvm_path_dirname(path);
  enum kvvm_err rc = KVVM_OK;
  if (strcmp(parent, path) != 0 && strcmp(parent, ".") != 0)
    rc = kvvm_dir_ensure(parent, mode);
  free(parent);
  if (rc != KVVM_OK)
    return rc;
  if (mkdir(path, mode) != 0 && errno != EEXIST) {
    KVVM_ERR("%s: mkdir: %s", path, strerror(errno));
    return KVVM_E_IO;
  }
  /* mkdir applies the umask; the mode we promise is exact. */
  if (chmod(path, mode) != 0) {
    KVVM_ERR("%s: chmod: %s", path, strerror(errno));
    return KVVM_E_IO;
  }
  return KVVM_OK;
}

int kvvm_dir_sweep_prefix(const char *dir, const char *prefix)
{
  DIR *d = opendir(dir);
  if (!d)
    return 0;
  int count = 0;
  size_t plen = strlen(prefix);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, prefix, plen) != 0)
      continue;
    if (unlinkat(dirfd(d), e->d_name, 0) == 0)
      count++;
  }
  closedir(d);
  return count;
}

enum kvvm_err kvvm_lock_open(const char *path, bool exclusive, bool nonblock, int *fd_out)
{
  *fd_out = -1;
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    KVVM_ERR("%s: open lock: %s", path, strerror(errno));
    return KVVM_E_IO;
  }
  int op = (exclusive ? LOCK_EX : LOCK_SH) | (nonblock ? LOCK_NB : 0);
  while (flock(fd, op) != 0) {
    if (errno == EINTR)
      continue;
    int e = errno;
    close(fd);
    if (e == EWOULDBLOCK)
      return KVVM_E_LOCKED;
    KVVM_ERR("%s: flock: %s", path, strerror(e));
    return KVVM_E_IO;
  }
  *fd_out = fd;
  return KVVM_OK;
}

bool kvvm_lock_is_held(const char *path)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return false;
  bool held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  close(fd);
  return held;
}
