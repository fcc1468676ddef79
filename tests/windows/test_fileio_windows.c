/* fileio_windows.c and seqno_windows.c under wine (or Windows): atomic replace, folders,
 * listings, locks across processes, the trusted-file check, mrseq in the registry read back
 * by a second process. Built by the Makefile against libkvvm.a, run by tests/windows/fileio.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>

#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/seqno.h"
#include "windows/win_int.h"

static int failed, passed, skipped;

#define CHECK(c) check((c), #c, __LINE__)
static char reason[160];

static void check(bool ok, const char *what, int line)
{
  if (ok) {
    passed++;
    return;
  }
  failed++;
  fprintf(stderr, "FAIL line %d: %s (reason: %s)\n", line, what, reason);
}

static char *scratch(const char *name)
{
  char tmp[MAX_PATH];
  DWORD n = GetTempPathA(sizeof tmp, tmp);
  if (n == 0 || n >= sizeof tmp)
    exit(2);
  return kvvm_xasprintf("%skvvm-fileio-%lu-%s", tmp, (unsigned long)GetCurrentProcessId(), name);
}

/* Start this exe again with args, not waiting for it. */
static HANDLE spawn_self(const char *args)
{
  char exe[MAX_PATH];
  GetModuleFileNameA(NULL, exe, sizeof exe);
  char *cmd = kvvm_xasprintf("\"%s\" %s", exe, args);
  STARTUPINFOA si;
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  PROCESS_INFORMATION pi;
  HANDLE h = NULL;
  if (CreateProcessA(NULL, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi)) {
    CloseHandle(pi.hThread);
    h = pi.hProcess;
  }
  free(cmd);
  return h;
}

/* Run this exe again with args; its exit code, or -1. */
static int run_self(const char *args)
{
  HANDLE h = spawn_self(args);
  DWORD code = (DWORD)-1;
  if (h) {
    WaitForSingleObject(h, INFINITE);
    GetExitCodeProcess(h, &code);
    CloseHandle(h);
  }
  return (int)code;
}

static int fill_twice(struct kvvm_wfile *f, void *ctx)
{
  return kvvm_wfile_write(f, ctx, 3) || kvvm_wfile_write(f, ctx, 3) ? -1 : 0;
}

static int fill_fails(struct kvvm_wfile *f, void *ctx)
{
  (void)f;
  (void)ctx;
  return -1;
}

static void atomic_writes(const char *dir)
{
  char *path = kvvm_path_join(dir, "f"), *text = NULL, abc[] = "abc";
  size_t len = 0;
  CHECK(kvvm_file_write_atomic(path, "one", 3, 0600) == KVVM_OK);
  CHECK(kvvm_file_write_atomic(path, "second", 6, 0600) == KVVM_OK);
  CHECK(kvvm_file_read(path, 100, &text, &len) == KVVM_OK && len == 6 && !strcmp(text, "second"));
  free(text);
  CHECK(kvvm_file_write_atomic_with(path, 0600, fill_twice, abc) == KVVM_OK);
  CHECK(kvvm_file_write_atomic_with(path, 0600, fill_fails, NULL) == KVVM_E_IO);
  CHECK(kvvm_file_read(path, 100, &text, NULL) == KVVM_OK && !strcmp(text, "abcabc"));
  free(text);
  CHECK(kvvm_file_read(path, 5, &text, NULL) == KVVM_E_IO && text == NULL);
  CHECK(kvvm_file_read(dir, 100, &text, NULL) == KVVM_E_IO);
  char *missing = kvvm_path_join(dir, "none");
  CHECK(kvvm_file_read(missing, 100, &text, NULL) == KVVM_E_NOENT);
  /* A temp file a crash left is swept; the failed fill above left none. */
  char *stale = kvvm_path_join(dir, KVVM_TEMP_PREFIX "dead");
  CHECK(kvvm_file_write_atomic(stale, "x", 1, 0600) == KVVM_OK);
  CHECK(kvvm_dir_sweep_prefix(dir, KVVM_TEMP_PREFIX) == 1 && !kvvm_path_exists(stale));
  free(stale);
  free(missing);
  free(path);
}

/* The DACL of path as SDDL (its D: part), or "" when it cannot be read. */
static void dacl_of(const char *path, char *out, size_t n)
{
  wchar_t *w = kvvm_win_wide(path), *text = NULL;
  PSECURITY_DESCRIPTOR sd = NULL;
  out[0] = '\0';
  if (w && GetNamedSecurityInfoW(w, SE_FILE_OBJECT, DACL_SECURITY_INFORMATION, NULL, NULL, NULL,
                                 NULL, &sd) == ERROR_SUCCESS &&
      ConvertSecurityDescriptorToStringSecurityDescriptorW(sd, SDDL_REVISION_1,
                                                           DACL_SECURITY_INFORMATION, &text, NULL))
    WideCharToMultiByte(CP_UTF8, 0, text, -1, out, (int)n, NULL, NULL);
  LocalFree(text);
  LocalFree(sd);
  free(w);
}

