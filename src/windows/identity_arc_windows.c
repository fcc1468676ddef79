/* Azure Arc on Windows: the checks before a challenge file's content is sent back to the
 * agent, as identity_arc_linux.c makes them. The content is a credential for the machine's
 * identity, so it is read only from a file the agent made (directly inside its Tokens
 * folder, reached through no reparse point, a regular file of a key's size) and sent only
 * to the agent (the socket listening on the endpoint belongs to the himds service). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <iphlpapi.h>

#include "kvvm/identity.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "vault/identity_int.h"
#include "windows/win_int.h"

#define TOKENS_SUB "AzureConnectedMachineAgent\\Tokens"
#define ARC_SERVICE L"himds"

const char *kvvm_identity_arc_tokens_dir(void)
{
  static char *dir;
  static bool said;
  const char *test = getenv("KVVM_ARC_TOKENS_DIR");
  if (test && *test) {
    if (!said)
      KVVM_WARN("test overrides active: KVVM_ARC_TOKENS_DIR=%s", test);
    said = true;
    return test;
  }
  if (!dir)
    dir = kvvm_xasprintf("%s\\" TOKENS_SUB, kvvm_win_program_data());
  return dir;
}

/* The path Windows resolves an open handle to (every link and junction followed), or NULL. */
static wchar_t *final_path(HANDLE h)
{
  DWORD n = GetFinalPathNameByHandleW(h, NULL, 0, FILE_NAME_NORMALIZED | VOLUME_NAME_DOS);
  wchar_t *w = n ? kvvm_xmalloc((n + 1) * sizeof *w) : NULL;
  if (w && GetFinalPathNameByHandleW(h, w, n + 1, FILE_NAME_NORMALIZED | VOLUME_NAME_DOS) > n) {
    free(w);
    w = NULL;
  }
  return w;
}

static HANDLE open_path(const char *path, DWORD access, DWORD flags)
{
  wchar_t *w = kvvm_win_wide(path);
  HANDLE h = w ? CreateFileW(w, access, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                             NULL, OPEN_EXISTING, flags, NULL)
               : INVALID_HANDLE_VALUE;
  free(w);
  return h;
}

/* Is file a direct child of dir, both as Windows resolves them? Names ignore case. */
static bool directly_inside(const wchar_t *file, const wchar_t *dir)
{
  size_t n = wcslen(dir);
  return _wcsnicmp(file, dir, n) == 0 && file[n] == L'\\' && file[n + 1] &&
         !wcschr(file + n + 1, L'\\');
}

static bool ends_in_key(const wchar_t *w)
{
  size_t n = wcslen(w);
  return n > 4 && _wcsicmp(w + n - 4, L".key") == 0;
}

/* Where the opened file may not be read, or "" when it may. dirh: the Tokens folder. */
static void path_fault(HANDLE fh, HANDLE dirh, const char *dir, char *reason, size_t n)
{
  wchar_t *f = final_path(fh), *d = final_path(dirh);
  reason[0] = '\0';
  if (!f || !d)
    snprintf(reason, n, "cannot be resolved");
  else if (!directly_inside(f, d))
    snprintf(reason, n, "is not a file in the Arc tokens folder %.100s", dir);
  else if (!ends_in_key(f))
    snprintf(reason, n, "does not end in .key");
  free(f);
  free(d);
}

static void file_fault(HANDLE fh, DWORD *size, char *reason, size_t n)
{
  BY_HANDLE_FILE_INFORMATION bi;
  reason[0] = '\0';
  if (!GetFileInformationByHandle(fh, &bi)) {
    snprintf(reason, n, "cannot be examined");
    return;
  }
  unsigned long long sz = (unsigned long long)bi.nFileSizeHigh << 32 | bi.nFileSizeLow;
  if (bi.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT)
    snprintf(reason, n, "is a symbolic link or another reparse point");
  else if (bi.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY || GetFileType(fh) != FILE_TYPE_DISK)
    snprintf(reason, n, "is not a regular file");
  else if (sz < 1 || sz > KVVM_ARC_KEY_MAX)
    snprintf(reason, n, "holds %llu bytes (expected 1 to %d)", sz, KVVM_ARC_KEY_MAX);
  *size = (DWORD)sz;
}

/* One read of the size examined: a file that grew or shrank meanwhile is refused. */
static void read_once(HANDLE fh, DWORD size, char **key, size_t *len, char *reason, size_t n)
{
  char *buf = kvvm_xmalloc((size_t)size + 1);
  DWORD got = 0;
  bool ok = ReadFile(fh, buf, size, &got, NULL) && got == size;
  *len = ok ? got : 0;
  buf[*len] = '\0';
  if (!ok || !kvvm_arc_key_text_ok(buf, len)) {
    snprintf(reason, n, "could not be read whole, or holds control characters");
    kvvm_free_secret(buf, (size_t)size + 1);
    return;
  }
  *key = buf;
}

