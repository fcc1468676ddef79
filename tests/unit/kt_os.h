/* The few operating-system calls the unit tests make for their fixtures (a fresh folder,
 * removing it, environment variables), in each system's own words, so that a test of a
 * portable module builds and runs the same on Linux and, cross-built, under wine. A check
 * that only one system can make stays in its test behind #ifndef _WIN32, with KT_SKIP. */
#ifndef KT_OS_H
#define KT_OS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <direct.h>
#include <io.h>
#include <windows.h>

/* A fresh folder under the user's temp folder, or NULL. */
static inline char *kt_tmpdir(void)
{
  char base[MAX_PATH], buf[MAX_PATH + 32];
  DWORD n = GetTempPathA(sizeof base, base);
  if (n == 0 || n >= sizeof base)
    return NULL;
  for (int tries = 0; tries < 100; tries++) {
    snprintf(buf, sizeof buf, "%skvvm-test.%lu.%d", base, (unsigned long)GetCurrentProcessId(),
             rand());
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

#else
#include <sys/stat.h>

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
#endif

#endif
