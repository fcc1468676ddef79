/* The few operating-system calls the unit tests make for their fixtures (a fresh folder,
 * removing it, environment variables), in each system's own words, so that a test of a
 * portable module builds and runs the same on Linux and, cross-built, under wine. A check
 * that only one system can make stays in its test behind #ifndef _WIN32, with KT_SKIP. */
#ifndef KT_OS_H
#define KT_OS_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline int kt_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline int kt_path_eq(const char *a, const char *b)
{
  for (;; a++, b++) {
#ifdef _WIN32
    if ((*a == '\\' || *a == '/') && (*b == '\\' || *b == '/'))
      continue;
#endif
    if (*a != *b)
      return 0;
    if (!*a)
      return 1;
  }
}

#ifdef _WIN32
#include <direct.h>
#include <io.h>
#include <windows.h>

/* A fresh folder, or NULL: under wine, in the host's /tmp (drive Z: is the host's root), so
 * that the host's tools that kt_sh runs (openssl) see it as /tmp/...; else the user's temp. */
static inline char *kt_tmpdir(void)
{
  char base[MAX_PATH] = "Z:/tmp/", buf[MAX_PATH + 32];
  DWORD n = GetFileAttributesA("Z:/tmp");
  if (n == INVALID_FILE_ATTRIBUTES || !(n & FILE_ATTRIBUTE_DIRECTORY)) {
    n = GetTempPathA(sizeof base, base);
    if (n == 0 || n >= sizeof base)
      return NULL;
  }
  for (int tries = 0; tries < 100; tries++) {
    /* The tick count too: wine reuses process ids from one run to the next. */
    snprintf(buf, sizeof buf, "%skvvm-test.%lu.%lu.%d", base,
             (unsigned long)GetCurrentProcessId(), (unsigned long)GetTickCount(), rand());
    if (_mkdir(buf) == 0)
      return strdup(buf);
  }
  return NULL;
}

static inline void kt_rmtree(const char *dir)
{
  char pat[MAX_PATH + 4], sub[MAX_PATH + 260];
  WIN32_FIND_DATAA fd;
  snprintf(pat, sizeof pat, "%s\\*", dir);
  HANDLE h = FindFirstFileA(pat, &fd);
  if (h != INVALID_HANDLE_VALUE) {
    do {
      if (!strcmp(fd.cFileName, ".") || !strcmp(fd.cFileName, ".."))
        continue;
      snprintf(sub, sizeof sub, "%s\\%s", dir, fd.cFileName);
      /* A read-only file cannot be deleted until the attribute goes. */
      SetFileAttributesA(sub, FILE_ATTRIBUTE_NORMAL);
      if (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)
        kt_rmtree(sub);
      else
        DeleteFileA(sub);
    } while (FindNextFileA(h, &fd));
    FindClose(h);
  }
  if (!RemoveDirectoryA(dir))
    fprintf(stderr, "  could not remove %s\n", dir);
}

static inline int kt_setenv(const char *name, const char *value)
{
  return _putenv_s(name, value) == 0 ? 0 : -1;
}

/* An empty value removes the variable (_putenv_s's convention). */
static inline int kt_unsetenv(const char *name) { return kt_setenv(name, ""); }

static inline int kt_mkdir(const char *path) { return _mkdir(path); }

/* A thread (a writer racing the code under test). */
struct kt_thread {
  HANDLE h;
  void (*fn)(void *);
  void *arg;
};

static DWORD WINAPI kt_thread_body(LPVOID p)
{
  struct kt_thread *t = p;
  t->fn(t->arg);
  return 0;
}

static inline int kt_thread_start(struct kt_thread *t, void (*fn)(void *), void *arg)
{
  t->fn = fn;
  t->arg = arg;
  t->h = CreateThread(NULL, 0, kt_thread_body, t, 0, NULL);
  return t->h ? 0 : -1;
}

static inline void kt_thread_join(struct kt_thread *t)
{
  WaitForSingleObject(t->h, INFINITE);
  CloseHandle(t->h);
}

static inline void kt_sleep_ms(long ms) { Sleep((DWORD)ms); }

