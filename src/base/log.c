/* The one log, <logFolder>/kvvm.log, shared by the short-lived commands and kvvmd.
 *
 * Every line is formatted into a buffer and written with one write() on an O_APPEND
 * descriptor, so lines of different processes never interleave. Writers hold a shared
 * flock on kvvm.log.lock while they write; rotation holds it exclusively. So once a
 * rotation renamed kvvm.log, no writer can still append to the renamed file: each checks,
 * under the shared lock, that the path still names its descriptor and reopens if not.
 *
 * This module never logs through itself: its own failures go to stderr, and nothing on
 * the write path allocates (an OOM exit would log from inside a log call).
 * One sink per process and kvvm is single-threaded, so the state is a plain global. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "kvvm/fileio.h"
#include "kvvm/log.h"

#define LOG_NAME "kvvm.log"
#define DEFAULT_MAX_BYTES ((size_t)4 << 20)
#define DEFAULT_KEEP 5
#define MAX_KEEP 100
/* Longer messages are cut: a fixed buffer keeps the write path free of allocation. */
#define LINE_CAP 8192
#define MSG_CAP 4096
#define CUT_MARK "[...]"

enum sink {
  SINK_NONE,     /* kvvm_log_open not called: stderr at the stderr level */
  SINK_FILE,     /* kvvm.log */
  SINK_FALLBACK  /* kvvm_log_open failed: stderr takes the file's place */
};

static struct {
  enum sink sink;
  int fd, lock_fd;
  pid_t pid;              /* the process that opened fd and lock_fd */
  bool write_err_said;    /* a write failure was reported and no write succeeded since */
  bool rotate_err_said;   /* likewise for rotation */
  enum kvvm_log_level stderr_level;
  size_t max_bytes;
  int keep;
  char comp[32];
  char dir[PATH_MAX - 32];  /* leaves room for our file names in a PATH_MAX buffer */
} g = {
  .sink = SINK_NONE,
  .fd = -1,
  .lock_fd = -1,
  .stderr_level = KVVM_LOG_WARN,
  .max_bytes = DEFAULT_MAX_BYTES,
  .keep = DEFAULT_KEEP,
  .comp = "kvvm",
};

static void to_stderr(const char *s, size_t n)
{
  while (n) {
    ssize_t w = write(STDERR_FILENO, s, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return;  /* nowhere left to report to */
    s += w;
    n -= (size_t)w;
  }
}

/* The log's own complaints: straight to stderr, never through kvvm_log. */
__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
  char buf[PATH_MAX + 256];
  int n = snprintf(buf, sizeof(buf), "%s[%ld] error: ", g.comp, (long)getpid());
  va_list ap;
  va_start(ap, fmt);
  n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if ((size_t)n > sizeof(buf) - 2)
    n = (int)sizeof(buf) - 2;
  buf[n++] = '\n';
  to_stderr(buf, (size_t)n);
}

/* Report a failure once until the operation succeeds again, so a full disk does not
 * double every line on stderr with the same complaint. */
static bool complain(bool *said, const char *what, int err)
{
  if (!*said)
    say("%s/" LOG_NAME ": %s: %s", g.dir, what, strerror(err));
  *said = true;
  return false;
}

/* <dir>/<name>; g.dir is short enough for any of our names to fit. */
__attribute__((format(printf, 2, 3))) static void path_fmt(char *out, const char *fmt, ...)
{
  int n = snprintf(out, PATH_MAX, "%s/", g.dir);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out + n, PATH_MAX - (size_t)n, fmt, ap);
  va_end(ap);
}

static void close_fds(void)
{
  if (g.fd >= 0)
    close(g.fd);
  if (g.lock_fd >= 0)
    close(g.lock_fd);
  g.fd = g.lock_fd = -1;
}

/* O_NOFOLLOW: a symlink planted in the folder is never written through. O_NONBLOCK: a
 * planted FIFO cannot hang us in open(); it is then refused as not a regular file. */
