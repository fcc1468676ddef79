/* The POSIX half of the log (log_int.h): O_APPEND descriptors, flock on kvvm.log.lock,
 * rename(2), zlib on a descriptor. A writer keeps kvvm.log open and checks, under the shared
 * lock, that the path still names its descriptor: after a rotation elsewhere it reopens. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "base/log_int.h"

static struct {
  int fd, lock_fd;
  pid_t pid;  /* the process that opened fd and lock_fd */
  dev_t dev;  /* fd's file: kvvm.log while the path still names it */
  ino_t ino;
  char dir[KVVM_LOG_DIR_CAP];
} p = {.fd = -1, .lock_fd = -1};

/* getpid is a system call, and every line asks twice (its prefix, the fork check): the
 * answer is kept, and forgotten in the child of a fork. */
static _Atomic pid_t own_pid;
static pthread_once_t pid_once = PTHREAD_ONCE_INIT;

static void forget_pid(void) { own_pid = 0; }

static void watch_forks(void) { pthread_atfork(NULL, NULL, forget_pid); }

static pid_t my_pid(void)
{
  pthread_once(&pid_once, watch_forks);
  pid_t pid = own_pid;
  if (pid == 0)
    own_pid = pid = getpid();
  return pid;
}

/* <dir>/<name>; the folder is short enough for any of our names to fit. */
static void path_of(char out[PATH_MAX], const char *name)
{
  snprintf(out, PATH_MAX, "%s/%s", p.dir, name);
}

/* mkdir -p with the mode exact (mkdir applies the umask) on each folder made here; folders
 * that exist keep theirs. */
static int make_dir(char *path)
{
  struct stat st;
  if (stat(path, &st) == 0)
    return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
  char *slash = strrchr(path, '/');
  if (slash && slash != path) {
    *slash = '\0';
    int e = make_dir(path);
    *slash = '/';
    if (e)
      return e;
  }
  if (mkdir(path, 0700) != 0 && errno != EEXIST)
    return errno;
  return chmod(path, 0700) != 0 ? errno : 0;
}

static void close_fds(void)
{
  if (p.fd >= 0)
    close(p.fd);
  if (p.lock_fd >= 0)
    close(p.lock_fd);
  p.fd = p.lock_fd = -1;
}

/* O_NOFOLLOW: a symlink planted in the folder is never written through. O_NONBLOCK: a
 * planted FIFO cannot hang us in open(); it is then refused as not a regular file. */
static int open_own(const char *name, int flags, struct stat *st)
{
  char path[PATH_MAX];
  path_of(path, name);
  int fd = open(path, flags | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, 0600);
  if (fd >= 0 && (fstat(fd, st) != 0 || !S_ISREG(st->st_mode))) {
    close(fd);
    errno = EINVAL;
    return -1;
  }
  return fd;
}

/* Opens kvvm.log and its lock file; 0 or an errno value. */
static int open_fds(void)
{
  struct stat st;
  close_fds();
  p.lock_fd = open_own(KVVM_LOG_NAME ".lock", O_RDWR, &st);
  if (p.lock_fd >= 0)
    p.fd = open_own(KVVM_LOG_NAME, O_WRONLY | O_APPEND, &st);
  if (p.fd < 0) {
    int e = errno;
    close_fds();
    return e;
  }
  p.dev = st.st_dev;
  p.ino = st.st_ino;
  p.pid = my_pid();
  return 0;
}

int kvvm_log_os_open(const char *dir, const char **what)
{
  close_fds();
  snprintf(p.dir, sizeof(p.dir), "%s", dir);
  char path[KVVM_LOG_DIR_CAP];
  snprintf(path, sizeof(path), "%s", dir);
  int e = make_dir(path);
  *what = e ? "create the folder" : "open";
  return e ? e : open_fds();
}

void kvvm_log_os_close(void) { close_fds(); }

static pthread_mutex_t writer = PTHREAD_MUTEX_INITIALIZER;

void kvvm_log_os_enter(void) { pthread_mutex_lock(&writer); }

void kvvm_log_os_leave(void) { pthread_mutex_unlock(&writer); }

static int lock(int op)
{
  while (flock(p.lock_fd, op) != 0) {
    if (errno != EINTR)
      return errno;
  }
  return 0;
}

int kvvm_log_os_lock_rotation(void) { return lock(LOCK_EX); }

void kvvm_log_os_unlock_rotation(void) { flock(p.lock_fd, LOCK_UN); }

/* Another process may have rotated: then our descriptor names a renamed (soon removed)
 * file and the path a new one. Gives the size of the file we are about to append to. One
 * lstat of the path does it: a descriptor's device and inode never change, so those kept
 * from its open say whether the path still names it (and then its size is ours). */
