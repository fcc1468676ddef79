/* A fileLayout's split files (design.md, Store mapping on Linux): servers that want the
 * certificate and the key apart (nginx's fullchain and key, certbot's four files, the CSI
 * driver's pair) read them from one folder per version, reached through one stable link.
 * The folder is complete before the link names it, and the link is swapped by rename, so a
 * reader that resolves the link once never pairs a new certificate with an old key. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvvm/certmat.h"
#include "kvvm/mem.h"
#include "store/store_int.h"
#include "posix/acl_int.h"

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

size_t store_split_files(const struct store_split *sp, char *names[STORE_SPLIT_MAX],
                         unsigned parts[STORE_SPLIT_MAX], const char *vars[STORE_SPLIT_MAX])
{
  static const char *const certbot[] = {"cert.pem", "chain.pem", "fullchain.pem",
                                        "privkey.pem"};
  static const unsigned certbot_parts[] = {KVVM_PEM_LEAF, KVVM_PEM_CHAIN,
                                           KVVM_PEM_LEAF | KVVM_PEM_CHAIN, KVVM_PEM_KEY};
  static const char *const certbot_vars[] = {"KVVM_CERT_FILE", "KVVM_CHAIN_FILE",
                                             "KVVM_FULLCHAIN_FILE", "KVVM_KEY_FILE"};
  if (sp->layout == KVVM_LAYOUT_CSI) {
    names[0] = kvvm_xasprintf("%s.crt", sp->stable);
    names[1] = kvvm_xasprintf("%s.key", sp->stable);
    parts[0] = KVVM_PEM_LEAF | KVVM_PEM_CHAIN;
    parts[1] = KVVM_PEM_KEY;
    vars[0] = certbot_vars[2];
    vars[1] = certbot_vars[3];
    return 2;
  }
  for (size_t i = 0; i < STORE_SPLIT_MAX; i++) {
    names[i] = kvvm_xstrdup(certbot[i]);
    parts[i] = certbot_parts[i];
    vars[i] = certbot_vars[i];
  }
  return STORE_SPLIT_MAX;
}

static void names_free(char **names, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(names[i]);
}

/* A folder of kvvm's: root's, 0700 with g's traverse entries and nothing inherited. */
static enum kvvm_err settle(int fd, const char *path, const struct store_grants *g, char *why,
                            size_t wl)
{
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISDIR(st.st_mode) ||
      ((st.st_uid != 0 || st.st_gid != 0) && fchown(fd, 0, 0) != 0) ||
      kvvm_acl_strip(fd) != KVVM_OK) {
    snprintf(why, wl, "cannot settle the folder %s: %s", path, strerror(errno));
    return KVVM_E_IO;
  }
  enum kvvm_err rc = kvvm_acl_set_dir(fd, g->p, g->n, why, wl);
  if (rc == KVVM_E_GRANT)  /* no ACLs here: root-only; the grants step reports it */
    rc = kvvm_acl_set_dir(fd, NULL, 0, why, wl);
  return rc;
}

/* Each file of the layout written into fd (temp name, rename); with sync each file and then
 * fd fsync'd (a folder already in use), else the commit's flush makes them durable. */
static enum kvvm_err fill(const struct store_split *sp, int fd, const char *path,
                          const struct kvvm_bundle *b, bool sync, char *why, size_t wl)
{
  struct store_put_to to = {fd, path, sp->g, NULL, sync};
  char *names[STORE_SPLIT_MAX], *pem = NULL;
  unsigned parts[STORE_SPLIT_MAX];
  const char *vars[STORE_SPLIT_MAX];
  size_t n = store_split_files(sp, names, parts, vars), len = 0;
  enum kvvm_err rc = settle(fd, path, sp->g, why, wl);
  for (size_t i = 0; rc == KVVM_OK && i < n; i++) {
    rc = kvvm_bundle_to_pem_parts(b, parts[i], &pem, &len);
    if (rc == KVVM_OK)
      rc = store_file_put(&to, names[i], pem, len, why, wl);
    kvvm_free_secret(pem, len);
    pem = NULL;
  }
  if (rc == KVVM_OK && sync && store_fsync(fd) != 0) {
    snprintf(why, wl, "%s: fsync: %s", path, strerror(errno));
    rc = KVVM_E_IO;
  }
  names_free(names, n);
  return rc;
}

/* A new temp folder (mkdirat fails on any name already there, a symlink included). */
static int make_temp(const struct store_split *sp, char **tmp, char *why, size_t wl)
{
  for (int i = 0; i < 8; i++) {
    free(*tmp);
    *tmp = store_temp_name();
    if (mkdirat(sp->dfd, *tmp, 0700) == 0) {
      int fd = openat(sp->dfd, *tmp, DIR_FLAGS);
      if (fd >= 0)
        return fd;
      break;
    }
    if (errno != EEXIST)
      break;
  }
  snprintf(why, wl, "%s: cannot create a temp folder: %s", sp->dir, strerror(errno));
  return -1;
}

