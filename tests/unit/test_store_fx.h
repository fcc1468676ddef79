/* Fixtures shared by the store, ACL, hooks and crash tests: certificates made at test time
 * with the openssl CLI (EC P-256, so it takes well under a second), certificate settings,
 * shell helpers, test users and groups (kvvmt-*), and reading a file as another user. */
#ifndef TEST_STORE_FX_H
#define TEST_STORE_FX_H

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kvvm/certmat.h"
#include "kvvm/fileio.h"
#include "kvvm/mem.h"
#include "kvvm/settings.h"

static inline int fx_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int fx_sh(const char *fmt, ...)
{
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  return system(cmd);
}

/* Output of a shell command (first 64 KiB), as a new string. */
static inline char *fx_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline char *fx_out(const char *fmt, ...)
{
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  FILE *p = popen(cmd, "r");
  char *buf = kvvm_xcalloc(65536, 1);
  size_t n = p ? fread(buf, 1, 65535, p) : 0;
  buf[n] = '\0';
  if (p)
    pclose(p);
  return buf;
}

/* A CA and leaves a and b (same SANs: a renewal), c (other SANs); <x>.pem holds the leaf,
 * the CA and the key, as Key Vault's PEM secrets do. */
static inline int fx_gen(const char *dir)
{
  return fx_sh(
      "set -e; cd '%s'; "
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
      "  -subj /CN=kvvm-test-ca -days 30 -addext basicConstraints=critical,CA:TRUE "
      "  -out ca.crt 2>/dev/null; "
      "for x in a:a b:a c:c; do n=${x%%:*}; s=${x#*:}; "
      "  printf 'subjectAltName=DNS:%%s.example.com,DNS:www.%%s.example.com\\n' $s $s >$n.ext; "
      "  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $n.key "
      "    -subj /CN=$s.example.com -out $n.csr 2>/dev/null; "
      "  openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -set_serial $(od -An -N4 -tu4 "
      "    /dev/urandom) -days 20 -extfile $n.ext -out $n.crt 2>/dev/null; "
      "  cat $n.crt ca.crt $n.key >$n.pem; done",
      dir);
}

static inline struct kvvm_bundle *fx_bundle(const char *dir, const char *name)
{
  char *path = kvvm_xasprintf("%s/%s.pem", dir, name), *text = NULL, why[256];
  size_t len = 0;
  struct kvvm_bundle *b = NULL;
  if (kvvm_file_read(path, 1 << 20, &text, &len) != KVVM_OK ||
      kvvm_certmat_from_pem(text, len, &b, why, sizeof why) != KVVM_OK)
    fprintf(stderr, "  fixture %s unusable\n", path);
  free(text);
  free(path);
  return b;
}

/* Settings of one certificate, as the settings module would make them. */
static inline struct kvvm_cert_cfg fx_cc(const char *secret, const char *store_dir,
                                         const char *link)
{
  struct kvvm_cert_cfg cc;
  memset(&cc, 0, sizeof cc);
  cc.url = kvvm_xasprintf("https://kvt.vault.azure.net/secrets/%s", secret);
  cc.vault_host = kvvm_xstrdup("kvt.vault.azure.net");
  cc.vault_name = kvvm_xstrdup("kvt");
  cc.secret_name = kvvm_xstrdup(secret);
  cc.store_dir = kvvm_xstrdup(store_dir);
  cc.link_name = kvvm_xstrdup(link);
  cc.accounts = kvvm_xcalloc(1, sizeof *cc.accounts);
  return cc;
}

static inline void fx_cc_acl(struct kvvm_cert_cfg *cc, const char *user, const char *group)
{
  cc->acls = kvvm_xrealloc(cc->acls, (cc->n_acls + 1) * sizeof *cc->acls);
  cc->acls[cc->n_acls].user = kvvm_xstrdup(user);
  cc->acls[cc->n_acls++].group = kvvm_xstrdup(group);
}

static inline void fx_cc_clear_acls(struct kvvm_cert_cfg *cc)
{
  for (size_t i = 0; i < cc->n_acls; i++) {
    free(cc->acls[i].user);
    free(cc->acls[i].group);
  }
  free(cc->acls);
  cc->acls = NULL;
  cc->n_acls = 0;
}

static inline void fx_cc_free(struct kvvm_cert_cfg *cc)
{
  free(cc->url);
  free(cc->vault_host);
  free(cc->vault_name);
  free(cc->secret_name);
  free(cc->store_dir);
  free(cc->link_name);
  kvvm_strv_free(cc->accounts);
  fx_cc_clear_acls(cc);
}

/* kvvmt-u1, kvvmt-u2 (in kvvmt-g1), kvvmt-u3 (no grants), kvvmt-g1. */
static inline void fx_users_del(void)
{
  fx_sh("for u in kvvmt-u1 kvvmt-u2 kvvmt-u3; do userdel $u 2>/dev/null; done; "
        "groupdel kvvmt-g1 2>/dev/null; true");
}

static inline int fx_users_add(void)
{
  fx_users_del();
  return fx_sh("groupadd -r kvvmt-g1 && useradd -r -M -s /usr/sbin/nologin kvvmt-u1 && "
               "useradd -r -M -s /usr/sbin/nologin -G kvvmt-g1 kvvmt-u2 && "
               "useradd -r -M -s /usr/sbin/nologin kvvmt-u3");
}

/* Run argv as user (its groups too) and say how it went: 0, EACCES when the command said
 * "Permission denied", EIO for any other failure. The child execs at once, so nothing of
 * this process (and no leak checker's view of it) runs as that user. */
static inline int fx_as(const char *user, const char *cmd, const char *arg)
{
  struct passwd *pw = getpwnam(user);
  int p[2], st = 0;
  if (!pw || pipe(p) != 0)
    return EIO;
  uid_t uid = pw->pw_uid;
  gid_t gid = pw->pw_gid;
  pid_t pid = fork();
  if (pid == 0) {
    char lc[] = "LC_ALL=C", *envp[] = {lc, NULL};
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(p[1], 2);
    if (initgroups(user, gid) == 0 && setgid(gid) == 0 && setuid(uid) == 0)
      execle(cmd, cmd, "--", arg, (char *)NULL, envp);
    _exit(127);
  }
  close(p[1]);
  char msg[512] = "";
  size_t used = 0;
  ssize_t n;
  while (used < sizeof msg - 1 && (n = read(p[0], msg + used, sizeof msg - 1 - used)) > 0)
    used += (size_t)n;
  msg[used] = '\0';
  close(p[0]);
  waitpid(pid, &st, 0);
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
    return 0;
  return strstr(msg, "Permission denied") ? EACCES : EIO;
}

/* 0 when user can read path (through every folder on the way), else as fx_as. */
static inline int fx_read_as(const char *user, const char *path)
{
  return fx_as(user, "/bin/cat", path);
}

/* 0 when user can list the folder, else as fx_as. */
static inline int fx_list_as(const char *user, const char *dir)
{
  return fx_as(user, "/bin/ls", dir);
}

static inline int fx_count_prefix(const char *dir, const char *prefix)
{
  char *out = fx_out("ls -A '%s' | grep -c '^%s' || true", dir, prefix);
  int n = atoi(out);
  free(out);
  return n;
}

#endif