/* A folder kvvm makes inherits nothing from above (%ProgramData% lets Users add files):
 * SYSTEM and Administrators only, or Users reading too for a mode with other bits. */
static void folders_protected(const char *dir)
{
  char *own = kvvm_path_join(dir, "own"), *shared = kvvm_path_join(dir, "shared"), sddl[512];
  CHECK(kvvm_dir_ensure(own, 0700) == KVVM_OK && kvvm_dir_ensure(shared, 0755) == KVVM_OK);
  dacl_of(own, sddl, sizeof sddl);
  if (strncmp(sddl, "D:P", 3) != 0) {
    printf("skip: a new folder's protected DACL (wine keeps no DACL: read back \"%s\")\n", sddl);
    skipped++;
  } else {
    CHECK(strcmp(sddl, "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)") == 0);
    dacl_of(shared, sddl, sizeof sddl);
    CHECK(strcmp(sddl, "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)") == 0);
  }
  free(shared);
  free(own);
}

static void folders_and_listing(const char *dir)
{
  char *deep = kvvm_xasprintf("%s\\a\\b/c", dir), *a = kvvm_path_join(dir, "a");
  char *file = kvvm_path_join(dir, "f"), **names = NULL;
  struct kvvm_file_info fi;
  CHECK(kvvm_dir_ensure(deep, 0700) == KVVM_OK && kvvm_dir_ensure(deep, 0700) == KVVM_OK);
  CHECK(kvvm_file_info(deep, &fi) == KVVM_OK && fi.is_dir && !fi.is_file);
  char *under_file = kvvm_path_join(file, "x");
  CHECK(kvvm_dir_ensure(file, 0700) == KVVM_E_IO);
  CHECK(kvvm_file_info(file, &fi) == KVVM_OK && fi.is_file && fi.size == 6);
  long long age = (long long)time(NULL) - fi.mtime_ns / 1000000000;
  CHECK(age >= -5 && age < 60);
  CHECK(kvvm_file_info(under_file, &fi) == KVVM_E_NOENT);
  CHECK(kvvm_dir_list(dir, &names) == KVVM_OK && names[0] && names[1] && !names[2]);
  kvvm_strv_free(names);
  CHECK(kvvm_dir_remove(a) == KVVM_E_IO);
  CHECK(kvvm_file_remove(file) == KVVM_OK && kvvm_file_remove(file) == KVVM_OK);
  CHECK(!kvvm_path_exists(file));
  CHECK(kvvm_dir_list(under_file, &names) == KVVM_E_NOENT && names == NULL);
  free(under_file);
  free(file);
  free(a);
  free(deep);
}

static void paths(void)
{
  char *v[] = {kvvm_path_join("C:\\x\\", "\\y"), kvvm_path_dirname("C:\\x\\y"),
               kvvm_path_dirname("C:\\x"), kvvm_path_dirname("z"), kvvm_path_dirname("C:/a/b")};
  CHECK(!strcmp(v[0], "C:\\x\\y"));
  CHECK(!strcmp(v[1], "C:\\x"));
  CHECK(!strcmp(v[2], "C:\\"));
  CHECK(!strcmp(v[3], "."));
  CHECK(!strcmp(v[4], "C:/a"));
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    free(v[i]);
}

/* The second process: the lock is seen as held and cannot be taken. */
static int lock_child(const char *lock)
{
  struct kvvm_lock *l = NULL;
  return kvvm_lock_is_held(lock) && kvvm_lock_open(lock, true, true, &l) == KVVM_E_LOCKED &&
         l == NULL ? 0 : 1;
}

static void locks(const char *dir)
{
  char *lock = kvvm_path_join(dir, "l"), *args = kvvm_xasprintf("lock \"%s\"", lock);
  struct kvvm_lock *l = NULL;
  CHECK(!kvvm_lock_is_held(lock));
  CHECK(kvvm_lock_open(lock, true, true, &l) == KVVM_OK && l != NULL);
  CHECK(run_self(args) == 0);
  kvvm_lock_close(l);
  kvvm_lock_close(NULL);
  CHECK(!kvvm_lock_is_held(lock));
  CHECK(run_self(args) == 1);
  free(args);
  free(lock);
}

/* The second process: hold path open as the agent reads a status file (no
 * FILE_SHARE_DELETE), tell the parent through the ready file, let go after ms. */