static int follow_rotation(uint64_t *size, const char **what)
{
  char path[PATH_MAX];
  struct stat st;
  path_of(path, KVVM_LOG_NAME);
  if (lstat(path, &st) != 0 || st.st_dev != p.dev || st.st_ino != p.ino) {
    int fd = open_own(KVVM_LOG_NAME, O_WRONLY | O_APPEND, &st);
    *what = "reopen";
    if (fd < 0)
      return errno;
    close(p.fd);
    p.fd = fd;
    p.dev = st.st_dev;
    p.ino = st.st_ino;
  }
  *size = (uint64_t)st.st_size;
  return 0;
}

static int write_line(const char *line, size_t n, const char **what)
{
  ssize_t w;
  do
    w = write(p.fd, line, n);
  while (w < 0 && errno == EINTR);
  *what = "write";
  if (w < 0)
    return errno;
  /* A second write could land after another process's line: count it as failed. */
  *what = "short write";
  return (size_t)w != n ? ENOSPC : 0;
}

int kvvm_log_os_append(const char *line, size_t n, uint64_t *size, const char **what)
{
  /* A forked child shares the parent's lock description, which would make their flocks
   * one lock: it opens its own. */
  if (p.pid != my_pid()) {
    int e = open_fds();
    *what = "reopen in a child process";
    if (e)
      return e;
  }
  int e = lock(LOCK_SH);
  *what = "lock";
  if (e)
    return e;
  e = follow_rotation(size, what);
  if (!e)
    e = write_line(line, n, what);
  flock(p.lock_fd, LOCK_UN);
  return e;
}

bool kvvm_log_os_size(const char *name, uint64_t *size)
{
  char path[PATH_MAX];
  struct stat st;
  path_of(path, name);
  if (lstat(path, &st) != 0)
    return false;
  if (size)
    *size = (uint64_t)st.st_size;
  return true;
}

int kvvm_log_os_rename(const char *from, const char *to)
{
  char a[PATH_MAX], b[PATH_MAX];
  path_of(a, from);
  path_of(b, to);
  return rename(a, b) != 0 ? errno : 0;
}

int kvvm_log_os_remove(const char *name)
{
  char path[PATH_MAX];
  path_of(path, name);
  return unlink(path) != 0 ? errno : 0;
}

static bool copy_into_gz(int in, gzFile gz)
{
  char buf[16384];
  for (;;) {
    ssize_t r = read(in, buf, sizeof(buf));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return r == 0;
    if (gzwrite(gz, buf, (unsigned)r) != (int)r)
      return false;
  }
}

/* Compresses the open in into the open out, then makes out durable. */
static int gzip_fds(int in, int out, const char **what)
{
  /* gzclose closes its descriptor; a duplicate leaves ours open for the fsync. */
  gzFile gz = NULL;
  errno = 0;  /* gzdopen may fail without setting it: then say EIO */
  int zfd = dup(out);
  if (zfd >= 0 && !(gz = gzdopen(zfd, "wb")))
    close(zfd);
  *what = "open for compression";
  if (!gz)
    return errno ? errno : EIO;
  errno = 0;
  bool copied = copy_into_gz(in, gz);
  *what = "compress";
  if (gzclose(gz) != Z_OK || !copied)
    return errno ? errno : EIO;
  *what = "fsync";
  return fsync(out) != 0 ? errno : 0;
}

int kvvm_log_os_gzip(const char *src, const char *dst, const char **what)
{
  char a[PATH_MAX], b[PATH_MAX];
  path_of(a, src);
  path_of(b, dst);
  int out = -1, in = open(a, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (in >= 0)
    out = open(b, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  int e = out < 0 ? errno : gzip_fds(in, out, what);
  if (out < 0)
    *what = "open for compression";
  if (in >= 0)
    close(in);
  if (out >= 0)
    close(out);
  return e;
}

void kvvm_log_os_stderr(const char *s, size_t n)
{
  while (n) {
    ssize_t w = write(STDERR_FILENO, s, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return;
    s += w;
    n -= (size_t)w;
  }
}

/* Wall-clock time: a log must say when things really happened. */
size_t kvvm_log_os_stamp(char *buf, size_t cap)
{
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
  return n + (size_t)snprintf(buf + n, cap - n, ".%03ldZ ", ts.tv_nsec / 1000000);
}

long kvvm_log_os_pid(void) { return (long)my_pid(); }

const char *kvvm_log_os_strerror(int err, char *buf, size_t n)
{
  snprintf(buf, n, "%s", strerror(err));
  return buf;
}
