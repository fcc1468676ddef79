/* The one log, <logFolder>/kvvm.log, shared by the short-lived commands and kvvmd: the
 * portable half (log_int.h has the platform half).
 *
 * Every line is formatted into a buffer and appended with one write, so lines of different
 * processes never interleave. Writers hold a lock while they write (shared where the system
 * appends atomically); rotation holds it exclusively. So once a rotation renamed kvvm.log,
 * no writer can still append to the renamed file: each finds, under the lock, the file that
 * is kvvm.log now.
 *
 * This module never logs through itself: its own failures go to stderr, and nothing on
 * the write path allocates (an OOM exit would log from inside a log call).
 * One sink per process and kvvm is single-threaded, so the state is a plain global. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/log_int.h"
#include "kvvm/err.h"
#include "kvvm/log.h"

#define LOG_NAME KVVM_LOG_NAME
#define DEFAULT_MAX_BYTES ((size_t)4 << 20)
#define DEFAULT_KEEP 5
#define MAX_KEEP 100
/* Longer messages are cut: a fixed buffer keeps the write path free of allocation. */
#define LINE_CAP 8192
#define MSG_CAP 4096
#define CUT_MARK "[...]"
/* "kvvm.log.100.gz.tmp" and the like. */
#define NAME_CAP 32

enum sink {
  SINK_NONE,     /* kvvm_log_open not called: stderr at the stderr level */
  SINK_FILE,     /* kvvm.log */
  SINK_FALLBACK  /* kvvm_log_open failed: stderr takes the file's place */
};

static struct {
  enum sink sink;
  bool write_err_said;    /* a write failure was reported and no write succeeded since */
  bool rotate_err_said;   /* likewise for rotation */
  enum kvvm_log_level stderr_level;
  size_t max_bytes;
  int keep;
  char comp[32];
  char dir[KVVM_LOG_DIR_CAP];
} g = {
  .sink = SINK_NONE,
  .stderr_level = KVVM_LOG_WARN,
  .max_bytes = DEFAULT_MAX_BYTES,
  .keep = DEFAULT_KEEP,
  .comp = "kvvm",
};

/* The log's own complaints: straight to stderr, never through kvvm_log. */
__attribute__((format(gnu_printf, 1, 2))) static void say(const char *fmt, ...)
{
  char buf[KVVM_LOG_DIR_CAP + 256];
  int n = snprintf(buf, sizeof(buf), "%s[%ld] error: ", g.comp, kvvm_log_os_pid());
  va_list ap;
  va_start(ap, fmt);
  n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if ((size_t)n > sizeof(buf) - 2)
    n = (int)sizeof(buf) - 2;
  buf[n++] = '\n';
  kvvm_log_os_stderr(buf, (size_t)n);
}

/* Report a failure once until the operation succeeds again, so a full disk does not
 * double every line on stderr with the same complaint. */
static bool complain(bool *said, const char *what, int err)
{
  char words[256];
  if (!*said)
    say("%s/" LOG_NAME ": %s: %s", g.dir, what, kvvm_log_os_strerror(err, words, sizeof words));
  *said = true;
  return false;
}

/* kvvm.log.<n>[.gz][.tmp]: the names of the generations. */
__attribute__((format(gnu_printf, 2, 3))) static void name_fmt(char out[NAME_CAP],
                                                               const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out, NAME_CAP, fmt, ap);
  va_end(ap);
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
  const char *what = "open";
  int e = kvvm_log_os_open(dir, &what);
  if (e) {
    char words[256];
    g.sink = SINK_FALLBACK;
    say("cannot open %s/" LOG_NAME ": %s: %s: logging to stderr only", dir, what,
        kvvm_log_os_strerror(e, words, sizeof words));
    return KVVM_E_IO;
  }
  g.sink = SINK_FILE;
  return KVVM_OK;
}

void kvvm_log_close(void)
{
  kvvm_log_os_close();
  g.sink = SINK_NONE;
}

void kvvm_log_set_stderr_level(enum kvvm_log_level lvl) { g.stderr_level = lvl; }

/* max_bytes 0 restores the default; keep is clamped to 0..MAX_KEEP (0: no generations). */
void kvvm_log_set_limits(size_t max_bytes, int keep)
{
  g.max_bytes = max_bytes ? max_bytes : DEFAULT_MAX_BYTES;
  g.keep = keep < 0 ? 0 : keep > MAX_KEEP ? MAX_KEEP : keep;
}

/* ---- rotation (exclusive lock held) ---- */

/* kvvm.log.1 -> kvvm.log.1.gz through a temp name, flushed before the rename, so neither a
 * reader nor a crash ever meets a half-written .gz under the final name. */