static int hold_child(const char *path, const char *ready, int ms)
{
  wchar_t *w = kvvm_win_wide(path);
  HANDLE h = CreateFileW(w, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
                         OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
  free(w);
  if (h == INVALID_HANDLE_VALUE || kvvm_file_write_atomic(ready, "1", 1, 0600) != KVVM_OK)
    return 1;
  Sleep((DWORD)ms);
  CloseHandle(h);
  return 0;
}


/* A status file another process holds open (without FILE_SHARE_DELETE) is replaced once it
 * lets go, within the bounded wait; held past the bound, the write fails and says so. */
static void held_target(const char *dir, int hold_ms, bool want_ok)
{
  char *path = kvvm_path_join(dir, "0.status"), *ready = kvvm_path_join(dir, "ready");
  char *args = kvvm_xasprintf("hold \"%s\" \"%s\" %d", path, ready, hold_ms), *text = NULL;
  kvvm_file_remove(ready);
  CHECK(kvvm_file_write_atomic(path, "old", 3, 0600) == KVVM_OK);
  HANDLE child = spawn_self(args);
  for (int i = 0; i < 500 && !kvvm_path_exists(ready); i++)
    Sleep(10);
  CHECK(child != NULL && kvvm_path_exists(ready));
  ULONGLONG t0 = GetTickCount64();
  enum kvvm_err rc = kvvm_file_write_atomic(path, "new", 3, 0600);
  ULONGLONG took = GetTickCount64() - t0;
  printf("held %d ms: write %s after %llu ms\n", hold_ms, rc == KVVM_OK ? "succeeded" : "failed",
         took);
  CHECK((rc == KVVM_OK) == want_ok);
  CHECK(kvvm_file_read(path, 100, &text, NULL) == KVVM_OK &&
        !strcmp(text, want_ok ? "new" : "old"));
  free(text);
  if (child) {
    WaitForSingleObject(child, INFINITE);
    CloseHandle(child);
  }
  CHECK(kvvm_dir_sweep_prefix(dir, KVVM_TEMP_PREFIX) == 0);   /* no temp file left */
  free(args);
  free(ready);
  free(path);
}

/* Owner Administrators, and only SYSTEM and Administrators may do anything with it. */
static bool make_admin_only(const char *path)
{
  PSECURITY_DESCRIPTOR sd = NULL;
  PACL dacl = NULL;
  PSID admins = NULL;
  BOOL present = FALSE, defaulted = FALSE;
  SID_IDENTIFIER_AUTHORITY nt = {SECURITY_NT_AUTHORITY};
  wchar_t *w = kvvm_xmalloc((strlen(path) + 1) * sizeof *w);
  MultiByteToWideChar(CP_UTF8, 0, path, -1, w, (int)strlen(path) + 1);
  bool ok = ConvertStringSecurityDescriptorToSecurityDescriptorW(
                L"D:P(A;;FA;;;SY)(A;;FA;;;BA)", SDDL_REVISION_1, &sd, NULL) &&
            GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted) &&
            AllocateAndInitializeSid(&nt, 2, SECURITY_BUILTIN_DOMAIN_RID,
                                     DOMAIN_ALIAS_RID_ADMINS, 0, 0, 0, 0, 0, 0, &admins) &&
            SetNamedSecurityInfoW(w, SE_FILE_OBJECT,
                                  OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION |
                                      PROTECTED_DACL_SECURITY_INFORMATION,
                                  admins, NULL, dacl, NULL) == ERROR_SUCCESS;
  if (admins)
    FreeSid(admins);
  LocalFree(sd);
  free(w);
  return ok;
}

/* Did the owner set by make_admin_only stick? Wine 8 keeps no owner or DACL for a file
 * (every file reads back as owned by the current user), Windows does. */
static bool owner_kept(const char *path)
{
  PSID owner = NULL;
  PSECURITY_DESCRIPTOR sd = NULL;
  wchar_t *w = kvvm_xmalloc((strlen(path) + 1) * sizeof *w);
  MultiByteToWideChar(CP_UTF8, 0, path, -1, w, (int)strlen(path) + 1);
  bool kept = GetNamedSecurityInfoW(w, SE_FILE_OBJECT, OWNER_SECURITY_INFORMATION, &owner,
                                    NULL, NULL, NULL, &sd) == ERROR_SUCCESS &&
              IsWellKnownSid(owner, WinBuiltinAdministratorsSid);
  LocalFree(sd);
  free(w);
  return kept;
}

