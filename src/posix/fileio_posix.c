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
#include "posix/posix_int.h"

struct kvvm_wfile {
  int fd;
};

struct kvvm_lock {
  int fd;
};


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

bool kvvm_path_is_absolute(const char *path) { return path && path[0] == '/'; }

char *kvvm_path_absolute(const char *path)
{
  char *abs = realpath(path, NULL);
  char *copy = abs ? kvvm_xstrdup(abs) : NULL;   /* kvvm's allocator, as the header says */
  free(abs);
  return copy;
}

bool kvvm_path_exists(const char *path)
{
  struct stat st;
  return lstat(path, &st) == 0;
}

bool kvvm_path_is_link(const char *path)
{
  struct stat st;
  return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
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

int kvvm_wfile_write(struct kvvm_wfile *f, const void *data, size_t len)
{
  return kvvm_fd_write_all(f->fd, data, len);
}

static int write_bytes(struct kvvm_wfile *f, void *ctx)
{
  const struct bytes *b = ctx;
  return kvvm_wfile_write(f, b->data, b->len);
}

enum kvvm_err kvvm_file_write_atomic(const char *path, const void *data, size_t len,
                                     unsigned mode)
{
  struct bytes b = {data, len};
  return kvvm_file_write_atomic_with(path, mode, write_bytes, &b);
}

enum kvvm_err kvvm_file_write_atomic_with(const char *path, unsigned mode,
                                          int (*fill)(struct kvvm_wfile *f, void *ctx),
                                          void *ctx)
{
  enum kvvm_err rc = KVVM_E_IO;
  char *dir = kvvm_path_dirname(path), *tmp = NULL;
  int fd = open_temp(dir, &tmp);
  if (fd < 0) {
    KVVM_ERR("%s: cannot create a temp file: %s", dir, strerror(errno));
    goto out;
  }
  struct kvvm_wfile f = {fd};
  if (fill(&f, ctx) != 0 || fchmod(fd, (mode_t)mode) != 0 || fsync(fd) != 0) {
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

enum kvvm_err kvvm_dir_ensure(const char *path, unsigned mode)
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
  if (mkdir(path, (mode_t)mode) != 0 && errno != EEXIST) {
    KVVM_ERR("%s: mkdir: %s", path, strerror(errno));
    return KVVM_E_IO;
  }
  /* mkdir applies the umask; the mode we promise is exact. */
  if (chmod(path, (mode_t)mode) != 0) {
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

enum kvvm_err kvvm_file_info(const char *path, struct kvvm_file_info *out)
{
  struct stat st;
  if (stat(path, &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return KVVM_E_NOENT;
    KVVM_ERR("%s: stat: %s", path, strerror(errno));
    return KVVM_E_IO;
  }
  out->is_dir = S_ISDIR(st.st_mode);
  out->is_file = S_ISREG(st.st_mode);
  out->size = (uint64_t)st.st_size;
  out->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
  out->mode = (unsigned)(st.st_mode & 07777);
  return KVVM_OK;
}

enum kvvm_err kvvm_dir_list(const char *dir, char ***names)
{
  *names = NULL;
  DIR *d = opendir(dir);
  if (!d) {
    if (errno == ENOENT)
      return KVVM_E_NOENT;
    KVVM_ERR("%s: %s", dir, strerror(errno));
    return KVVM_E_IO;
  }
  size_t n = 0, cap = 16;
  char **v = kvvm_xmalloc(cap * sizeof *v);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    if (n + 1 == cap)
      v = kvvm_xrealloc(v, (cap *= 2) * sizeof *v);
    v[n++] = kvvm_xstrdup(e->d_name);
  }
  v[n] = NULL;
  closedir(d);
  *names = v;
  return KVVM_OK;
}

enum kvvm_err kvvm_file_remove(const char *path)
{
  if (unlink(path) == 0 || errno == ENOENT)
    return KVVM_OK;
  KVVM_ERR("%s: %s", path, strerror(errno));
  return KVVM_E_IO;
}

enum kvvm_err kvvm_dir_remove(const char *path)
{
  return rmdir(path) == 0 || errno == ENOENT ? KVVM_OK : KVVM_E_IO;
}

/* Why the opened file may not be trusted, or "" when it may. */
static void trust_fault(const struct stat *st, size_t max, char *reason, size_t n)
{
  reason[0] = '\0';
  if (!S_ISREG(st->st_mode))
    snprintf(reason, n, "is not a regular file");
  else if (st->st_uid != 0)
    snprintf(reason, n, "is owned by uid %u, not root", (unsigned)st->st_uid);
  else if (st->st_mode & (S_IWGRP | S_IWOTH))
    snprintf(reason, n, "is writable by group or others (mode %04o)",
             (unsigned)(st->st_mode & 07777));
  else if ((uint64_t)st->st_size > max)
    snprintf(reason, n, "is larger than %zu bytes", max);
}

enum kvvm_err kvvm_file_read_trusted(const char *path, size_t max, char **out,
                                     char *reason, size_t reasonlen)
{
  *out = NULL;
  reason[0] = '\0';
  /* O_NOFOLLOW: the file checked is the file used; O_NONBLOCK: a FIFO cannot hang us. */
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    snprintf(reason, reasonlen, "cannot be opened: %s",
             errno == ELOOP ? "it is a symbolic link" : strerror(errno));
    return KVVM_E_IO;
  }
  struct stat st;
  if (fstat(fd, &st) != 0)
    snprintf(reason, reasonlen, "cannot be examined: %s", strerror(errno));
  else
    trust_fault(&st, max, reason, reasonlen);
  /* A size that changed since fstat is refused too: the file checked is the file read. */
  size_t len = 0;
  if (!reason[0] && (read_fd(fd, path, max, out, &len) != KVVM_OK || len != (size_t)st.st_size))
    snprintf(reason, reasonlen, "could not be read whole");
  close(fd);
  if (reason[0]) {
    free(*out);
    *out = NULL;
    return KVVM_E_IO;
  }
  return KVVM_OK;
}

enum kvvm_err kvvm_lock_open(const char *path, bool exclusive, bool nonblock,
                             struct kvvm_lock **out)
{
  *out = NULL;
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
  *out = kvvm_xmalloc(sizeof **out);
  (*out)->fd = fd;
  return KVVM_OK;
}

/* Closing the descriptor releases the flock. */
void kvvm_lock_close(struct kvvm_lock *l)
{
  if (!l)
    return;
  close(l->fd);
  free(l);
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
