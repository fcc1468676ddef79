/* The Windows half of the log (log_int.h). Writers and rotation take the lock file's byte
 * by LockFileEx, writers too exclusively: an append-only handle is not one atomic append
 * across processes under wine (4 writers sharing the lock lost up to 8 of 1,600 lines),
 * and Windows documents no such promise; kvvm writes a few lines a second at most, so
 * taking turns costs nothing. A writer opens kvvm.log for each line: so it always appends
 * to the file that is kvvm.log now, and no idle process (kvvmd between passes) keeps a
 * rotated file open, which on Windows would hold its name until it closes and make the next
 * rotation fail. Every open shares read, write and delete, so readers and rotation in other
 * processes are never refused. */
#include <fcntl.h>
#include <io.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <wchar.h>
#include <zlib.h>

#include "base/log_int.h"
#include "windows/win_int.h"

/* The folder and one of our names, in UTF-16: never more units than UTF-8 bytes. */
#define WPATH_CAP (KVVM_LOG_DIR_CAP + 64)
#define SHARE_ALL (FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)

static struct {
  HANDLE lock;
  wchar_t dir[KVVM_LOG_DIR_CAP];
} w = {.lock = INVALID_HANDLE_VALUE};

/* Our names are ASCII: widened here without allocating (the write path never does). */
static void path_of(wchar_t out[WPATH_CAP], const char *name)
{
  size_t n = wcslen(w.dir);
  wmemcpy(out, w.dir, n);
  out[n++] = L'\\';
  while (*name && n < WPATH_CAP - 1)
    out[n++] = (wchar_t)(unsigned char)*name++;
  out[n] = L'\0';
}

static int last_error(void) { return (int)GetLastError(); }

/* Each folder on the way is tried (most exist already, some cannot be made, such as a
 * drive or a share): only the last one's outcome counts. Folders made here inherit their
 * parent's DACL. */
static int make_dir(void)
{
  for (wchar_t *s = w.dir + 1; *s; s++) {
    if (*s != L'\\' && *s != L'/')
      continue;
    wchar_t c = *s;
    *s = L'\0';
    CreateDirectoryW(w.dir, NULL);
    *s = c;
  }
  if (!CreateDirectoryW(w.dir, NULL) && GetLastError() != ERROR_ALREADY_EXISTS)
    return last_error();
  DWORD a = GetFileAttributesW(w.dir);
  if (a == INVALID_FILE_ATTRIBUTES)
    return last_error();
  return a & FILE_ATTRIBUTE_DIRECTORY ? 0 : ERROR_DIRECTORY;
}

/* FILE_FLAG_OPEN_REPARSE_POINT and the check after it: a link planted in the folder is
 * opened as itself and refused, never written through. */
static int open_own(const char *name, DWORD access, HANDLE *out)
{
  wchar_t path[WPATH_CAP];
  path_of(path, name);
  HANDLE h = CreateFileW(path, access | FILE_READ_ATTRIBUTES, SHARE_ALL, NULL, OPEN_ALWAYS,
                         FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT, NULL);
  if (h == INVALID_HANDLE_VALUE)
    return last_error();
  BY_HANDLE_FILE_INFORMATION fi;
  if (!GetFileInformationByHandle(h, &fi) ||
      fi.dwFileAttributes & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT)) {
    CloseHandle(h);
    return ERROR_CANT_ACCESS_FILE;
  }
  *out = h;
  return 0;
}

static SRWLOCK writer = SRWLOCK_INIT;

void kvvm_log_os_enter(void) { AcquireSRWLockExclusive(&writer); }

void kvvm_log_os_leave(void) { ReleaseSRWLockExclusive(&writer); }

void kvvm_log_os_close(void)
{
  if (w.lock != INVALID_HANDLE_VALUE)
    CloseHandle(w.lock);
  w.lock = INVALID_HANDLE_VALUE;
}

/* Keeps the lock file open; kvvm.log is opened once here only to prove it can be. */
int kvvm_log_os_open(const char *dir, const char **what)
{
  kvvm_log_os_close();
  wchar_t *wd = kvvm_win_wide(dir);
  *what = "convert the folder name";
  if (!wd)
    return ERROR_NO_UNICODE_TRANSLATION;
  /* Fits: log.c refused longer UTF-8, and UTF-16 never has more units than UTF-8 bytes. */
  wmemcpy(w.dir, wd, wcslen(wd) + 1);
  free(wd);
  *what = "create the folder";
  int e = make_dir();
  if (e)
    return e;
  *what = "open";
  HANDLE h;
  e = open_own(KVVM_LOG_NAME ".lock", GENERIC_READ | GENERIC_WRITE, &w.lock);
  if (!e && !(e = open_own(KVVM_LOG_NAME, FILE_APPEND_DATA, &h)))
    CloseHandle(h);
  if (e)
    kvvm_log_os_close();
  return e;
}

static int lock(DWORD flags)
{
  OVERLAPPED ov = {0};
  return LockFileEx(w.lock, flags, 0, 1, 0, &ov) ? 0 : last_error();
}

static void unlock(void)
{
  OVERLAPPED ov = {0};
  UnlockFileEx(w.lock, 0, 1, 0, &ov);
}

int kvvm_log_os_lock_rotation(void) { return lock(LOCKFILE_EXCLUSIVE_LOCK); }

void kvvm_log_os_unlock_rotation(void) { unlock(); }

