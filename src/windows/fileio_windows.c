/* Files and folders on Windows (fileio.h): UTF-8 paths made wide at the boundary, atomic
 * replace by a temp file in the same folder + FlushFileBuffers + MoveFileExW, folders with
 * their parents, locks with LockFileEx. A folder kvvm makes gets a protected DACL (SYSTEM
 * and Administrators; Users read for a mode with group or other bits, see dir_sddl); files
 * inherit the DACL of their folder, their mode is ignored. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aclapi.h>
#include <sddl.h>

#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "windows/win_int.h"

/* What lets an account change a file or put another in its place. */
#define WRITE_RIGHTS (FILE_WRITE_DATA | FILE_APPEND_DATA | WRITE_DAC | WRITE_OWNER | DELETE | \
                      GENERIC_WRITE | GENERIC_ALL)

/* 100 ns intervals from 1601-01-01 (FILETIME's epoch) to 1970-01-01. */
#define FILETIME_UNIX_EPOCH 116444736000000000LL

struct kvvm_wfile {
  HANDLE h;
};

struct kvvm_lock {
  HANDLE h;
};

static bool is_sep(char c) { return c == '\\' || c == '/'; }

/* The last error in words, for a log line. */
static const char *last_error(char *buf, size_t n)
{
  return kvvm_win_strerror(GetLastError(), buf, n);
}

/* A wide copy of path, or NULL with the reason logged (only invalid UTF-8 gets here). */
static wchar_t *wide_path(const char *path)
{
  wchar_t *w = kvvm_win_wide(path);
  if (!w)
    KVVM_ERR("%s: not a valid UTF-8 path", path);
  return w;
}

char *kvvm_path_join(const char *a, const char *b)
{
  size_t n = strlen(a);
  const char *sep = (n && is_sep(a[n - 1])) ? "" : "\\";
  while (is_sep(*b))
    b++;
  return kvvm_xasprintf("%s%s%s", a, sep, b);
}

/* "C:\x" -> "C:\", "\x" -> "\", "x" -> ".", "C:\a\b" -> "C:\a". */
char *kvvm_path_dirname(const char *path)
{
  const char *last = NULL;
  for (const char *p = path; *p; p++)
    if (is_sep(*p))
      last = p;
  if (!last)
    return kvvm_xstrdup(".");
  size_t root = (path[0] && path[1] == ':') ? 2 : 0;
  if ((size_t)(last - path) == root)
    return kvvm_xasprintf("%.*s", (int)root + 1, path);
  return kvvm_xasprintf("%.*s", (int)(last - path), path);
}

/* "C:\x" or "C:/x", and UNC or device paths ("\\srv\share", "\\?\C:\x"). "\x" (the
 * current drive's root) and "C:x" (relative to C:'s current folder) are not. */
bool kvvm_path_is_absolute(const char *path)
{
  if (!path || !path[0])
    return false;
  if (is_sep(path[0]))
    return is_sep(path[1]);
  return ((path[0] | 0x20) >= 'a' && (path[0] | 0x20) <= 'z') && path[1] == ':' &&
         is_sep(path[2]);
}

char *kvvm_path_absolute(const char *path)
{
  wchar_t *w = wide_path(path), *full = NULL;
  DWORD n = w ? GetFullPathNameW(w, 0, NULL, NULL) : 0;
  char *out = NULL;
  if (n) {
    full = kvvm_xmalloc(n * sizeof *full);
    if (GetFullPathNameW(w, n, full, NULL) < n)
      out = kvvm_win_utf8(full);
  }
  free(full);
  free(w);
  return out;
}

bool kvvm_path_exists(const char *path)
{
  wchar_t *w = kvvm_win_wide(path);
  bool exists = w && GetFileAttributesW(w) != INVALID_FILE_ATTRIBUTES;
  free(w);
  return exists;
}

bool kvvm_path_is_link(const char *path)
{
  wchar_t *w = kvvm_win_wide(path);
  DWORD a = w ? GetFileAttributesW(w) : INVALID_FILE_ATTRIBUTES;
  free(w);
  return a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_REPARSE_POINT);
}

static bool not_found(DWORD e) { return e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND; }

/* Open an existing path for reading what is needed; flags add to the share-everything open. */
static HANDLE open_existing(const char *path, DWORD access, DWORD flags)
{
  wchar_t *w = wide_path(path);
  if (!w)
    return INVALID_HANDLE_VALUE;
  HANDLE h = CreateFileW(w, access, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                         NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL | flags, NULL);
  free(w);
  return h;
}