static int open_own(const char *name, int flags)
{
  char path[PATH_MAX];
  path_fmt(path, "%s", name);
  int fd = open(path, flags | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, 0600);
  struct stat st;
  if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
    close(fd);
    errno = EINVAL;
    return -1;
  }
  return fd;
}

/* Opens kvvm.log and its lock file into g; 0 or an errno value. */
static int open_fds(void)
{
  close_fds();
  g.lock_fd = open_own(LOG_NAME ".lock", O_RDWR);
  if (g.lock_fd >= 0)
    g.fd = open_own(LOG_NAME, O_WRONLY | O_APPEND);
  if (g.fd < 0) {
    int e = errno;
    close_fds();
    return e;
  }
  g.pid = getpid();
  return 0;
}

enum kvvm_err kvvm_log_open(const char *dir, const char *component)
{
  kvvm_log_close();
  snprintf(g.comp, sizeof(g.comp), "%s", component ? component : "kvvm");
  g.write_err_said = g.rotate_err_said = false;
  if (strlen(dir) >= sizeof(g.dir)) {
    g.sink = SINK_FALLBACK;
    say("log folder path too long: logging to stderr only");
    return KVVM_E_IO;
  }
  snprintf(g.dir, sizeof(g.dir), "%s", dir);
  /* Nothing is open yet, so what kvvm_dir_ensure logs goes to stderr, not back here. */
  enum kvvm_err rc = kvvm_dir_ensure(dir, 0700);
  int e = rc == KVVM_OK ? open_fds() : 0;
  if (rc != KVVM_OK || e) {
    g.sink = SINK_FALLBACK;
    say("cannot open %s/" LOG_NAME "%s%s: logging to stderr only", dir, e ? ": " : "",
        e ? strerror(e) : "");
    return KVVM_E_IO;
  }
  g.sink = SINK_FILE;
  return KVVM_OK;
}

void kvvm_log_close(void)
{
  close_fds();
  g.sink = SINK_NONE;
}

void kvvm_log_set_stderr_level(enum kvvm_log_level lvl) { g.stderr_level = lvl; }

/* max_bytes 0 restores the default; keep is clamped to 0..MAX_KEEP (0: no generations). */
void kvvm_log_set_limits(size_t max_bytes, int keep)
{
  g.max_bytes = max_bytes ? max_bytes : DEFAULT_MAX_BYTES;
  g.keep = keep < 0 ? 0 : keep > MAX_KEEP ? MAX_KEEP : keep;
}

static int lock(int op)
{
  while (flock(g.lock_fd, op) != 0) {
    if (errno != EINTR)
      return -1;
  }
  return 0;
}

/* ---- rotation (exclusive lock held) ---- */

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

static bool rotate_fail(const char *what)
{
  return complain(&g.rotate_err_said, what, errno ? errno : EIO);
}

/* kvvm.log.1 -> kvvm.log.1.gz through a temp name, fsync'd before the rename, so neither a
 * reader nor a crash ever meets a half-written .gz under the final name. */
static bool compress_first(void)
{
  char src[PATH_MAX], tmp[PATH_MAX], dst[PATH_MAX];
  path_fmt(src, LOG_NAME ".1");
  path_fmt(tmp, LOG_NAME ".1.gz.tmp");
  path_fmt(dst, LOG_NAME ".1.gz");
  bool ok = false;
  gzFile gz = NULL;
  int out = -1, in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (in >= 0)
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  /* gzclose closes its descriptor; a duplicate leaves ours open for the fsync. */
  int zfd = out >= 0 ? dup(out) : -1;
  if (zfd >= 0 && !(gz = gzdopen(zfd, "wb")))
    close(zfd);
  if (!gz) {
    rotate_fail("open for compression");
  } else {
    errno = 0;  /* a zlib failure may leave none; rotate_fail then says EIO */
    bool copied = copy_into_gz(in, gz);
    if (gzclose(gz) != Z_OK || !copied)
      rotate_fail("compress");
    else if (fsync(out) != 0)
      rotate_fail("fsync");
    else if (rename(tmp, dst) != 0)
      rotate_fail("rename");
    else
      ok = true;
  }
  if (in >= 0)
    close(in);
  if (out >= 0)
    close(out);
  unlink(ok ? src : tmp);
  return ok;
}

