/* Azure Arc on Linux: the checks before a realm file's content is sent back to the agent.
 * The content is a credential for the machine's identity, so we send it only to the agent
 * (a socket owned by root or himds, since any user may listen on a free loopback port) and
 * only from a file the agent made (inside its tokens folder, owned by root or himds).
 * keyvault.md §4.2; the Azure SDKs' azure_arc.py checks the same folder, suffix and size. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvvm/identity.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "vault/identity_int.h"

#define TOKENS_DIR "/var/opt/azcmagent/tokens"
#define ARC_ACCOUNT "himds"
#define TCP_LISTEN 0x0A  /* the st column of /proc/net/tcp for a listening socket */

const char *kvvm_identity_arc_tokens_dir(void)
{
  static bool said;
  const char *dir = getenv("KVVM_ARC_TOKENS_DIR");
  if (!dir || !*dir)
    return TOKENS_DIR;
  if (!said)
    KVVM_WARN("test overrides active: KVVM_ARC_TOKENS_DIR=%s", dir);
  said = true;
  return dir;
}

static bool arc_uid(uid_t uid)
{
  struct passwd *pw = getpwnam(ARC_ACCOUNT);
  return uid == 0 || (pw && pw->pw_uid == uid);
}

static bool arc_gid(gid_t gid)
{
  struct group *gr = getgrnam(ARC_ACCOUNT);
  return gr && gr->gr_gid == gid;
}

static bool has_suffix(const char *s, const char *suffix)
{
  size_t n = strlen(s), m = strlen(suffix);
  return n > m && strcmp(s + n - m, suffix) == 0;
}

/* Where the resolved path may not be read, or "" when it may. */
static void path_fault(const char *real, const char *dir, char *reason, size_t n)
{
  size_t dn = strlen(dir);
  reason[0] = '\0';
  if (strncmp(real, dir, dn) != 0 || real[dn] != '/' || strchr(real + dn + 1, '/'))
    snprintf(reason, n, "is not a file in the Arc tokens folder %.100s", dir);
  else if (!has_suffix(real, ".key"))
    snprintf(reason, n, "does not end in .key");
}

static void file_fault(const struct stat *st, char *reason, size_t n)
{
  reason[0] = '\0';
  if (!S_ISREG(st->st_mode))
    snprintf(reason, n, "is not a regular file");
  else if (!arc_uid(st->st_uid) && !arc_gid(st->st_gid))
    snprintf(reason, n, "is owned by uid %u gid %u, neither root nor " ARC_ACCOUNT,
             (unsigned)st->st_uid, (unsigned)st->st_gid);
  else if (st->st_size < 1 || st->st_size > KVVM_ARC_KEY_MAX)
    snprintf(reason, n, "holds %lld bytes (expected 1 to %d)", (long long)st->st_size,
             KVVM_ARC_KEY_MAX);
}

static void read_key_fd(int fd, size_t size, char **key, size_t *len, char *reason, size_t n)
{
  char *buf = kvvm_xmalloc(size + 1);
  ssize_t r;
  while ((r = read(fd, buf, size)) < 0 && errno == EINTR)
    ;
  *len = r > 0 ? (size_t)r : 0;
  buf[*len] = '\0';
  if ((size_t)r != size || !kvvm_arc_key_text_ok(buf, len)) {
    snprintf(reason, n, "could not be read whole, or holds control characters");
    kvvm_free_secret(buf, size + 1);
    return;
  }
  *key = buf;
}