/* Read all of h, at most max bytes, into a new NUL-terminated buffer. */
static bool read_handle(HANDLE h, size_t max, char **out, size_t *len)
{
  size_t cap = 4096, n = 0;
  char *buf = kvvm_xmalloc(cap + 1);
  bool ok = true;
  for (;;) {
    if (n == cap) {
      if (cap > max)
        break;
      cap *= 2;
      buf = kvvm_xrealloc(buf, cap + 1);
    }
    DWORD chunk = cap - n > 1u << 30 ? 1u << 30 : (DWORD)(cap - n), got = 0;
    if (!ReadFile(h, buf + n, chunk, &got, NULL))
      ok = false;
    if (!ok || got == 0)
      break;
    n += got;
  }
  if (!ok || n > max) {
    free(buf);
    return false;
  }
  buf[n] = '\0';
  *out = buf;
  if (len)
    *len = n;
  return true;
}

static bool handle_is_file(HANDLE h)
{
  BY_HANDLE_FILE_INFORMATION bi;
  return GetFileType(h) == FILE_TYPE_DISK && GetFileInformationByHandle(h, &bi) &&
         !(bi.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY);
}

enum kvvm_err kvvm_file_read(const char *path, size_t max, char **out, size_t *len)
{
  char err[160];
  *out = NULL;
  HANDLE h = open_existing(path, GENERIC_READ, FILE_FLAG_BACKUP_SEMANTICS);
  if (h == INVALID_HANDLE_VALUE) {
    if (not_found(GetLastError()))
      return KVVM_E_NOENT;
    KVVM_ERR("%s: open: %s", path, last_error(err, sizeof err));
    return KVVM_E_IO;
  }
  enum kvvm_err rc = KVVM_E_IO;
  if (!handle_is_file(h))
    KVVM_ERR("%s: not a regular file", path);
  else if (!read_handle(h, max, out, len))
    KVVM_ERR("%s: unreadable, or larger than %llu bytes", path, (unsigned long long)max);
  else
    rc = KVVM_OK;
  CloseHandle(h);
  return rc;
}

int kvvm_wfile_write(struct kvvm_wfile *f, const void *data, size_t len)
{
  const char *p = data;
  while (len) {
    DWORD chunk = len > 1u << 30 ? 1u << 30 : (DWORD)len, put = 0;
    if (!WriteFile(f->h, p, chunk, &put, NULL) || put == 0) {
      errno = EIO;
      return -1;
    }
    p += put;
    len -= put;
  }
  return 0;
}

/* A fresh temp file beside the target: CREATE_NEW, so nothing already there (a planted
 * file, a link) is ever written through; no sharing until it is renamed into place. */
static HANDLE open_temp(const char *dir, char **tmp_out)
{
  static unsigned seq;
  for (unsigned attempt = 0; attempt < 16; attempt++) {
    unsigned r = GetCurrentProcessId() * 2654435761u ^ (unsigned)GetTickCount64() ^ ++seq;
    char *tmp = kvvm_xasprintf("%s\\" KVVM_TEMP_PREFIX "%08x", dir, r);
    wchar_t *w = wide_path(tmp);
    HANDLE h = w ? CreateFileW(w, GENERIC_WRITE, 0, NULL, CREATE_NEW, FILE_ATTRIBUTE_NORMAL,
                               NULL)
                 : INVALID_HANDLE_VALUE;
    free(w);
    if (h != INVALID_HANDLE_VALUE) {
      *tmp_out = tmp;
      return h;
    }
    free(tmp);
    if (GetLastError() != ERROR_FILE_EXISTS)
      return INVALID_HANDLE_VALUE;
  }
  return INVALID_HANDLE_VALUE;
}

struct bytes {
  const void *data;
  size_t len;
};

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

/* How long a replace waits for another process to let go of the target: the agent reads a
 * status file (and a user's editor or scanner may hold any file) without FILE_SHARE_DELETE,
 * and then a rename onto it fails. Reads take milliseconds; a command must not hang. */
#define REPLACE_WAIT_MS 5000
#define REPLACE_FIRST_MS 20
#define REPLACE_MAX_STEP_MS 500

/* The errors of a target held open: ACCESS_DENIED is also a plain refusal, which then
 * costs the bounded wait before it is reported. */