static bool compress_first(void)
{
  const char *src = LOG_NAME ".1", *tmp = LOG_NAME ".1.gz.tmp", *what = "compress";
  int e = kvvm_log_os_gzip(src, tmp, &what);
  if (!e && (e = kvvm_log_os_rename(tmp, LOG_NAME ".1.gz")) != 0)
    what = "rename";
  if (e)
    complain(&g.rotate_err_said, what, e);
  kvvm_log_os_remove(e ? tmp : src);
  return !e;
}

/* A crash mid-rotation leaves kvvm.log.1 behind. kvvm.log.1.gz is renamed into place
 * before kvvm.log.1 is removed, so if the .gz exists the plain file is a finished copy. */
static void finish_interrupted(void)
{
  if (!kvvm_log_os_size(LOG_NAME ".1", NULL))
    return;
  if (kvvm_log_os_size(LOG_NAME ".1.gz", NULL))
    kvvm_log_os_remove(LOG_NAME ".1");
  else
    compress_first();
}

/* kvvm.log.N.gz -> N+1; the rename onto `keep` drops the oldest. Generations past keep
 * that a larger `keep` left earlier are removed (all up to MAX_KEEP: there may be gaps).
 * A failed rename loses a generation but rotation goes on: an ever-growing kvvm.log would
 * be worse. */
static void shift_generations(void)
{
  char from[NAME_CAP], to[NAME_CAP];
  for (int n = g.keep + 1; n <= MAX_KEEP; n++) {
    name_fmt(to, LOG_NAME ".%d.gz", n);
    kvvm_log_os_remove(to);
  }
  for (int n = g.keep - 1; n >= 1; n--) {
    name_fmt(from, LOG_NAME ".%d.gz", n);
    name_fmt(to, LOG_NAME ".%d.gz", n + 1);
    int e = kvvm_log_os_size(from, NULL) ? kvvm_log_os_rename(from, to) : 0;
    if (e)
      complain(&g.rotate_err_said, "rename of an old generation", e);
  }
}

static bool rotate_locked(void)
{
  uint64_t size;
  /* Another process may have rotated while we waited for the lock. */
  if (!kvvm_log_os_size(LOG_NAME, &size) || size < g.max_bytes)
    return true;
  finish_interrupted();
  shift_generations();
  int e;
  if (g.keep == 0) {
    if ((e = kvvm_log_os_remove(LOG_NAME)) != 0)
      return complain(&g.rotate_err_said, "unlink", e);
    return true;
  }
  if ((e = kvvm_log_os_rename(LOG_NAME, LOG_NAME ".1")) != 0)
    return complain(&g.rotate_err_said, "rename", e);
  return compress_first();
}

/* Writers notice the new kvvm.log on their next line (kvvm_log_os_append). */
static void rotate(void)
{
  int e = kvvm_log_os_lock_rotation();
  if (e) {
    complain(&g.rotate_err_said, "lock", e);
    return;
  }
  if (rotate_locked())
    g.rotate_err_said = false;
  kvvm_log_os_unlock_rotation();
}

/* ---- writing ---- */

static bool file_append(const char *line, size_t n)
{
  uint64_t size = 0;
  const char *what = "write";
  int e = kvvm_log_os_append(line, n, &size, &what);
  if (e)
    return complain(&g.write_err_said, what, e);
  g.write_err_said = false;
  if (size + n >= g.max_bytes)
    rotate();
  return true;
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

/* Formats the whole line, '\n' included; *head is where the part after the stamp starts. */
__attribute__((format(gnu_printf, 3, 0))) static size_t
format_line(char line[LINE_CAP], enum kvvm_log_level lvl, const char *fmt, va_list ap,
            size_t *head)
{
  char msg[MSG_CAP];
  int m = vsnprintf(msg, sizeof(msg), fmt, ap);
  if (m < 0)
    msg[0] = '\0';  /* an encoding error leaves the buffer undefined */
  size_t n = kvvm_log_os_stamp(line, LINE_CAP);
  *head = n;
  n += (size_t)snprintf(line + n, LINE_CAP - n, "%s[%ld] %s: ", g.comp, kvvm_log_os_pid(),
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
  kvvm_log_os_enter();
  bool in_file = g.sink == SINK_FILE && file_append(line, n);
  /* Without a file, stderr is the only record once a log was asked for: keep INFO there. */
  bool stand_in = !in_file && g.sink != SINK_NONE && lvl >= KVVM_LOG_INFO;
  if (lvl >= g.stderr_level || stand_in)
    kvvm_log_os_stderr(line + head, n - head);
  kvvm_log_os_leave();
}