enum kvvm_err kvvm_identity_arc_read_key(const char *realm_path, const char *tokens_dir,
                                         char **key, size_t *len, char *why, size_t whylen)
{
  char reason[160] = "";
  DWORD size = 0;
  *key = NULL;
  *len = 0;
  /* The file itself, not what a link in its place points to: a link is refused below.
   * Backup semantics let a folder open, to be refused as one. */
  HANDLE fh = open_path(realm_path, GENERIC_READ,
                        FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS);
  HANDLE dh = fh == INVALID_HANDLE_VALUE
                  ? INVALID_HANDLE_VALUE
                  : open_path(tokens_dir, FILE_READ_ATTRIBUTES, FILE_FLAG_BACKUP_SEMANTICS);
  if (dh == INVALID_HANDLE_VALUE) {
    char err[120];
    snprintf(reason, sizeof reason, "cannot be opened: %s",
             kvvm_win_strerror(GetLastError(), err, sizeof err));
  }
  if (!reason[0])
    file_fault(fh, &size, reason, sizeof reason);
  if (!reason[0])
    path_fault(fh, dh, tokens_dir, reason, sizeof reason);
  if (!reason[0])
    read_once(fh, size, key, len, reason, sizeof reason);
  if (fh != INVALID_HANDLE_VALUE)
    CloseHandle(fh);
  if (dh != INVALID_HANDLE_VALUE)
    CloseHandle(dh);
  if (!reason[0])
    return KVVM_OK;
  snprintf(why, whylen, "the Arc agent's challenge file %.200s %s", realm_path, reason);
  return KVVM_E_AUTH;
}

/* The himds service's process id, or 0 when it does not run here. */
static DWORD arc_pid(void)
{
  SC_HANDLE scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
  SC_HANDLE svc = scm ? OpenServiceW(scm, ARC_SERVICE, SERVICE_QUERY_STATUS) : NULL;
  SERVICE_STATUS_PROCESS sp;
  DWORD need, pid = 0;
  if (svc && QueryServiceStatusEx(svc, SC_STATUS_PROCESS_INFO, (BYTE *)&sp, sizeof sp, &need) &&
      sp.dwCurrentState == SERVICE_RUNNING)
    pid = sp.dwProcessId;
  if (svc)
    CloseServiceHandle(svc);
  if (scm)
    CloseServiceHandle(scm);
  return pid;
}

/* The listening sockets of one family's table, as the system reports them. */
static void *listeners(ULONG family)
{
  DWORD size = 0;
  void *t = NULL;
  for (int i = 0; i < 3; i++) {
    if (GetExtendedTcpTable(t, &size, FALSE, family, TCP_TABLE_OWNER_PID_LISTENER, 0) ==
        NO_ERROR)
      return t;
    free(t);
    t = size ? kvvm_xmalloc(size) : NULL;
  }
  free(t);
  return NULL;
}

/* One socket: on port, at the peer's address or every address? Counts it, and a foreign
 * owner's pid goes to *bad. */
static void judge(const void *addr, const void *any, const unsigned char *peer, size_t alen,
                  DWORD lport, long port, DWORD owner, DWORD arc, int *found, long *bad)
{
  if (ntohs((u_short)lport) != port || (memcmp(addr, peer, alen) && memcmp(addr, any, alen)))
    return;
  (*found)++;
  if (!arc || owner != arc)   /* wine reports every owner as pid 0: never the agent */
    *bad = (long)owner;
}

bool kvvm_identity_arc_listener_ok(const char *ip, long port, char *why, size_t whylen)
{
  static const unsigned char any[16];
  unsigned char peer[16];
  bool v6 = ip && strchr(ip, ':');
  long bad = -1;
  int found = 0;
  if (!ip || inet_pton(v6 ? AF_INET6 : AF_INET, ip, peer) != 1) {
    snprintf(why, whylen, "the identity endpoint's address is unknown");
    return false;
  }
  DWORD arc = arc_pid();
  void *t = listeners(v6 ? AF_INET6 : AF_INET);
  if (t && v6) {
    MIB_TCP6TABLE_OWNER_PID *t6 = t;
    for (DWORD i = 0; i < t6->dwNumEntries; i++)
      judge(t6->table[i].ucLocalAddr, any, peer, 16, t6->table[i].dwLocalPort, port,
            t6->table[i].dwOwningPid, arc, &found, &bad);
  } else if (t) {
    MIB_TCPTABLE_OWNER_PID *t4 = t;
    for (DWORD i = 0; i < t4->dwNumEntries; i++)
      judge(&t4->table[i].dwLocalAddr, any, peer, 4, t4->table[i].dwLocalPort, port,
            t4->table[i].dwOwningPid, arc, &found, &bad);
  }
  free(t);
  if (found && bad < 0)
    return true;
  if (!found)
    snprintf(why, whylen, "no listening socket on %s port %ld was found", ip, port);
  else
    snprintf(why, whylen, "the socket listening on %s port %ld belongs to process %ld, not "
             "the himds service; it is not the Arc agent", ip, port, bad);
  return false;
}