static bool held_elsewhere(DWORD e)
{
  return e == ERROR_SHARING_VIOLATION || e == ERROR_ACCESS_DENIED;
}

/* Rename tmp over path; MOVEFILE_WRITE_THROUGH returns once the rename is on disk. While
 * another process holds path, retry with a doubling pause, up to REPLACE_WAIT_MS. */
static bool replace_with(const char *tmp, const char *path)
{
  wchar_t *wt = wide_path(tmp), *wp = wide_path(path);
  bool ok = false;
  DWORD waited = 0, step = REPLACE_FIRST_MS;
  while (wt && wp) {
    ok = MoveFileExW(wt, wp, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH);
    DWORD e = GetLastError();
    if (ok || !held_elsewhere(e) || waited >= REPLACE_WAIT_MS)
      break;
    Sleep(step);
    waited += step;
    step = step * 2 > REPLACE_MAX_STEP_MS ? REPLACE_MAX_STEP_MS : step * 2;
  }
  if (ok && waited)
    KVVM_INFO("%s: replaced after waiting %lu ms for another process to close it", path,
              (unsigned long)waited);
  free(wt);
  free(wp);
  return ok;
}

static void remove_quietly(const char *path)
{
  wchar_t *w = kvvm_win_wide(path);
  if (w)
    DeleteFileW(w);
  free(w);
}

enum kvvm_err kvvm_file_write_atomic_with(const char *path, unsigned mode,
                                          int (*fill)(struct kvvm_wfile *f, void *ctx),
                                          void *ctx)
{
  (void)mode;   /* the folder's inherited DACL decides who may read */
  char err[160], *dir = kvvm_path_dirname(path), *tmp = NULL;
  enum kvvm_err rc = KVVM_E_IO;
  struct kvvm_wfile f = {open_temp(dir, &tmp)};
  if (f.h == INVALID_HANDLE_VALUE) {
    KVVM_ERR("%s: cannot create a temp file: %s", dir, last_error(err, sizeof err));
    goto out;
  }
  if (fill(&f, ctx) != 0) {
    KVVM_ERR("%s: write: %s", tmp, strerror(errno));
    goto out;
  }
  if (!FlushFileBuffers(f.h)) {
    KVVM_ERR("%s: flush: %s", tmp, last_error(err, sizeof err));
    goto out;
  }
  CloseHandle(f.h);
  f.h = INVALID_HANDLE_VALUE;
  if (!replace_with(tmp, path)) {
    KVVM_ERR("%s: rename: %s", path, last_error(err, sizeof err));
    goto out;
  }
  free(tmp);
  tmp = NULL;
  rc = KVVM_OK;
out:
  if (f.h != INVALID_HANDLE_VALUE)
    CloseHandle(f.h);
  if (tmp)
    remove_quietly(tmp);
  free(tmp);
  free(dir);
  return rc;
}

/* A folder kvvm makes does not inherit from above: %ProgramData% lets every user add files
 * and folders, which in kvvm's state or hooks folder would be a way in. SYSTEM and
 * Administrators get full control, inherited by what is made inside; with any group or
 * other bit in mode (0755: a folder others read), Users may read too. */
static const wchar_t *dir_sddl(unsigned mode)
{
  return mode & 077 ? L"D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FRFX;;;BU)"
                    : L"D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";
}

static enum kvvm_err make_dir(const char *path, unsigned mode)
{
  char err[160];
  wchar_t *w = wide_path(path);
  SECURITY_ATTRIBUTES sa = {.nLength = sizeof sa};
  if (!w)
    return KVVM_E_IO;
  bool ok = ConvertStringSecurityDescriptorToSecurityDescriptorW(dir_sddl(mode), SDDL_REVISION_1,
                                                                 &sa.lpSecurityDescriptor, NULL);
  ok = ok && (CreateDirectoryW(w, &sa) || GetLastError() == ERROR_ALREADY_EXISTS);
  LocalFree(sa.lpSecurityDescriptor);
  free(w);
  if (ok)
    return KVVM_OK;
  KVVM_ERR("%s: cannot create the folder: %s", path, last_error(err, sizeof err));
  return KVVM_E_IO;
}

