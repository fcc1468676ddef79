/* log: line format, one call = one line, stderr copy, rotation with gzip, generations,
 * several processes rotating one file, foreign files, fallback to stderr.
 * Each case works in its own fresh folder and closes the log when done. On Windows the
 * cases with other processes (fork, flock) and POSIX modes or symlinks are said skipped:
 * tests/windows/test_log_windows.c runs writers in processes of their own there. */
#include <ctype.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#ifndef _WIN32
#include <sys/file.h>
#include <sys/wait.h>
#endif

#include "kt.h"
#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"

static char *temp_dir(void) { return kt_tmpdir(); }

/* Back to the defaults, so no case depends on the one before. */
static void done(char *dir)
{
  kvvm_log_close();
  kvvm_log_set_limits(0, 5);
  kvvm_log_set_stderr_level(KVVM_LOG_WARN);
  kt_rmtree(dir);
  free(dir);
}

/* dir/name as a string; gzread reads plain files as they are, so this reads both kinds. */
static char *read_any(const char *dir, const char *name)
{
  char *path = kvvm_path_join(dir, name);
  gzFile gz = gzopen(path, "rb");
  free(path);
  if (!gz)
    return NULL;
  size_t cap = 4096, n = 0;
  char *buf = kvvm_xmalloc(cap);
  int r;
  while ((r = gzread(gz, buf + n, (unsigned)(cap - n - 1))) > 0) {
    n += (size_t)r;
    if (cap - n - 1 == 0)
      buf = kvvm_xrealloc(buf, cap *= 2);
  }
  gzclose(gz);
  buf[n] = '\0';
  return buf;
}

static bool exists_in(const char *dir, const char *name)
{
  char *path = kvvm_path_join(dir, name);
  bool yes = kvvm_path_exists(path);
  free(path);
  return yes;
}

/* A real gzip file, not a plain one that gzread would pass through. */
static bool is_gzip(const char *dir, const char *name)
{
  char *path = kvvm_path_join(dir, name), *text = NULL;
  size_t len = 0;
  bool yes = kvvm_file_read(path, 1 << 26, &text, &len) == KVVM_OK && len > 18 &&
             (unsigned char)text[0] == 0x1f && (unsigned char)text[1] == 0x8b;
  free(text);
  free(path);
  return yes;
}

static void write_text(const char *dir, const char *name, const char *text)
{
  char *path = kvvm_path_join(dir, name);
  KT_CHECK(kvvm_file_write_atomic(path, text, strlen(text), 0644) == KVVM_OK);
  free(path);
}

static void write_gz(const char *dir, const char *name, const char *text)
{
  char *path = kvvm_path_join(dir, name);
  gzFile gz = gzopen(path, "wb");
  KT_CHECK(gz && gzputs(gz, text) == (int)strlen(text) && gzclose(gz) == Z_OK);
  free(path);
}

/* Every generation, oldest first, then kvvm.log: the whole history as one text. */
static char *history(const char *dir)
{
  char *all = kvvm_xstrdup("");
  for (int n = 100; n >= 0; n--) {
    char name[32];
    snprintf(name, sizeof(name), n ? "kvvm.log.%d.gz" : "kvvm.log", n);
    char *part = read_any(dir, name);
    if (!part)
      continue;
    char *joined = kvvm_xasprintf("%s%s", all, part);
    free(all);
    free(part);
    all = joined;
  }
  return all;
}

static int count_char(const char *s, char c)
{
  int n = 0;
  for (; s && *s; s++)
    n += *s == c;
  return n;
}