enum kvvm_err kvvm_identity_arc_read_key(const char *realm_path, const char *tokens_dir,
                                         char **key, size_t *len, char *why, size_t whylen)
{
  char reason[160] = "", dir[PATH_MAX], real[PATH_MAX];
  struct stat st;
  int fd = -1;
  *key = NULL;
  if (!realpath(tokens_dir, dir) || !realpath(realm_path, real))
    snprintf(reason, sizeof reason, "cannot be resolved: %s", strerror(errno));
  else
    path_fault(real, dir, reason, sizeof reason);
  /* Opened by the resolved name without following a link: a swap after realpath fails. */
  if (!reason[0] && (fd = open(real, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0)
    snprintf(reason, sizeof reason, "cannot be opened: %s", strerror(errno));
  if (fd >= 0 && fstat(fd, &st) != 0)
    snprintf(reason, sizeof reason, "cannot be examined: %s", strerror(errno));
  else if (fd >= 0)
    file_fault(&st, reason, sizeof reason);
  if (fd >= 0 && !reason[0])
    read_key_fd(fd, (size_t)st.st_size, key, len, reason, sizeof reason);
  if (fd >= 0)
    close(fd);
  if (!reason[0])
    return KVVM_OK;
  snprintf(why, whylen, "the Arc agent's challenge file %.200s %s", realm_path, reason);
  return KVVM_E_AUTH;
}

/* An address as 16 bytes, IPv4 mapped into IPv6, so both tables compare alike. */
static bool addr16(const char *text, unsigned char out[16])
{
  struct in_addr a4;
  memset(out, 0, 16);
  if (inet_pton(AF_INET6, text, out) == 1)
    return true;
  if (inet_pton(AF_INET, text, &a4) != 1)
    return false;
  out[10] = out[11] = 0xff;
  memcpy(out + 12, &a4, 4);
  return true;
}

/* /proc/net/tcp{,6} print each 32-bit word of the address as a native-order hex number. */
static void proc_addr16(const char *hex, unsigned char out[16])
{
  size_t words = strlen(hex) / 8;
  memset(out, 0, 16);
  if (words == 1) {
    out[10] = out[11] = 0xff;
  }
  for (size_t i = 0; i < words && i < 4; i++) {
    char w[9];
    memcpy(w, hex + 8 * i, 8);
    w[8] = '\0';
    unsigned v = (unsigned)strtoul(w, NULL, 16);
    memcpy(out + (words == 1 ? 12 : 4 * i), &v, 4);
  }
}

static bool addr_any(const unsigned char a[16])
{
  static const unsigned char any6[16], any4[16] = {[10] = 0xff, [11] = 0xff};
  return !memcmp(a, any6, 16) || !memcmp(a, any4, 16);
}

/* Counts the listening sockets on peer:port in one table; *bad gets the uid of a foreign one. */
static int scan_table(const char *path, const unsigned char peer[16], long port, long *bad)
{
  FILE *f = fopen(path, "re");
  char line[512], hex[33];
  unsigned lport, st, uid;
  int found = 0;
  if (!f)
    return 0;
  while (fgets(line, sizeof line, f)) {
    unsigned char a[16];
    if (sscanf(line, " %*u: %32[0-9A-Fa-f]:%X %*s %X %*s %*s %*s %u", hex, &lport, &st,
               &uid) != 4 || st != TCP_LISTEN || (long)lport != port)
      continue;
    proc_addr16(hex, a);
    if (memcmp(a, peer, 16) != 0 && !addr_any(a))
      continue;
    found++;
    if (!arc_uid((uid_t)uid))
      *bad = uid;
  }
  fclose(f);
  return found;
}

bool kvvm_identity_arc_listener_ok(const char *ip, long port, char *why, size_t whylen)
{
  unsigned char peer[16];
  long bad = -1;
  if (!ip || !addr16(ip, peer)) {
    snprintf(why, whylen, "the identity endpoint's address is unknown");
    return false;
  }
  int found = scan_table("/proc/net/tcp", peer, port, &bad) +
              scan_table("/proc/net/tcp6", peer, port, &bad);
  if (found && bad < 0)
    return true;
  if (!found)
    snprintf(why, whylen, "no listening socket on %s port %ld was found", ip, port);
  else
    snprintf(why, whylen, "the socket listening on %s port %ld belongs to uid %ld, neither "
             "root nor " ARC_ACCOUNT "; it is not the Arc agent", ip, port, bad);
  return false;
}