enum kvvm_err kvvm_dir_ensure(const char *path, unsigned mode)
{
  wchar_t *w = wide_path(path);
  if (!w)
    return KVVM_E_IO;
  DWORD attr = GetFileAttributesW(w);
  free(w);
  if (attr != INVALID_FILE_ATTRIBUTES) {
    if (attr & FILE_ATTRIBUTE_DIRECTORY)
      return KVVM_OK;
    KVVM_ERR("%s: exists and is not a folder", path);
    return KVVM_E_IO;
  }
  char *parent = kvvm_path_dirname(path);
  enum kvvm_err rc = KVVM_OK;
  if (strcmp(parent, path) != 0 && strcmp(parent, ".") != 0)
    rc = kvvm_dir_ensure(parent, mode);
  free(parent);
  return rc == KVVM_OK ? make_dir(path, mode) : rc;
}

/* FindFirstFileW over dir\pattern; INVALID_HANDLE_VALUE with the last error set if none. */
static HANDLE find_first(const char *dir, const char *pattern, WIN32_FIND_DATAW *fd)
{
  char *glob = kvvm_path_join(dir, pattern);
  wchar_t *w = wide_path(glob);
  HANDLE h = w ? FindFirstFileW(w, fd) : INVALID_HANDLE_VALUE;
  free(w);
  free(glob);
  return h;
}

int kvvm_dir_sweep_prefix(const char *dir, const char *prefix)
{
  WIN32_FIND_DATAW fd;
  char *pattern = kvvm_xasprintf("%s*", prefix);
  HANDLE h = find_first(dir, pattern, &fd);
  free(pattern);
  if (h == INVALID_HANDLE_VALUE)
    return 0;
  int count = 0;
  do {
    char *name = kvvm_win_utf8(fd.cFileName);
    char *path = name ? kvvm_path_join(dir, name) : NULL;
    wchar_t *w = path ? kvvm_win_wide(path) : NULL;
    if (w && !(fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) && DeleteFileW(w))
      count++;
    free(w);
    free(path);
    free(name);
  } while (FindNextFileW(h, &fd));
  FindClose(h);
  return count;
}

enum kvvm_err kvvm_file_info(const char *path, struct kvvm_file_info *out)
{
  char err[160];
  BY_HANDLE_FILE_INFORMATION bi;
  /* Opening (backup semantics for folders) follows links, as stat does. */
  HANDLE h = open_existing(path, FILE_READ_ATTRIBUTES, FILE_FLAG_BACKUP_SEMANTICS);
  if (h == INVALID_HANDLE_VALUE && not_found(GetLastError()))
    return KVVM_E_NOENT;
  if (h == INVALID_HANDLE_VALUE || !GetFileInformationByHandle(h, &bi)) {
    KVVM_ERR("%s: cannot examine: %s", path, last_error(err, sizeof err));
    if (h != INVALID_HANDLE_VALUE)
      CloseHandle(h);
    return KVVM_E_IO;
  }
  CloseHandle(h);
  int64_t ft = (int64_t)bi.ftLastWriteTime.dwHighDateTime << 32 | bi.ftLastWriteTime.dwLowDateTime;
  out->is_dir = (bi.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) != 0;
  out->is_file = !out->is_dir;
  out->size = (uint64_t)bi.nFileSizeHigh << 32 | bi.nFileSizeLow;
  out->mtime_ns = (ft - FILETIME_UNIX_EPOCH) * 100;
  out->mode = 0;
  return KVVM_OK;
}

static void push_name(char ***v, size_t *n, size_t *cap, const wchar_t *w)
{
  if (wcscmp(w, L".") == 0 || wcscmp(w, L"..") == 0)
    return;
  char *name = kvvm_win_utf8(w);
  if (!name)
    return;   /* a name UTF-8 cannot carry is no name kvvm wrote or looks for */
  if (*n + 1 >= *cap)
    *v = kvvm_xrealloc(*v, (*cap *= 2) * sizeof **v);
  (*v)[(*n)++] = name;
}

enum kvvm_err kvvm_dir_list(const char *dir, char ***names)
{
  char err[160];
  WIN32_FIND_DATAW fd;
  *names = NULL;
  HANDLE h = find_first(dir, "*", &fd);
  if (h == INVALID_HANDLE_VALUE) {
    if (not_found(GetLastError()))
      return KVVM_E_NOENT;
    KVVM_ERR("%s: %s", dir, last_error(err, sizeof err));
    return KVVM_E_IO;
  }
  size_t n = 0, cap = 16;
  char **v = kvvm_xmalloc(cap * sizeof *v);
  do
    push_name(&v, &n, &cap, fd.cFileName);
  while (FindNextFileW(h, &fd));
  FindClose(h);
  v[n] = NULL;
  *names = v;
  return KVVM_OK;
}