/* "2026-11-24T21:42:05.123Z " */
static bool stamp_ok(const char *s)
{
  static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ ";
  for (size_t i = 0; pat[i]; i++) {
    if (pat[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != pat[i])
      return false;
  }
  return true;
}

#define STAMP_LEN 25

/* Point stderr at a file until stderr_back(); returns the saved descriptor. */
static int stderr_to(const char *dir)
{
  char *path = kvvm_path_join(dir, "stderr.txt");
  int saved = dup(STDERR_FILENO);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  dup2(fd, STDERR_FILENO);
  close(fd);
  free(path);
  return saved;
}

static char *stderr_back(const char *dir, int saved)
{
  dup2(saved, STDERR_FILENO);
  close(saved);
  char *text = read_any(dir, "stderr.txt");
  char *path = kvvm_path_join(dir, "stderr.txt");
  unlink(path);
  free(path);
  return text;
}

static char *expect(const char *comp, const char *level, const char *msg)
{
  return kvvm_xasprintf("%s[%ld] %s: %s\n", comp, (long)getpid(), level, msg);
}

/* Runs first: checks the default stderr level before any case changes it. */
static void stderr_copy_honours_level(void)
{
  char *dir = temp_dir(), *w = expect("t", "warn", "w1"), *e = expect("t", "error", "e1");
  KT_CHECK(kvvm_log_open(dir, "t") == KVVM_OK);
  int saved = stderr_to(dir);
  KVVM_DEBUG("d1");
  KVVM_INFO("i1");
  KVVM_WARN("w1");
  KVVM_ERR("e1");
  char *err = stderr_back(dir, saved);
  char *want = kvvm_xasprintf("%s%s", w, e);
  KT_STREQ(err, want); /* no time stamp on stderr: journald and the agent add their own */
  free(err);
  kvvm_log_set_stderr_level(KVVM_LOG_ERR);
  saved = stderr_to(dir);
  KVVM_WARN("w1");
  KVVM_ERR("e1");
  err = stderr_back(dir, saved);
  KT_STREQ(err, e);
  free(err);
  kvvm_log_set_stderr_level(KVVM_LOG_DEBUG);
  saved = stderr_to(dir);
  KVVM_DEBUG("d2");
  err = stderr_back(dir, saved);
  KT_CONTAINS(err, "] debug: d2\n");
  char *file = read_any(dir, "kvvm.log");
  KT_CHECK(count_char(file, '\n') == 7); /* the file gets every level */
  free(file);
  free(err);
  free(want);
  free(w);
  free(e);
  done(dir);
}

static void line_has_stamp_component_pid_level(void)
{
  char *dir = temp_dir();
  static const char *const levels[] = {"debug", "info", "warn", "error"};
  KT_CHECK(kvvm_log_open(dir, "enable") == KVVM_OK);
  int saved = stderr_to(dir); /* keep the copies off the test's output */
  for (int l = 0; l < 4; l++)
    kvvm_log((enum kvvm_log_level)l, "hello %d", l);
  free(stderr_back(dir, saved));
  char *text = read_any(dir, "kvvm.log"), *line = text;
  KT_CHECK(count_char(text, '\n') == 4);
  for (int l = 0; l < 4 && line && *line; l++) {
    char msg[24];
    snprintf(msg, sizeof(msg), "hello %d", l);
    char *want = expect("enable", levels[l], msg);
    char *nl = strchr(line, '\n');
    KT_CHECK(stamp_ok(line));
    KT_CHECK(nl && strncmp(line + STAMP_LEN, want, (size_t)(nl - line) + 1 - STAMP_LEN) == 0);
    KT_CHECK(nl && strlen(want) == (size_t)(nl - line) + 1 - STAMP_LEN);
    free(want);
    line = nl ? nl + 1 : NULL;
  }
  free(text);
  done(dir);
}

static void one_call_is_one_line(void)
{
  char *dir = temp_dir();
  KT_CHECK(kvvm_log_open(dir, "t") == KVVM_OK);
  KVVM_INFO("a\nb\r\tc%cd\x7f" "e", 1);
  char *long_msg = kvvm_xmalloc(20001);
  memset(long_msg, 'z', 20000);
  long_msg[20000] = '\0';
  KVVM_INFO("%s", long_msg);
  memset(long_msg, '\001', 3000); /* escaped, four times longer than the line buffer takes */
  long_msg[3000] = '\0';
  KVVM_INFO("%s", long_msg);
  char *text = read_any(dir, "kvvm.log");
  KT_CHECK(count_char(text, '\n') == 3);
  KT_CONTAINS(text, "] info: a\\nb\\r\\tc\\x01d\\x7fe\n");
  char *second = text ? strchr(text, '\n') + 1 : NULL;
  char *third = second ? strchr(second, '\n') + 1 : NULL;
  KT_CHECK(second && third - second <= 8192 && third - second > 4000);
  KT_CHECK(third && strlen(third) <= 8192 && strlen(third) > 8000);
  KT_CONTAINS(second, "zzz[...]\n");
  KT_CONTAINS(third, "\\x01\\x01[...]\n");
  free(text);
  free(long_msg);
  done(dir);
}

/* Logs lines "n=<i>" for i in [from, to). */
static void log_range(int from, int to)
{
  for (int i = from; i < to; i++)
    KVVM_INFO("n=%d padding to make the line longer", i);
}

/* The history holds each of 0..n-1 exactly once, in order. */
static void check_sequence(const char *dir, int n)
{
  char *all = history(dir), *p = all;
  int next = 0;
  while (p && (p = strstr(p, "info: n=")) != NULL) {
    int got = atoi(p + 8);
    if (got != next) {
      KT_CHECK(got == next);
      break;
    }
    next++;
    p += 8;
  }
  KT_CHECK(next == n);
  KT_CHECK(count_char(all, '\n') == n);
  free(all);
}

static void rotation_produces_gzip_generations(void)
{
  char *dir = temp_dir();
  KT_CHECK(kvvm_log_open(dir, "t") == KVVM_OK);
  kvvm_log_set_limits(4096, 5);
  log_range(0, 250); /* ~20 KB: four or five rotations */
  KT_CHECK(is_gzip(dir, "kvvm.log.1.gz"));
  KT_CHECK(is_gzip(dir, "kvvm.log.4.gz"));
  KT_CHECK(!exists_in(dir, "kvvm.log.1"));
  KT_CHECK(!exists_in(dir, "kvvm.log.1.gz.tmp"));
  char *first = read_any(dir, "kvvm.log.1.gz"), *cur = read_any(dir, "kvvm.log");
  KT_CHECK(first && strlen(first) >= 4096 && strlen(first) < 4096 + 200);
  KT_CHECK(first && stamp_ok(first) && first[strlen(first) - 1] == '\n');
  KT_CHECK(cur && strlen(cur) < 4096);
  free(first);
  free(cur);
  check_sequence(dir, 250);
  done(dir);
}

static void generations_beyond_keep_are_removed(void)
{
  char *dir = temp_dir();
  /* Left by an earlier, larger keep. */
  write_gz(dir, "kvvm.log.3.gz", "old\n");
  write_gz(dir, "kvvm.log.4.gz", "old\n");
  KT_CHECK(kvvm_log_open(dir, "t") == KVVM_OK);
  kvvm_log_set_limits(1024, 2);
  log_range(0, 300);
  KT_CHECK(is_gzip(dir, "kvvm.log.1.gz"));
  KT_CHECK(is_gzip(dir, "kvvm.log.2.gz"));
  KT_CHECK(!exists_in(dir, "kvvm.log.3.gz"));
  KT_CHECK(!exists_in(dir, "kvvm.log.4.gz"));
  /* The newest lines survive. */
  char *cur = read_any(dir, "kvvm.log"), *all = history(dir);
  KT_CONTAINS(all, "n=299 ");
  KT_CHECK(!strstr(all, "n=0 "));
  free(cur);
  free(all);
  done(dir);
}

static void keep_zero_keeps_no_generation(void)
{
  char *dir = temp_dir();
  KT_CHECK(kvvm_log_open(dir, "t") == KVVM_OK);
  kvvm_log_set_limits(1024, 0);
  log_range(0, 100);
  KT_CHECK(!exists_in(dir, "kvvm.log.1.gz"));
  KT_CHECK(!exists_in(dir, "kvvm.log.1"));
  char *cur = read_any(dir, "kvvm.log");
  KT_CHECK(cur && strlen(cur) < 1024);
  KT_CONTAINS(cur, "n=99 ");
  free(cur);
  done(dir);
}

static void foreign_files_are_untouched(void)
{
  char *dir = temp_dir(), *events = kvvm_path_join(dir, "events");
  KT_CHECK(kt_mkdir(events) == 0);
  write_text(dir, "CommandExecution.log", "agent line\n");
  write_text(events, "1.json", "{}");
  write_text(dir, "kvvm.log.bak", "operator copy\n");
  write_gz(dir, "other.log.1.gz", "x\n");
  KT_CHECK(kvvm_log_open(dir, "t") == KVVM_OK);
  kvvm_log_set_limits(1024, 1);
  log_range(0, 200);
  char *a = read_any(dir, "CommandExecution.log"), *b = read_any(events, "1.json");
  char *c = read_any(dir, "kvvm.log.bak"), *d = read_any(dir, "other.log.1.gz");
  KT_STREQ(a, "agent line\n");
  KT_STREQ(b, "{}");
  KT_STREQ(c, "operator copy\n");
  KT_STREQ(d, "x\n");
  KT_CHECK(!exists_in(dir, "kvvm.log.2.gz"));
  free(a);
  free(b);
  free(c);
  free(d);
  free(events);
  done(dir);
}

/* A crash between renaming kvvm.log to kvvm.log.1 and finishing its .gz leaves the plain
 * file: the next rotation compresses it instead of overwriting it. */
static void interrupted_rotation_is_finished(void)
{
  char *dir = temp_dir();
  write_text(dir, "kvvm.log.1", "leftover line\n");
  write_text(dir, "kvvm.log.1.gz.tmp", "half");
  KT_CHECK(kvvm_log_open(dir, "t") == KVVM_OK);
  kvvm_log_set_limits(1024, 5);
  log_range(0, 20);
  KT_CHECK(!exists_in(dir, "kvvm.log.1"));
  KT_CHECK(!exists_in(dir, "kvvm.log.1.gz.tmp"));
  char *old = read_any(dir, "kvvm.log.2.gz"), *first = read_any(dir, "kvvm.log.1.gz");
  KT_CHECK(is_gzip(dir, "kvvm.log.2.gz"));
  KT_STREQ(old, "leftover line\n");
  KT_CONTAINS(first, "n=0 ");
  free(old);
  free(first);
  done(dir);
}

/* With the .gz already in place the plain file is a finished copy: removed, not doubled. */
static void interrupted_rotation_after_gzip_is_not_doubled(void)
{
  char *dir = temp_dir();
  write_text(dir, "kvvm.log.1", "old line\n");
  write_gz(dir, "kvvm.log.1.gz", "old line\n");
  KT_CHECK(kvvm_log_open(dir, "t") == KVVM_OK);
  kvvm_log_set_limits(1024, 5);
  log_range(0, 20);
  char *all = history(dir);
  KT_CHECK(count_char(all, '\n') == 21);
  KT_CHECK(!exists_in(dir, "kvvm.log.3.gz"));
  free(all);
  done(dir);
}

/* Another process rotated: our descriptor names the renamed file; the next line must go to
 * the new kvvm.log. */
static void writer_follows_rotation_by_another_process(void)
{
  char *dir = temp_dir();
  char *from = kvvm_path_join(dir, "kvvm.log"), *to = kvvm_path_join(dir, "moved");
  KT_CHECK(kvvm_log_open(dir, "t") == KVVM_OK);
  KVVM_INFO("one");
  KT_CHECK(rename(from, to) == 0);
  KVVM_INFO("two");
  char *moved = read_any(dir, "moved"), *cur = read_any(dir, "kvvm.log");
  KT_CHECK(count_char(moved, '\n') == 1 && strstr(moved, "info: one\n"));
  KT_CHECK(count_char(cur, '\n') == 1 && strstr(cur, "info: two\n"));
  free(moved);
  free(cur);
  free(from);
  free(to);
  done(dir);
}

#ifndef _WIN32
/* Stands for another process's rotation: holds the lock, tells the parent, then renames. */
static void rotator_child(const char *dir, int go)
{
  char *lock = kvvm_path_join(dir, "kvvm.log.lock");
  char *from = kvvm_path_join(dir, "kvvm.log"), *to = kvvm_path_join(dir, "moved");
  int fd = open(lock, O_RDWR);
  bool ok = fd >= 0 && flock(fd, LOCK_EX) == 0 && write(go, "x", 1) == 1;
  if (ok) {
    usleep(300 * 1000);
    ok = rename(from, to) == 0;
  }
  /* Freed so that valgrind, which checks children too, has nothing to report. */
  free(lock);
  free(from);
  free(to);
  _exit(ok ? 0 : 1); /* exiting releases the lock */
}

/* A writer waits while a rotation holds the lock, then writes to the new file: a line
 * appended to the renamed file during compression would be lost. */
static void writer_waits_for_rotation_in_progress(void)
{
  char *dir = temp_dir();
  int go[2];
  KT_CHECK(kvvm_log_open(dir, "t") == KVVM_OK);
  KVVM_INFO("before");
  KT_CHECK(pipe(go) == 0);
  pid_t pid = fork();
  if (pid == 0)
    rotator_child(dir, go[1]);
  close(go[1]);
  char c = 0;
  KT_CHECK(read(go[0], &c, 1) == 1);
  close(go[0]);
  KVVM_INFO("during");
  int status = -1;
  KT_CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  char *moved = read_any(dir, "moved"), *cur = read_any(dir, "kvvm.log");
  KT_CHECK(count_char(moved, '\n') == 1 && strstr(moved, "info: before\n"));
  KT_CHECK(count_char(cur, '\n') == 1 && strstr(cur, "info: during\n"));
  free(moved);
  free(cur);
  done(dir);
}

enum { WRITERS = 4, LINES = 1500 };

/* Opens its own log as a command would, or (dir NULL) logs through the one it inherited,
 * as a hook child of kvvmd would. */
static void writer_child(const char *dir, int w)
{
  char comp[16];
  snprintf(comp, sizeof(comp), "w%d", w);
  if (dir && kvvm_log_open(dir, comp) != KVVM_OK)
    _exit(1);
  for (int i = 0; i < LINES; i++)
    KVVM_INFO("writer %d seq %d", w, i);
  kvvm_log_close();
  _exit(0);
}

/* Each line must be whole: stamp, "wN[pid] info: writer W seq I" (N is W, or 0 for all
 * when the children inherited the parent's log). */
static bool tally_line(const char *line, int seen[WRITERS][LINES])
{
  int comp, w, seq, n = 0;
  long pid;
  if (!stamp_ok(line) ||
      sscanf(line + STAMP_LEN, "w%d[%ld] info: writer %d seq %d\n%n", &comp, &pid, &w, &seq,
             &n) != 4 ||
      line[STAMP_LEN + n - 1] != '\n' || (comp != w && comp != 0) || w < 0 || w >= WRITERS ||
      seq < 0 || seq >= LINES)
    return false;
  seen[w][seq]++;
  return true;
}

static void run_writers(const char *dir, bool inherit)
{
  static int seen[WRITERS][LINES];
  pid_t pids[WRITERS];
  memset(seen, 0, sizeof(seen));
  for (int w = 0; w < WRITERS; w++) {
    pids[w] = fork();
    if (pids[w] == 0)
      writer_child(inherit ? NULL : dir, w);
  }
  for (int w = 0; w < WRITERS; w++) {
    int status = -1;
    KT_CHECK(pids[w] > 0 && waitpid(pids[w], &status, 0) == pids[w]);
    KT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  char *all = history(dir);
  int bad = 0, lines = 0;
  for (char *line = all; line && *line; lines++) {
    char *nl = strchr(line, '\n');
    bad += !tally_line(line, seen);
    line = nl ? nl + 1 : line + strlen(line);
  }
  KT_CHECK(bad == 0);
  KT_CHECK(lines == WRITERS * LINES);
  int wrong = 0;
  for (int w = 0; w < WRITERS; w++) {
    for (int i = 0; i < LINES; i++)
      wrong += seen[w][i] != 1;
  }
  KT_CHECK(wrong == 0);
  KT_CHECK(is_gzip(dir, "kvvm.log.10.gz")); /* it did rotate, many times */
  /* Rotation re-checks the size under the lock: no generation is a near-empty file that a
   * second writer rotated right after the first. */
  for (int n = 1; n <= 100; n++) {
    char name[32];
    snprintf(name, sizeof(name), "kvvm.log.%d.gz", n);
    char *gen = read_any(dir, name);
    KT_CHECK(!gen || strlen(gen) >= 16384);
    free(gen);
  }
  free(all);
}

static void concurrent_writers_lose_and_tear_nothing(void)
{
  char *dir = temp_dir();
  kvvm_log_set_limits(16384, 100);
  run_writers(dir, false);
  done(dir);
}

/* Children forked after kvvm_log_open: each must take its own lock description, or their
 * flocks would be one lock and rotation would no longer exclude writers. */
static void forked_writers_lose_and_tear_nothing(void)
{
  char *dir = temp_dir();
  KT_CHECK(kvvm_log_open(dir, "w0") == KVVM_OK);
  kvvm_log_set_limits(16384, 100);
  run_writers(dir, true);
  done(dir);
}

/* A child forked after kvvm_log_open writes with its own pid (and its own lock). */
static void forked_child_keeps_logging(void)
{
  char *dir = temp_dir();
  KT_CHECK(kvvm_log_open(dir, "kvvmd") == KVVM_OK);
  KVVM_INFO("parent before");
  pid_t pid = fork();
  if (pid == 0) {
    KVVM_INFO("from child");
    _exit(0);
  }
  int status = -1;
  KT_CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
  KVVM_INFO("parent after");
  char *text = read_any(dir, "kvvm.log");
  char *child_line = kvvm_xasprintf("kvvmd[%ld] info: from child\n", (long)pid);
  KT_CHECK(count_char(text, '\n') == 3);
  KT_CONTAINS(text, child_line);
  KT_CONTAINS(text, "info: parent after\n");
  free(child_line);
  free(text);
  done(dir);
}
#else
#define PROCESSES "other processes (fork, flock): test_log_windows runs writer processes"
static void writer_waits_for_rotation_in_progress(void) { KT_SKIP(PROCESSES); }
static void concurrent_writers_lose_and_tear_nothing(void) { KT_SKIP(PROCESSES); }
static void forked_writers_lose_and_tear_nothing(void) { KT_SKIP(PROCESSES); }
static void forked_child_keeps_logging(void) { KT_SKIP(PROCESSES); }
#endif

static void open_creates_private_folder_and_file(void)
{
  char *dir = temp_dir(), *sub = kvvm_path_join(dir, "a/b"), *log = kvvm_path_join(sub, "kvvm.log");
  struct stat st;
  KT_CHECK(kvvm_log_open(sub, "t") == KVVM_OK);
  KVVM_INFO("x");
#ifndef _WIN32
  KT_CHECK(stat(sub, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700);
  KT_CHECK(stat(log, &st) == 0 && (st.st_mode & 077) == 0);
#else
  KT_CHECK(stat(sub, &st) == 0 && S_ISDIR(st.st_mode) && stat(log, &st) == 0);
  KT_SKIP("the folder's and file's modes: Windows folders get kvvm's protected DACL");
#endif
  free(sub);
  free(log);
  done(dir);
}

/* The fallback says so once, then INFO lines go to stderr instead of being lost. */
static void check_fallback(const char *dir, const char *logdir)
{
  int saved = stderr_to(dir);
  KT_CHECK(kvvm_log_open(logdir, "t") == KVVM_E_IO);
  KVVM_INFO("kept one");
  KVVM_INFO("kept two");
  KVVM_DEBUG("not kept");
  char *err = stderr_back(dir, saved);
  const char *once = err ? strstr(err, "logging to stderr only") : NULL;
  KT_CHECK(once && !strstr(once + 1, "logging to stderr only"));
  KT_CONTAINS(err, "t[");
  KT_CONTAINS(err, "] info: kept one\n");
  KT_CONTAINS(err, "] info: kept two\n");
  KT_CHECK(err && !strstr(err, "not kept"));
  free(err);
}

static void unusable_folder_falls_back_to_stderr(void)
{
  char *dir = temp_dir(), *file = kvvm_path_join(dir, "plain"), *under = kvvm_path_join(file, "x");
  write_text(dir, "plain", "");
  check_fallback(dir, under);
  free(file);
  free(under);
  done(dir);
}

static void symlinked_log_is_refused(void)
{
#ifdef _WIN32
  KT_SKIP("a POSIX symlink as kvvm.log: test_log_windows plants a Windows link");
#else
  char *dir = temp_dir(), *link = kvvm_path_join(dir, "kvvm.log");
  write_text(dir, "victim", "");
  KT_CHECK(symlink("victim", link) == 0);
  check_fallback(dir, dir);
  char *victim = read_any(dir, "victim");
  KT_STREQ(victim, "");
  free(victim);
  free(link);
  done(dir);
#endif
}

int main(void)
{
  static const struct kt_case cases[] = {
    KT_CASE(stderr_copy_honours_level), /* first: it checks the default level */
    KT_CASE(line_has_stamp_component_pid_level),
    KT_CASE(one_call_is_one_line),
    KT_CASE(rotation_produces_gzip_generations),
    KT_CASE(generations_beyond_keep_are_removed),
    KT_CASE(keep_zero_keeps_no_generation),
    KT_CASE(foreign_files_are_untouched),
    KT_CASE(interrupted_rotation_is_finished),
    KT_CASE(interrupted_rotation_after_gzip_is_not_doubled),
    KT_CASE(writer_follows_rotation_by_another_process),
    KT_CASE(writer_waits_for_rotation_in_progress),
    KT_CASE(concurrent_writers_lose_and_tear_nothing),
    KT_CASE(forked_writers_lose_and_tear_nothing),
    KT_CASE(forked_child_keeps_logging),
    KT_CASE(open_creates_private_folder_and_file),
    KT_CASE(unusable_folder_falls_back_to_stderr),
    KT_CASE(symlinked_log_is_refused),
  };
  return KT_RUN("log", cases);
}