/* A crash mid-rotation leaves kvvm.log.1 behind. kvvm.log.1.gz is renamed into place
 * before kvvm.log.1 is removed, so if the .gz exists the plain file is a finished copy. */
static void finish_interrupted(void)
{
  char plain[PATH_MAX], gz[PATH_MAX];
  path_fmt(plain, LOG_NAME ".1");
  path_fmt(gz, LOG_NAME ".1.gz");
  if (!kvvm_path_exists(plain))
    return;
  if (kvvm_path_exists(gz))
    unlink(plain);
  else
    compress_first();
}

/* kvvm.log.N.gz -> N+1; the rename onto `keep` drops the oldest. Generations past keep
 * that a larger `keep` left earlier are removed (all up to MAX_KEEP: there may be gaps).
 * A failed rename loses a generation but rotation goes on: an ever-growing kvvm.log would
 * be worse. */
static void shift_generations(void)
{
  char from[PATH_MAX], to[PATH_MAX];
  for (int n = g.keep + 1; n <= MAX_KEEP; n++) {
    path_fmt(to, LOG_NAME ".%d.gz", n);
    unlink(to);
  }
  for (int n = g.keep - 1; n >= 1; n--) {
    path_fmt(from, LOG_NAME ".%d.gz", n);
    path_fmt(to, LOG_NAME ".%d.gz", n + 1);
    if (rename(from, to) != 0 && errno != ENOENT)
      complain(&g.rotate_err_said, "rename of an old generation", errno);
  }
}

static bool rotate_locked(void)
{
  char path[PATH_MAX], first[PATH_MAX];
  struct stat st;
  path_fmt(path, LOG_NAME);
  /* Another process may have rotated while we waited for the lock. */
  if (lstat(path, &st) != 0 || (size_t)st.st_size < g.max_bytes)
    return true;
  finish_interrupted();
  shift_generations();
  if (g.keep == 0) {
    if (unlink(path) != 0)
      return complain(&g.rotate_err_said, "unlink", errno);
    return true;
  }
  path_fmt(first, LOG_NAME ".1");
  if (rename(path, first) != 0)
    return complain(&g.rotate_err_said, "rename", errno);
  return compress_first();
}

/* Writers notice the new kvvm.log by its inode on their next line (follow_rotation). */
static void rotate(void)
{
  if (lock(LOCK_EX) != 0) {
    complain(&g.rotate_err_said, "lock", errno);
    return;
  }
  if (rotate_locked())
    g.rotate_err_said = false;
  flock(g.lock_fd, LOCK_UN);
}

/* ---- writing (shared lock held) ---- */

/* Another process may have rotated: then our descriptor names a renamed (soon removed)
 * file and the path a new one. Gives the size of the file we are about to append to. */
static bool follow_rotation(off_t *size)
{
  char path[PATH_MAX];
  struct stat ps, fs;
  path_fmt(path, LOG_NAME);
  if (fstat(g.fd, &fs) != 0)
    return complain(&g.write_err_said, "fstat", errno);
  if (lstat(path, &ps) != 0 || ps.st_dev != fs.st_dev || ps.st_ino != fs.st_ino) {
    int fd = open_own(LOG_NAME, O_WRONLY | O_APPEND);
    if (fd < 0)
      return complain(&g.write_err_said, "reopen", errno);
    close(g.fd);
    g.fd = fd;
    if (fstat(g.fd, &fs) != 0)
      return complain(&g.write_err_said, "fstat", errno);
  }
  *size = fs.st_size;
  return true;
}

static bool write_line(const char *line, size_t n)
{
  ssize_t w;
  do
    w = write(g.fd, line, n);
  while (w < 0 && errno == EINTR);
  if (w < 0)
    return complain(&g.write_err_said, "write", errno);
  /* A second write could land after another process's line: count it as failed. */
  if ((size_t)w != n)
    return complain(&g.write_err_said, "short write", ENOSPC);
  g.write_err_said = false;
  return true;
}