enum kvvm_err kvvm_file_remove(const char *path)
{
  char err[160];
  wchar_t *w = wide_path(path);
  if (!w)
    return KVVM_E_IO;
  bool ok = DeleteFileW(w) || not_found(GetLastError());
  free(w);
  if (ok)
    return KVVM_OK;
  KVVM_ERR("%s: %s", path, last_error(err, sizeof err));
  return KVVM_E_IO;
}

enum kvvm_err kvvm_dir_remove(const char *path)
{
  wchar_t *w = kvvm_win_wide(path);
  bool ok = w && (RemoveDirectoryW(w) || not_found(GetLastError()));
  free(w);
  return ok ? KVVM_OK : KVVM_E_IO;
}

/* The accounts a trusted file may belong to and be writable by. */
static bool sid_is_admin(PSID sid)
{
  return IsWellKnownSid(sid, WinLocalSystemSid) || IsWellKnownSid(sid, WinBuiltinAdministratorsSid);
}

/* "is owned by S-1-5-21-..., not SYSTEM or Administrators", with the owner's SID. */
static void owner_fault(PSID owner, char *reason, size_t n)
{
  char *text = NULL;
  if (owner && ConvertSidToStringSidA(owner, &text)) {
    snprintf(reason, n, "is owned by %s, not SYSTEM or Administrators", text);
    LocalFree(text);
  } else {
    snprintf(reason, n, "has no owner that is SYSTEM or Administrators");
  }
}

/* Allow entries only: a deny entry that would take the right away again is not credited,
 * so the check errs on the side of refusing. Inherit-only entries do not apply to a file. */
static bool others_may_write(PACL dacl)
{
  ACL_SIZE_INFORMATION ai;
  if (!dacl)
    return true;   /* no DACL: everyone has every right */
  if (!GetAclInformation(dacl, &ai, sizeof ai, AclSizeInformation))
    return true;
  for (DWORD i = 0; i < ai.AceCount; i++) {
    ACE_HEADER *h = NULL;
    if (!GetAce(dacl, i, (void **)&h))
      return true;
    if (h->AceType != ACCESS_ALLOWED_ACE_TYPE || (h->AceFlags & INHERIT_ONLY_ACE))
      continue;
    ACCESS_ALLOWED_ACE *a = (ACCESS_ALLOWED_ACE *)h;
    if ((a->Mask & WRITE_RIGHTS) && !sid_is_admin(&a->SidStart))
      return true;
  }
  return false;
}

/* Why the open file's owner or DACL rules it out as a trust anchor; "" when they do not. */
static void security_fault(HANDLE h, char *reason, size_t n)
{
  PSID owner = NULL;
  PACL dacl = NULL;
  PSECURITY_DESCRIPTOR sd = NULL;
  char err[160];
  DWORD e = GetSecurityInfo(h, SE_FILE_OBJECT,
                            OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, &owner,
                            NULL, &dacl, NULL, &sd);
  if (e != ERROR_SUCCESS)
    snprintf(reason, n, "cannot be examined: %s", kvvm_win_strerror(e, err, sizeof err));
  else if (!owner || !sid_is_admin(owner))
    owner_fault(owner, reason, n);
  else if (others_may_write(dacl))
    snprintf(reason, n, "is writable by accounts other than SYSTEM and Administrators");
  LocalFree(sd);
}

/* Wine 8 keeps no file owner or DACL: every file reads as owned by, and writable by, wine's
 * one user, so the checks of security_fault can never pass there and the Windows scenario
 * tests (tests/windows/test_agent_win.py) could not trust their emulator's CA; the hooks'
 * checks (hooks_acl_windows.c) could never let a hook run. Under wine only, and only when the
 * test asks with KVVM_WINE_NO_FILE_OWNER=1, those two checks are skipped (logged each time).
 * On Windows ntdll has no wine_get_version: the variable does nothing there. Under wine
 * every process runs as that one administrator anyway, so the checks have no other account
 * to keep out. */
bool kvvm_win_wine_skips_owner(const char *path)
{
  const char *v = getenv("KVVM_WINE_NO_FILE_OWNER");
  HMODULE nt = GetModuleHandleW(L"ntdll.dll");
  if (!v || strcmp(v, "1") != 0 || !nt || !GetProcAddress(nt, "wine_get_version"))
    return false;
  KVVM_WARN("%s: owner and DACL not checked: running under wine, which keeps no file owner, "
            "with the testing aid KVVM_WINE_NO_FILE_OWNER=1", path);
  return true;
}