/* Without FILE_WRITE_DATA, a handle with FILE_APPEND_DATA writes at the end of the file. */
static int write_line(HANDLE h, const char *line, size_t n, uint64_t *size, const char **what)
{
  LARGE_INTEGER sz;
  *what = "size";
  if (!GetFileSizeEx(h, &sz))
    return last_error();
  *size = (uint64_t)sz.QuadPart;
  DWORD done = 0;
  *what = "write";
  if (!WriteFile(h, line, (DWORD)n, &done, NULL))
    return last_error();
  /* A second write could land after another process's line: count it as failed. */
  *what = "short write";
  return done != n ? ERROR_DISK_FULL : 0;
}

int kvvm_log_os_append(const char *line, size_t n, uint64_t *size, const char **what)
{
  *what = "lock";
  int e = lock(LOCKFILE_EXCLUSIVE_LOCK);
  if (e)
    return e;
  HANDLE h;
  *what = "open";
  e = open_own(KVVM_LOG_NAME, FILE_APPEND_DATA, &h);
  if (!e) {
    e = write_line(h, line, n, size, what);
    CloseHandle(h);
  }
  unlock();
  return e;
}

bool kvvm_log_os_size(const char *name, uint64_t *size)
{
  wchar_t path[WPATH_CAP];
  WIN32_FILE_ATTRIBUTE_DATA fa;
  path_of(path, name);
  if (!GetFileAttributesExW(path, GetFileExInfoStandard, &fa))
    return false;
  if (size)
    *size = (uint64_t)fa.nFileSizeHigh << 32 | fa.nFileSizeLow;
  return true;
}

int kvvm_log_os_rename(const char *from, const char *to)
{
  wchar_t a[WPATH_CAP], b[WPATH_CAP];
  path_of(a, from);
  path_of(b, to);
  return MoveFileExW(a, b, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH) ? 0
                                                                             : last_error();
}

int kvvm_log_os_remove(const char *name)
{
  wchar_t path[WPATH_CAP];
  path_of(path, name);
  return DeleteFileW(path) ? 0 : last_error();
}

/* A zlib failure may leave no Win32 error behind: then say "write fault". */
static int zlib_error(void)
{
  DWORD e = GetLastError();
  return e ? (int)e : ERROR_WRITE_FAULT;
}

static bool copy_into_gz(HANDLE in, gzFile gz)
{
  char buf[16384];
  for (;;) {
    DWORD r = 0;
    if (!ReadFile(in, buf, sizeof buf, &r, NULL))
      return false;
    if (r == 0)
      return true;
    if (gzwrite(gz, buf, (unsigned)r) != (int)r)
      return false;
  }
}

/* zlib writes through a C descriptor on a duplicate of out (gzclose closes both), which
 * leaves out open for FlushFileBuffers. */
static int gzip_handles(HANDLE in, HANDLE out, const char **what)
{
  HANDLE dup = NULL;
  gzFile gz = NULL;
  SetLastError(0);
  *what = "open for compression";
  if (!DuplicateHandle(GetCurrentProcess(), out, GetCurrentProcess(), &dup, 0, FALSE,
                       DUPLICATE_SAME_ACCESS))
    return last_error();
  int fd = _open_osfhandle((intptr_t)dup, _O_WRONLY | _O_BINARY);
  if (fd < 0)
    CloseHandle(dup);
  else if (!(gz = gzdopen(fd, "wb")))
    _close(fd);
  if (!gz)
    return zlib_error();
  bool copied = copy_into_gz(in, gz);
  *what = "compress";
  if (gzclose(gz) != Z_OK || !copied)
    return zlib_error();
  *what = "flush";
  return FlushFileBuffers(out) ? 0 : last_error();
}

int kvvm_log_os_gzip(const char *src, const char *dst, const char **what)
{
  wchar_t a[WPATH_CAP], b[WPATH_CAP];
  path_of(a, src);
  path_of(b, dst);
  HANDLE out = INVALID_HANDLE_VALUE;
  HANDLE in = CreateFileW(a, GENERIC_READ, SHARE_ALL, NULL, OPEN_EXISTING,
                          FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_SEQUENTIAL_SCAN, NULL);
  if (in != INVALID_HANDLE_VALUE)
    out = CreateFileW(b, GENERIC_WRITE, SHARE_ALL, NULL, CREATE_ALWAYS,
                      FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT, NULL);
  *what = "open for compression";
  int e = out == INVALID_HANDLE_VALUE ? last_error() : gzip_handles(in, out, what);
  if (in != INVALID_HANDLE_VALUE)
    CloseHandle(in);
  if (out != INVALID_HANDLE_VALUE)
    CloseHandle(out);
  return e;
}

void kvvm_log_os_stderr(const char *s, size_t n)
{
  HANDLE h = GetStdHandle(STD_ERROR_HANDLE);
  while (n && h && h != INVALID_HANDLE_VALUE) {
    DWORD done = 0;
    if (!WriteFile(h, s, (DWORD)n, &done, NULL) || done == 0)
      return;
    s += done;
    n -= done;
  }
}

/* Wall-clock time: a log must say when things really happened. */
size_t kvvm_log_os_stamp(char *buf, size_t cap)
{
  FILETIME ft;
  SYSTEMTIME st;
  GetSystemTimeAsFileTime(&ft);
  FileTimeToSystemTime(&ft, &st);
  int n = snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ ", st.wYear, st.wMonth,
                   st.wDay, st.wHour, st.wMinute, st.wSecond, st.wMilliseconds);
  return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

long kvvm_log_os_pid(void) { return (long)GetCurrentProcessId(); }

const char *kvvm_log_os_strerror(int err, char *buf, size_t n)
{
  return kvvm_win_strerror((DWORD)err, buf, n);
}