static bool file_append(const char *line, size_t n)
{
  /* A forked child shares the parent's lock description, which would make their flocks
   * one lock: it opens its own. */
  if (g.pid != getpid()) {
    int e = open_fds();
    if (e)
      return complain(&g.write_err_said, "reopen in a child process", e);
  }
  if (lock(LOCK_SH) != 0)
    return complain(&g.write_err_said, "lock", errno);
  off_t size = 0;
  bool ok = follow_rotation(&size) && write_line(line, n);
  flock(g.lock_fd, LOCK_UN);
  if (ok && (size_t)size + n >= g.max_bytes)
    rotate();
  return ok;
}

/* ---- formatting ---- */

static const char *level_name(enum kvvm_log_level lvl)
{
  static const char *const names[] = {"debug", "info", "warn", "error"};
  return (unsigned)lvl < sizeof(names) / sizeof(names[0]) ? names[lvl] : "error";
}

/* One call is one line: control characters are written as \n, \r, \t or \xNN. */
static size_t escape_byte(unsigned char c, char esc[4])
{
  static const char hex[] = "0123456789abcdef";
  if (c >= 0x20 && c != 0x7f) {
    esc[0] = (char)c;
    return 1;
  }
  esc[0] = '\\';
  if (c == '\n' || c == '\r' || c == '\t') {
    esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
    return 2;
  }
  esc[1] = 'x';
  esc[2] = hex[c >> 4];
  esc[3] = hex[c & 15];
  return 4;
}

/* Appends msg escaped into buf[n..cap); false when it had to stop early. */
static bool append_escaped(char *buf, size_t cap, size_t *n, const char *msg)
{
  for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
    char esc[4];
    size_t k = escape_byte(*p, esc);
    if (*n + k > cap)
      return false;
    memcpy(buf + *n, esc, k);
    *n += k;
  }
  return true;
}

/* "2026-11-24T21:42:05.123Z " — wall-clock time: a log must say when things really happened. */
static size_t stamp(char *buf, size_t cap)
{
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
  return n + (size_t)snprintf(buf + n, cap - n, ".%03ldZ ", ts.tv_nsec / 1000000);
}

/* Formats the whole line, '\n' included; *head is where the part after the stamp starts. */
__attribute__((format(printf, 3, 0))) static size_t
format_line(char line[LINE_CAP], enum kvvm_log_level lvl, const char *fmt, va_list ap,
            size_t *head)
{
  char msg[MSG_CAP];
  int m = vsnprintf(msg, sizeof(msg), fmt, ap);
  if (m < 0)
    msg[0] = '\0';  /* an encoding error leaves the buffer undefined */
  size_t n = stamp(line, LINE_CAP);
  *head = n;
  n += (size_t)snprintf(line + n, LINE_CAP - n, "%s[%ld] %s: ", g.comp, (long)getpid(),
                        level_name(lvl));
  bool whole = append_escaped(line, LINE_CAP - sizeof(CUT_MARK), &n, msg);
  if (!whole || m >= (int)sizeof(msg)) {
    memcpy(line + n, CUT_MARK, sizeof(CUT_MARK) - 1);
    n += sizeof(CUT_MARK) - 1;
  }
  line[n++] = '\n';
  return n;
}

void kvvm_log(enum kvvm_log_level lvl, const char *fmt, ...)
{
  char line[LINE_CAP];
  size_t head;
  va_list ap;
  va_start(ap, fmt);
  size_t n = format_line(line, lvl, fmt, ap, &head);
  va_end(ap);
  bool in_file = g.sink == SINK_FILE && file_append(line, n);
  /* Without a file, stderr is the only record once a log was asked for: keep INFO there. */
  bool stand_in = !in_file && g.sink != SINK_NONE && lvl >= KVVM_LOG_INFO;
  if (lvl >= g.stderr_level || stand_in)
    to_stderr(line + head, n - head);
}