/* Why the open file may not be trusted, or "" when it may. */
static void trust_fault(HANDLE h, const char *path, size_t max, char *reason, size_t n)
{
  BY_HANDLE_FILE_INFORMATION bi;
  char err[160];
  if (!GetFileInformationByHandle(h, &bi)) {
    snprintf(reason, n, "cannot be examined: %s", last_error(err, sizeof err));
    return;
  }
  uint64_t size = (uint64_t)bi.nFileSizeHigh << 32 | bi.nFileSizeLow;
  if (bi.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) {
    snprintf(reason, n, "cannot be opened: it is a symbolic link");
    return;
  }
  if (!handle_is_file(h)) {
    snprintf(reason, n, "is not a regular file");
    return;
  }
  if (!kvvm_win_wine_skips_owner(path))
    security_fault(h, reason, n);
  if (!reason[0] && size > max)
    snprintf(reason, n, "is larger than %llu bytes", (unsigned long long)max);
}

enum kvvm_err kvvm_file_read_trusted(const char *path, size_t max, char **out,
                                     char *reason, size_t reasonlen)
{
  char err[160];
  *out = NULL;
  reason[0] = '\0';
  /* The link itself, not its target: the file checked is the file used. Backup semantics
   * let a folder open, to be refused as one. */
  HANDLE h = open_existing(path, GENERIC_READ | READ_CONTROL,
                           FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS);
  if (h == INVALID_HANDLE_VALUE) {
    snprintf(reason, reasonlen, "cannot be opened: %s", last_error(err, sizeof err));
    return KVVM_E_IO;
  }
  trust_fault(h, path, max, reason, reasonlen);
  if (!reason[0] && !read_handle(h, max, out, NULL))
    snprintf(reason, reasonlen, "could not be read whole");
  CloseHandle(h);
  return reason[0] ? KVVM_E_IO : KVVM_OK;
}

enum kvvm_err kvvm_lock_open(const char *path, bool exclusive, bool nonblock,
                             struct kvvm_lock **out)
{
  char err[160];
  *out = NULL;
  wchar_t *w = wide_path(path);
  if (!w)
    return KVVM_E_IO;
  /* Shared for everything: the lock is LockFileEx's, and others must be able to probe it. */
  HANDLE h = CreateFileW(w, GENERIC_READ | GENERIC_WRITE,
                         FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                         OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
  free(w);
  if (h == INVALID_HANDLE_VALUE) {
    KVVM_ERR("%s: open lock: %s", path, last_error(err, sizeof err));
    return KVVM_E_IO;
  }
  OVERLAPPED ov = {0};
  DWORD flags = (exclusive ? LOCKFILE_EXCLUSIVE_LOCK : 0) |
                (nonblock ? LOCKFILE_FAIL_IMMEDIATELY : 0);
  if (!LockFileEx(h, flags, 0, MAXDWORD, MAXDWORD, &ov)) {
    DWORD e = GetLastError();
    CloseHandle(h);
    if (e == ERROR_LOCK_VIOLATION || e == ERROR_IO_PENDING)
      return KVVM_E_LOCKED;
    KVVM_ERR("%s: LockFileEx: %s", path, kvvm_win_strerror(e, err, sizeof err));
    return KVVM_E_IO;
  }
  *out = kvvm_xmalloc(sizeof **out);
  (*out)->h = h;
  return KVVM_OK;
}

/* Closing the handle releases its locks. */
void kvvm_lock_close(struct kvvm_lock *l)
{
  if (!l)
    return;
  CloseHandle(l->h);
  free(l);
}

bool kvvm_lock_is_held(const char *path)
{
  HANDLE h = open_existing(path, GENERIC_READ, 0);
  if (h == INVALID_HANDLE_VALUE)
    return false;
  OVERLAPPED ov = {0};
  bool held = false;
  if (LockFileEx(h, LOCKFILE_FAIL_IMMEDIATELY, 0, MAXDWORD, MAXDWORD, &ov))
    UnlockFileEx(h, 0, MAXDWORD, MAXDWORD, &ov);
  else
    held = GetLastError() == ERROR_LOCK_VIOLATION;
  CloseHandle(h);
  return held;
}
