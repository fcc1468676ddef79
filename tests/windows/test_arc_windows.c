/* identity_arc_windows.c under wine (or Windows): which challenge files are read (directly
 * inside the Tokens folder as Windows resolves it, .key, a regular file of 1..4096 bytes,
 * no control characters) and which listeners count as the Arc agent's. Built by the Makefile
 * against libkvvm.a, run by tests/windows/arc.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>

#include "kvvm/identity.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"

static int failed, passed, skipped;
static char why[400];

#define CHECK(c) check((c), #c, __LINE__)

static void check(bool ok, const char *what, int line)
{
  if (ok) {
    passed++;
    return;
  }
  failed++;
  fprintf(stderr, "FAIL line %d: %s (why: %s)\n", line, what, why);
}

static char base[MAX_PATH];

static char *at(const char *rel)
{
  return kvvm_xasprintf("%s\\%s", base, rel);
}

static void put(const char *rel, const char *data, size_t n)
{
  char *p = at(rel);
  FILE *f = fopen(p, "wb");
  if (!f || fwrite(data, 1, n, f) != n)
    exit(2);
  fclose(f);
  free(p);
}

/* Read rel (relative to base) with Tokens as the folder; the key or NULL. */
static enum kvvm_err read_key(const char *rel, char **key, size_t *len)
{
  char *p = at(rel), *dir = at("Tokens");
  why[0] = '\0';
  enum kvvm_err rc = kvvm_identity_arc_read_key(p, dir, key, len, why, sizeof why);
  free(dir);
  free(p);
  return rc;
}

static bool refused(const char *rel, const char *words)
{
  char *key = (char *)1;
  size_t len = 9;
  return read_key(rel, &key, &len) == KVVM_E_AUTH && key == NULL && strstr(why, words);
}

static void key_files(void)
{
  char *key = NULL, big[5000];
  size_t len = 0;
  CHECK(read_key("Tokens\\a.key", &key, &len) == KVVM_OK && key && len == 6 &&
        !strcmp(key, "secret"));
  kvvm_free_secret(key, len);
  key = NULL;
  CHECK(read_key("Tokens\\..\\Tokens\\.\\a.KEY", &key, &len) == KVVM_OK && key);
  kvvm_free_secret(key, len);
  CHECK(refused("Tokens\\..\\outside.key", "is not a file in the Arc tokens folder"));
  CHECK(refused("Tokens\\sub\\b.key", "is not a file in the Arc tokens folder"));
  CHECK(refused("Tokens\\a.txt", "does not end in .key"));
  CHECK(refused("Tokens\\dir.key", "is not a regular file"));
  CHECK(refused("Tokens\\none.key", "cannot be opened"));
  CHECK(refused("Tokens\\empty.key", "holds 0 bytes"));
  memset(big, 'k', sizeof big);
  put("Tokens\\big.key", big, sizeof big);
  CHECK(refused("Tokens\\big.key", "holds 5000 bytes"));
  CHECK(refused("Tokens\\ctl.key", "control characters"));
}

/* A link inside the folder to a file outside: refused as a link, whatever it points to. */
static void links(void)
{
  char *link = at("Tokens\\link.key"), *target = at("outside.key");
  wchar_t wl[MAX_PATH], wt[MAX_PATH];
  MultiByteToWideChar(CP_UTF8, 0, link, -1, wl, MAX_PATH);
  MultiByteToWideChar(CP_UTF8, 0, target, -1, wt, MAX_PATH);
  if (!CreateSymbolicLinkW(wl, wt, 0)) {
    printf("skip: symbolic links (CreateSymbolicLinkW failed: %lu)\n", GetLastError());
    skipped++;
  } else {
    /* Windows: "is a symbolic link"; wine's links (Unix ones) do not even open. */
    CHECK(refused("Tokens\\link.key", ""));
    printf("link to a file outside: %s\n", why);
  }
  free(target);
  free(link);
}

static void default_folder(void)
{
  SetEnvironmentVariableA("KVVM_ARC_TOKENS_DIR", NULL);
  _putenv("KVVM_ARC_TOKENS_DIR=");
  const char *d = kvvm_identity_arc_tokens_dir();
  printf("tokens folder: %s\n", d);
  CHECK(!strcmp(d, "C:\\ProgramData\\AzureConnectedMachineAgent\\Tokens"));
}

/* Nothing listening, then this test's own socket: neither is the himds service's. */
static void listener(void)
{
  WSADATA wd;
  struct sockaddr_in a;
  int alen = sizeof a;
  CHECK(WSAStartup(MAKEWORD(2, 2), &wd) == 0);
  SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(s != INVALID_SOCKET && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &alen) == 0);
  long port = ntohs(a.sin_port);
  CHECK(!kvvm_identity_arc_listener_ok("127.0.0.1", port, why, sizeof why) &&
        strstr(why, "no listening socket"));
  CHECK(listen(s, 1) == 0);
  bool ok = kvvm_identity_arc_listener_ok("127.0.0.1", port, why, sizeof why);
  printf("own listener on %ld: %s\n", port, ok ? "accepted" : why);
  CHECK(!ok && strstr(why, "not the himds service"));
  CHECK(!kvvm_identity_arc_listener_ok("nonsense", port, why, sizeof why));
  closesocket(s);
  WSACleanup();
}

int main(void)
{
  char tmp[MAX_PATH];
  GetTempPathA(sizeof tmp, tmp);
  snprintf(base, sizeof base, "%skvvm-arc-%lu", tmp, GetCurrentProcessId());
  char *dirs[] = {at(""), at("Tokens"), at("Tokens\\sub"), at("Tokens\\dir.key")};
  for (size_t i = 0; i < 4; i++) {
    CreateDirectoryA(dirs[i], NULL);
    free(dirs[i]);
  }
  put("Tokens\\a.key", "secret\r\n", 8);
  put("Tokens\\a.txt", "secret", 6);
  put("Tokens\\sub\\b.key", "secret", 6);
  put("Tokens\\empty.key", "", 0);
  put("Tokens\\ctl.key", "se\x01" "cret", 7);
  put("outside.key", "secret", 6);
  key_files();
  links();
  default_folder();
  listener();
  char *cmd = kvvm_xasprintf("rmdir /s /q \"%s\" >NUL 2>&1", base);
  system(cmd);
  free(cmd);
  printf("arc_windows: %d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed ? 1 : 0;
}
