/* log.c over log_windows.c under wine (or Windows): the line format, the stderr copy,
 * rotation with gzip generations, keep 0, an interrupted rotation finished, writers in
 * several processes rotating one file without losing or tearing a line, a link planted as
 * kvvm.log refused, the folder made, and the fallback to stderr. Built and run by
 * tests/windows/log.sh. The process re-runs itself as a writer: `test_log_windows writer
 * <dir> <id> <lines>`. */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>
#include <zlib.h>

#include "kvvm/log.h"

#define WRITERS 4
#define WRITER_LINES 400

static int failed_now;

#define CHECK(c)                                                            \
  do {                                                                      \
    if (!(c)) {                                                             \
      fprintf(stderr, "  line %d: check failed: %s\n", __LINE__, #c);     \
      failed_now = 1;                                                       \
    }                                                                       \
  } while (0)

static char *path_in(const char *dir, const char *name)
{
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = malloc(n);
  snprintf(p, n, "%s\\%s", dir, name);
  return p;
}

static char *temp_dir(void)
{
  static unsigned seq;
  char base[MAX_PATH], name[64];
  GetTempPathA(sizeof base, base);
  snprintf(name, sizeof name, "kvvm-log-%lu-%u", (unsigned long)GetCurrentProcessId(), seq++);
  char *dir = path_in(base, name);
  CreateDirectoryA(dir, NULL);
  return dir;
}

static void remove_tree(const char *dir)
{
  char *pat = path_in(dir, "*");
  WIN32_FIND_DATAA fd;
  HANDLE h = FindFirstFileA(pat, &fd);
  while (h != INVALID_HANDLE_VALUE) {
    char *p = path_in(dir, fd.cFileName);
    if (!(fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY))
      DeleteFileA(p);
    else if (strcmp(fd.cFileName, ".") && strcmp(fd.cFileName, ".."))
      remove_tree(p);
    free(p);
    if (!FindNextFileA(h, &fd))
      break;
  }
  if (h != INVALID_HANDLE_VALUE)
    FindClose(h);
  free(pat);
  RemoveDirectoryA(dir);
}

static void done(char *dir)
{
  kvvm_log_close();
  kvvm_log_set_limits(0, 5);
  kvvm_log_set_stderr_level(KVVM_LOG_WARN);
  remove_tree(dir);
  free(dir);
}

/* A file of dir as text; gzread passes plain files through, so this reads both kinds. */
static char *read_any(const char *dir, const char *name)
{
  char *path = path_in(dir, name);
  gzFile gz = GetFileAttributesA(path) != INVALID_FILE_ATTRIBUTES ? gzopen(path, "rb") : NULL;
  free(path);
  if (!gz)
    return NULL;
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  int r;
  while ((r = gzread(gz, buf + n, (unsigned)(cap - n - 1))) > 0)
    if ((n += (size_t)r) == cap - 1)
      buf = realloc(buf, cap *= 2);
  gzclose(gz);
  buf[n] = '\0';
  return buf;
}

static bool exists_in(const char *dir, const char *name)
{
  char *path = path_in(dir, name);
  bool yes = GetFileAttributesA(path) != INVALID_FILE_ATTRIBUTES;
  free(path);
  return yes;
}

static bool is_gzip(const char *dir, const char *name)
{
  char *path = path_in(dir, name);
  unsigned char magic[2] = {0};
  FILE *f = fopen(path, "rb");
  bool yes = f && fread(magic, 1, 2, f) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  if (f)
    fclose(f);
  free(path);
  return yes;
}

/* Every generation, oldest first, then kvvm.log. */
static char *history(const char *dir)
{
  size_t len = 0;
  char *all = calloc(1, 1);
  for (int n = 100; n >= 0; n--) {
    char name[32];
    snprintf(name, sizeof name, n ? "kvvm.log.%d.gz" : "kvvm.log", n);
    char *part = read_any(dir, name);
    if (!part)
      continue;
    size_t k = strlen(part);
    all = realloc(all, len + k + 1);
    memcpy(all + len, part, k + 1);
    len += k;
    free(part);
  }
  return all;
}

/* Point stderr at dir\stderr.txt until stderr_back, which returns what was written. */
static HANDLE stderr_to(const char *dir)
{
  char *path = path_in(dir, "stderr.txt");
  HANDLE saved = GetStdHandle(STD_ERROR_HANDLE);
  HANDLE f = CreateFileA(path, GENERIC_WRITE, FILE_SHARE_READ, NULL, CREATE_ALWAYS, 0, NULL);
  SetStdHandle(STD_ERROR_HANDLE, f);
  free(path);
  return saved;
}

static char *stderr_back(const char *dir, HANDLE saved)
{
  CloseHandle(GetStdHandle(STD_ERROR_HANDLE));
  SetStdHandle(STD_ERROR_HANDLE, saved);
  return read_any(dir, "stderr.txt");
}

/* "2026-11-24T21:42:05.123Z " */
static bool stamp_ok(const char *s)
{
  static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ ";
  for (size_t i = 0; pat[i]; i++)
    if (pat[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != pat[i])
      return false;
  return true;
}

static void line_format_and_stderr_copy(void)
{
  char *dir = temp_dir(), want[128], copy[128];
  CHECK(kvvm_log_open(dir, "t") == KVVM_OK);
  HANDLE saved = stderr_to(dir);
  KVVM_INFO("hello\n%d", 1);
  KVVM_WARN("w1");
  char *err = stderr_back(dir, saved), *log = read_any(dir, "kvvm.log");
  snprintf(want, sizeof want, "t[%lu] info: hello\\n1\n", (unsigned long)GetCurrentProcessId());
  snprintf(copy, sizeof copy, "t[%lu] warn: w1\n", (unsigned long)GetCurrentProcessId());
  CHECK(log && strlen(log) > 25 && stamp_ok(log) && !strncmp(log + 25, want, strlen(want)));
  CHECK(err && !strcmp(err, copy)); /* no stamp on stderr, and INFO is not copied */
  free(err);
  free(log);
  done(dir);
}

static void rotation_makes_gzip_generations(void)
{
  char *dir = temp_dir();
  CHECK(kvvm_log_open(dir, "t") == KVVM_OK);
  kvvm_log_set_limits(1024, 3);
  for (int i = 0; i < 300; i++)
    KVVM_INFO("line %04d", i);
  for (int n = 1; n <= 3; n++) {
    char name[32];
    snprintf(name, sizeof name, "kvvm.log.%d.gz", n);
    CHECK(is_gzip(dir, name));
  }
  CHECK(!exists_in(dir, "kvvm.log.4.gz") && !exists_in(dir, "kvvm.log.1"));
  CHECK(!exists_in(dir, "kvvm.log.1.gz.tmp"));
  char *all = history(dir), *last = all ? strstr(all, "line 0299\n") : NULL;
  CHECK(last && last[10] == '\0');
  free(all);
  done(dir);
}

static void keep_zero_and_interrupted_rotation(void)
{
  char *dir = temp_dir(), *plain = path_in(dir, "kvvm.log.1");
  FILE *f = fopen(plain, "wb");
  fputs("left by a crash\n", f);
  fclose(f);
  CHECK(kvvm_log_open(dir, "t") == KVVM_OK);
  kvvm_log_set_limits(1024, 2);
  for (int i = 0; i < 30; i++)
    KVVM_INFO("line %04d", i);
  char *all = history(dir);
  CHECK(all && strstr(all, "left by a crash\n") && !exists_in(dir, "kvvm.log.1"));
  free(all);
  kvvm_log_set_limits(1024, 0);
  for (int i = 0; i < 30; i++)
    KVVM_INFO("line %04d", i);
  CHECK(!exists_in(dir, "kvvm.log.1.gz") && !exists_in(dir, "kvvm.log.2.gz"));
  free(plain);
  done(dir);
}

static int writer(const char *dir, const char *id, int lines)
{
  char comp[32];
  snprintf(comp, sizeof comp, "w%s", id);
  if (kvvm_log_open(dir, comp) != KVVM_OK)
    return 1;
  kvvm_log_set_limits(16384, 100);
  for (int i = 0; i < lines; i++)
    KVVM_INFO("%s line %05d of a writer that rotates with the others", comp, i);
  kvvm_log_close();
  return 0;
}

static HANDLE start_writer(const char *dir, int id)
{
  char exe[MAX_PATH], cmd[2 * MAX_PATH + 64];
  GetModuleFileNameA(NULL, exe, sizeof exe);
  snprintf(cmd, sizeof cmd, "\"%s\" writer \"%s\" %d %d", exe, dir, id, WRITER_LINES);
  STARTUPINFOA si = {.cb = sizeof si};
  PROCESS_INFORMATION pi;
  if (!CreateProcessA(NULL, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi))
    return NULL;
  CloseHandle(pi.hThread);
  return pi.hProcess;
}

/* Every writer's lines, each whole and in order, across every generation. */
static void writers_lose_and_tear_nothing(void)
{
  char *dir = temp_dir();
  HANDLE procs[WRITERS];
  for (int i = 0; i < WRITERS; i++)
    CHECK((procs[i] = start_writer(dir, i)) != NULL);
  for (int i = 0; i < WRITERS; i++) {
    DWORD rc = 1;
    WaitForSingleObject(procs[i], 120000);
    CHECK(GetExitCodeProcess(procs[i], &rc) && rc == 0);
    CloseHandle(procs[i]);
  }
  char *all = history(dir);
  int next[WRITERS] = {0}, torn = 0;
  for (char *line = all, *end; line && *line; line = end + 1) {
    end = strchr(line, '\n');
    if (!end)
      break;
    int id, n;
    char *w = strstr(line, "] info: w");
    if (!stamp_ok(line) || !w || sscanf(w, "] info: w%d line %d", &id, &n) != 2 ||
        id < 0 || id >= WRITERS || n != next[id]++) {
      if (!torn++)
        fprintf(stderr, "  first bad line: %.*s\n", (int)(end - line), line);
    }
  }
  CHECK(torn == 0);
  for (int i = 0; i < WRITERS; i++) {
    if (next[i] != WRITER_LINES)
      fprintf(stderr, "  writer %d: %d lines\n", i, next[i]);
    CHECK(next[i] == WRITER_LINES);
  }
  CHECK(exists_in(dir, "kvvm.log.2.gz"));
  free(all);
  done(dir);
}

/* A directory planted as kvvm.log (what wine gives for a link) is refused, and the
 * fallback says so once, then keeps INFO lines on stderr. */
static void planted_and_unusable_fall_back(void)
{
  char *dir = temp_dir(), *planted = path_in(dir, "kvvm.log"), *file = path_in(dir, "plain");
  char *under = path_in(file, "x");
  CreateDirectoryA(planted, NULL);
  fclose(fopen(file, "wb"));
  for (int i = 0; i < 2; i++) {
    HANDLE saved = stderr_to(dir);
    CHECK(kvvm_log_open(i ? under : dir, "t") == KVVM_E_IO);
    KVVM_INFO("kept");
    KVVM_DEBUG("not kept");
    char *err = stderr_back(dir, saved);
    const char *once = err ? strstr(err, "logging to stderr only") : NULL;
    CHECK(once && !strstr(once + 1, "logging to stderr only"));
    CHECK(err && strstr(err, "] info: kept\n") && !strstr(err, "not kept"));
    free(err);
  }
  free(planted);
  free(file);
  free(under);
  done(dir);
}

static void open_makes_the_folder(void)
{
  char *dir = temp_dir(), *sub = path_in(dir, "a\\b");
  CHECK(kvvm_log_open(sub, "t") == KVVM_OK);
  KVVM_INFO("x");
  CHECK(exists_in(sub, "kvvm.log") && exists_in(sub, "kvvm.log.lock"));
  kvvm_log_close();
  free(sub);
  done(dir);
}

int main(int argc, char **argv)
{
  if (argc == 5 && !strcmp(argv[1], "writer"))
    return writer(argv[2], argv[3], atoi(argv[4]));
  static const struct {
    const char *name;
    void (*fn)(void);
  } cases[] = {
      {"line_format_and_stderr_copy", line_format_and_stderr_copy},
      {"rotation_makes_gzip_generations", rotation_makes_gzip_generations},
      {"keep_zero_and_interrupted_rotation", keep_zero_and_interrupted_rotation},
      {"writers_lose_and_tear_nothing", writers_lose_and_tear_nothing},
      {"planted_and_unusable_fall_back", planted_and_unusable_fall_back},
      {"open_makes_the_folder", open_makes_the_folder},
  };
  int passed = 0, failed = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    failed_now = 0;
    cases[i].fn();
    failed_now ? failed++ : passed++;
    if (failed_now)
      fprintf(stderr, "FAIL log_windows: %s\n", cases[i].name);
  }
  printf("log_windows: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