/* Allow Users to write it: refused, with the reason. */
static void users_may_write(const char *path)
{
  char *pem = NULL;
  wchar_t *w = kvvm_xmalloc((strlen(path) + 1) * sizeof *w);
  MultiByteToWideChar(CP_UTF8, 0, path, -1, w, (int)strlen(path) + 1);
  PSECURITY_DESCRIPTOR sd = NULL;
  PACL dacl = NULL;
  BOOL present = FALSE, defaulted = FALSE;
  CHECK(ConvertStringSecurityDescriptorToSecurityDescriptorW(
            L"D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FW;;;BU)", SDDL_REVISION_1, &sd, NULL) &&
        GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted) &&
        SetNamedSecurityInfoW(w, SE_FILE_OBJECT,
                              DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                              NULL, NULL, dacl, NULL) == ERROR_SUCCESS);
  CHECK(kvvm_file_read_trusted(path, 1024, &pem, reason, sizeof reason) == KVVM_E_IO);
  CHECK(strstr(reason, "writable by accounts other than") != NULL);
  LocalFree(sd);
  free(w);
}

static void trusted(const char *dir)
{
  char *path = kvvm_path_join(dir, "ca.pem"), *pem = NULL;
  CHECK(kvvm_file_read_trusted(dir, 1024, &pem, reason, sizeof reason) == KVVM_E_IO);
  CHECK(strstr(reason, "not a regular file") != NULL);
  CHECK(kvvm_file_read_trusted(path, 1024, &pem, reason, sizeof reason) == KVVM_E_IO);
  CHECK(strstr(reason, "cannot be opened") != NULL);
  CHECK(kvvm_file_write_atomic(path, "PEM", 3, 0600) == KVVM_OK);
  /* Created by this (non-SYSTEM) user: refused for its owner. */
  CHECK(kvvm_file_read_trusted(path, 1024, &pem, reason, sizeof reason) == KVVM_E_IO);
  CHECK(strstr(reason, "is owned by S-1-") != NULL && pem == NULL);
  CHECK(make_admin_only(path));
  if (!owner_kept(path)) {
    printf("skip: the trusted-file checks past the owner (wine keeps no file owner)\n");
    skipped++;
    free(path);
    return;
  }
  CHECK(kvvm_file_read_trusted(path, 1024, &pem, reason, sizeof reason) == KVVM_OK &&
        !strcmp(pem, "PEM"));
  free(pem);
  CHECK(kvvm_file_read_trusted(path, 2, &pem, reason, sizeof reason) == KVVM_E_IO);
  CHECK(strstr(reason, "larger than 2 bytes") != NULL && pem == NULL);
  users_may_write(path);
  free(path);
}

#define ROOT "C:\\Packages\\Plugins\\Kvvm.Test\\9.8.7"

static void mrseq(void)
{
  long seq = -1;
  CHECK(kvvm_seqno_read_mrseq(ROOT "-absent", &seq) == KVVM_E_NOENT && seq == -1);
  CHECK(kvvm_seqno_write_mrseq(ROOT "\\", 41) == KVVM_OK);
  CHECK(kvvm_seqno_write_mrseq(ROOT, 42) == KVVM_OK);
  CHECK(run_self("seq") == 42);   /* another process reads it back */
  HKEY h;
  CHECK(RegOpenKeyExA(HKEY_LOCAL_MACHINE,
                      "Software\\Microsoft\\Windows Azure\\HandlerState\\Kvvm.Test_9.8.7", 0,
                      KEY_READ, &h) == ERROR_SUCCESS);
  RegCloseKey(h);
  CHECK(kvvm_seqno_write_mrseq("C:\\", 1) == KVVM_E_SEQNO);
  RegDeleteKeyA(HKEY_LOCAL_MACHINE,
                "Software\\Microsoft\\Windows Azure\\HandlerState\\Kvvm.Test_9.8.7");
}

int main(int argc, char **argv)
{
  long seq = -1;
  if (argc == 3 && !strcmp(argv[1], "lock"))
    return lock_child(argv[2]);
  if (argc == 5 && !strcmp(argv[1], "hold"))
    return hold_child(argv[2], argv[3], atoi(argv[4]));
  if (argc == 2 && !strcmp(argv[1], "seq"))
    return kvvm_seqno_read_mrseq(ROOT, &seq) == KVVM_OK ? (int)seq : -1;
  char *dir = scratch("d");
  CHECK(kvvm_dir_ensure(dir, 0700) == KVVM_OK);
  paths();
  atomic_writes(dir);
  folders_and_listing(dir);
  folders_protected(dir);
  locks(dir);
  held_target(dir, 1500, true);
  held_target(dir, 8000, false);
  trusted(dir);
  mrseq();
  char *cmd = kvvm_xasprintf("rmdir /s /q \"%s\" >NUL 2>&1", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "note: %s left behind\n", dir);
  free(cmd);
  free(dir);
  printf("fileio_windows: %d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed ? 1 : 0;
}