static enum kvvm_err write_new(const struct store_split *sp, const struct kvvm_bundle *b,
                               const char *folder, char *why, size_t wl)
{
  char *tmp = NULL, *path = NULL;
  int fd = make_temp(sp, &tmp, why, wl);
  enum kvvm_err rc = fd < 0 ? KVVM_E_IO : KVVM_OK;
  if (rc == KVVM_OK) {
    path = kvvm_xasprintf("%s/%s", sp->dir, tmp);
    rc = fill(sp, fd, path, b, false, why, wl);
    close(fd);
  }
  if (rc == KVVM_OK)
    store_queue_file(sp->d, tmp, folder);
  else if (fd >= 0)
    store_tree_remove(sp->dfd, sp->dir, tmp);
  free(path);
  free(tmp);
  return rc;
}

/* folder open (O_NOFOLLOW), checked to be a folder of kvvm's; -1 with why otherwise. */
static int open_ours(int dfd, const char *dir, const char *folder, char *why, size_t wl)
{
  struct stat st;
  char bad[160];
  int fd = openat(dfd, folder, DIR_FLAGS);
  if (fd < 0) {
    snprintf(why, wl, "%s/%s is %s; not followed or replaced (remove it to let kvvm install)",
             dir, folder, errno == ELOOP || errno == ENOTDIR ? "not a folder kvvm made"
                                                              : strerror(errno));
    return -1;
  }
  if (fstat(fd, &st) != 0 || kvvm_acl_writable_by_others(fd, &st, false, bad, sizeof bad)) {
    snprintf(why, wl, "%s/%s is %s; kvvm refuses it (remove it to let kvvm install)", dir,
             folder, bad);
    close(fd);
    return -1;
  }
  return fd;
}

enum kvvm_err store_split_write(const struct store_split *sp, const struct kvvm_bundle *b,
                                const char *folder, char *why, size_t wl)
{
  struct stat st;
  if (fstatat(sp->dfd, folder, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return write_new(sp, b, folder, why, wl);
  int fd = open_ours(sp->dfd, sp->dir, folder, why, wl);
  if (fd < 0)
    return KVVM_E_STORE;
  char *path = kvvm_xasprintf("%s/%s", sp->dir, folder);
  enum kvvm_err rc = fill(sp, fd, path, b, true, why, wl);
  close(fd);
  free(path);
  return rc;
}

bool store_split_present(const struct store_split *sp, const char *folder)
{
  char *names[STORE_SPLIT_MAX], why[256];
  unsigned parts[STORE_SPLIT_MAX];
  const char *vars[STORE_SPLIT_MAX];
  struct stat st;
  size_t n = store_split_files(sp, names, parts, vars);
  int fd = open_ours(sp->dfd, sp->dir, folder, why, sizeof why);
  bool ok = fd >= 0;
  for (size_t i = 0; ok && i < n; i++)
    ok = fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
         st.st_uid == 0;
  if (fd >= 0)
    close(fd);
  names_free(names, n);
  return ok;
}

struct grant_ctx {
  const char *path;
  const struct store_grants *g;
  enum kvvm_err rc;
  char *why;
  size_t wl;
};

static void grant_entry(int fd, const char *name, void *ctx)
{
  struct grant_ctx *c = ctx;
  struct stat st;
  char why[256];
  int f = openat(fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  enum kvvm_err rc = KVVM_OK;
  if (f < 0 || fstat(f, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != 0) {
    snprintf(why, sizeof why, "not root's regular file; its permissions are left alone");
    rc = KVVM_E_STORE;
  } else {
    rc = kvvm_acl_set_file(f, c->g->p, c->g->n, why, sizeof why);
  }
  if (f >= 0)
    close(f);
  if (rc != KVVM_OK && c->rc == KVVM_OK) {
    snprintf(c->why, c->wl, "%s/%s: %s", c->path, name, why);
    c->rc = rc;
  }
}

enum kvvm_err store_split_grant(int dfd, const char *dir, const char *folder,
                                const struct store_grants *g, char *why, size_t wl)
{
  int fd = openat(dfd, folder, DIR_FLAGS);
  if (fd < 0)
    return KVVM_OK;  /* gone (removed by hand): nothing to grant */
  char *path = kvvm_xasprintf("%s/%s", dir, folder);
  struct grant_ctx c = {path, g, KVVM_OK, why, wl};
  enum kvvm_err rc = settle(fd, path, g, why, wl);
  if (rc == KVVM_OK && store_dir_each(fd, grant_entry, &c) != 0) {
    snprintf(why, wl, "%s: cannot list: %s", path, strerror(errno));
    rc = KVVM_E_IO;
  }
  close(fd);
  free(path);
  return rc == KVVM_OK ? c.rc : rc;
}