/* A shell command run by the host's /bin/sh: the fixtures and the cross-checks come from the
 * openssl CLI, which only the host has. Wine starts a Unix program for CreateProcess but
 * gives no handle to wait on nor its exit status, so the script writes its status to a
 * file (renamed into place: complete when seen), polled here. Its output goes to a file of
 * its own, copied to this process's stderr afterwards: written straight into the test's
 * stdout or stderr it could land over what the test wrote (its count line lost, seen once).
 * Paths "Z:/x" in the command become the host's "/x". Returns the status (0: success) or -1. */
static inline void kt_copy_to_stderr(const char *path)
{
  char buf[4096];
  size_t n;
  FILE *f = fopen(path, "rb");
  while (f && (n = fread(buf, 1, sizeof buf, f)) > 0)
    fwrite(buf, 1, n, stderr);
  if (f)
    fclose(f);
}

static inline int kt_sh(const char *fmt, ...)
{
  char cmd[4096], script[128], status[128], out[128], line[300], *p;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  while ((p = strstr(cmd, "Z:/")) || (p = strstr(cmd, "Z:\\"))) {
    memmove(p, p + 2, strlen(p + 2) + 1);
    *p = '/';
  }
  unsigned long id = GetCurrentProcessId();
  snprintf(script, sizeof script, "/tmp/kt-sh.%lu.sh", id);
  snprintf(status, sizeof status, "/tmp/kt-sh.%lu.status", id);
  snprintf(out, sizeof out, "/tmp/kt-sh.%lu.out", id);
  snprintf(line, sizeof line, "Z:%s", status);
  DeleteFileA(line);
  snprintf(line, sizeof line, "Z:%s", script);
  FILE *f = fopen(line, "wb");
  if (!f)
    return -1;
  fprintf(f, "{\n%s\n} >%s 2>&1\necho $? >%s.t && mv %s.t %s\n", cmd, out, status, status,
          status);
  if (fclose(f) != 0)
    return -1;
  wchar_t wcmd[160];
  swprintf(wcmd, sizeof wcmd / sizeof wcmd[0], L"/bin/sh %hs", script);
  STARTUPINFOW si = {.cb = sizeof si};
  PROCESS_INFORMATION pi;
  if (!CreateProcessW(L"Z:\\bin\\sh", wcmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi))
    return -1;
  CloseHandle(pi.hThread);
  CloseHandle(pi.hProcess);
  snprintf(line, sizeof line, "Z:%s", status);
  int rc = -1;
  for (DWORD t0 = GetTickCount(); GetTickCount() - t0 < 600000; Sleep(5)) {
    if ((f = fopen(line, "rb")) != NULL) {
      if (fscanf(f, "%d", &rc) != 1)
        rc = -1;
      fclose(f);
      break;
    }
  }
  DeleteFileA(line);
  snprintf(line, sizeof line, "Z:%s", out);
  kt_copy_to_stderr(line);
  DeleteFileA(line);
  snprintf(line, sizeof line, "Z:%s", script);
  DeleteFileA(line);
  return rc;
}

#else
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>

/* A fresh folder under /tmp for one test; removed by kt_rmtree. */
static inline char *kt_tmpdir(void)
{
  char buf[64];
  strcpy(buf, "/tmp/kvvm-test.XXXXXX");
  return mkdtemp(buf) ? strdup(buf) : NULL;
}

static inline void kt_rmtree(const char *dir)
{
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "  could not remove %s\n", dir);
}

static inline int kt_setenv(const char *name, const char *value)
{
  return setenv(name, value, 1);
}

static inline int kt_unsetenv(const char *name) { return unsetenv(name); }

static inline int kt_mkdir(const char *path) { return mkdir(path, 0700); }

/* A thread (a writer racing the code under test). */
struct kt_thread {
  pthread_t h;
  void (*fn)(void *);
  void *arg;
};

static void *kt_thread_body(void *p)
{
  struct kt_thread *t = p;
  t->fn(t->arg);
  return NULL;
}

static inline int kt_thread_start(struct kt_thread *t, void (*fn)(void *), void *arg)
{
  t->fn = fn;
  t->arg = arg;
  return pthread_create(&t->h, NULL, kt_thread_body, t) == 0 ? 0 : -1;
}

static inline void kt_thread_join(struct kt_thread *t) { pthread_join(t->h, NULL); }

static inline void kt_sleep_ms(long ms)
{
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* A shell command (fixtures and cross-checks from the openssl CLI): system()'s status. */
static inline int kt_sh(const char *fmt, ...)
{
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  return system(cmd);
}
#endif

#endif
