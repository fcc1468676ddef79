/* The safe way into a store (or hooks) folder: from "/" one component at a time, each
 * opened with O_NOFOLLOW and checked before the next is looked up, so no symlink or
 * folder that another user controls is ever passed through. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "store/store_int.h"
#include "posix/acl_int.h"

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

bool store_name_ok(const char *s)
{
  size_t n = strlen(s);
  return n && n < 256 && s[0] != '.' &&
         strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n;
}

char *store_temp_name(void)
{
  static unsigned counter;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return kvvm_xasprintf(KVVM_TEMP_PREFIX "%ld.%u.%lx", (long)getpid(), ++counter,
                        (unsigned long)ts.tv_nsec);
}

/* A folder kvvm just made: root's, 0700 exactly, without ACLs it inherited from a default
 * ACL above (mkdirat's 0700 already masked those, so it was never wider than 0700). */
static enum kvvm_err settle_new(int fd, const char *path, char *why, size_t whylen)
{
  struct stat st;
  if (fstat(fd, &st) != 0 || ((st.st_uid != 0 || st.st_gid != 0) && fchown(fd, 0, 0) != 0) ||
      kvvm_acl_strip(fd) != KVVM_OK || fchmod(fd, 0700) != 0) {
    snprintf(why, whylen, "cannot settle the new folder %s: %s", path, strerror(errno));
    return KVVM_E_IO;
  }
  KVVM_INFO("created %s (0700 root)", path);
  return KVVM_OK;
}

static int open_or_make(int parent, const char *comp, bool create, bool *made)
{
  *made = false;
  int fd = openat(parent, comp, DIR_FLAGS);
  if (fd >= 0 || errno != ENOENT || !create)
    return fd;
  if (mkdirat(parent, comp, 0700) == 0)
    *made = true;
  else if (errno != EEXIST)
    return -1;
  return openat(parent, comp, DIR_FLAGS);
}

/* O_NOFOLLOW|O_DIRECTORY on a symlink fails with ELOOP or ENOTDIR: look at what it is. */
static enum kvvm_err open_fail(int parent, const char *comp, const char *path, char *why,
                               size_t whylen)
{
  int e = errno;
  struct stat st;
  if (e == ELOOP || e == ENOTDIR) {
    bool link = e == ELOOP ||
                (fstatat(parent, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode));
    snprintf(why, whylen, "%s is %s; kvvm does not follow it (use the real folder)", path,
             link ? "a symbolic link" : "not a folder");
    return KVVM_E_STORE;
  }
  snprintf(why, whylen, "%s: %s", path, strerror(e));
  return e == ENOENT ? KVVM_E_NOENT : KVVM_E_IO;
}

static enum kvvm_err check(int fd, const char *path, bool last, store_dir_cb cb, void *ctx,
                           char *why, size_t whylen)
{
  struct stat st;
  char bad[160];
  if (fstat(fd, &st) != 0) {
    snprintf(why, whylen, "%s: %s", path, strerror(errno));
    return KVVM_E_IO;
  }
  if (kvvm_acl_writable_by_others(fd, &st, !last, bad, sizeof bad)) {
    snprintf(why, whylen, "folder %s is %s; kvvm refuses it (a user other than root could "
             "replace what it holds)", path, bad);
    return KVVM_E_STORE;
  }
  return cb ? cb(fd, path, ctx) : KVVM_OK;
}

/* One step down: open (or make) comp below *cur, then check it. sofar ends with comp. */
static enum kvvm_err step(int *cur, const char *comp, const char *sofar, bool last, bool create,
                          store_dir_cb cb, void *ctx, char *why, size_t whylen)
{
  bool made = false;
  if (strcmp(comp, "..") == 0) {
    snprintf(why, whylen, "%s has a \"..\" component", sofar);
    return KVVM_E_STORE;
  }
  int next = open_or_make(*cur, comp, create, &made);
  if (next < 0)
    return open_fail(*cur, comp, sofar, why, whylen);
  close(*cur);
  *cur = next;
  enum kvvm_err rc = made ? settle_new(next, sofar, why, whylen) : KVVM_OK;
  return rc == KVVM_OK ? check(next, sofar, last, cb, ctx, why, whylen) : rc;
}

enum kvvm_err store_dir_open(const char *path, bool create, store_dir_cb cb, void *ctx, int *fd,
                             char *why, size_t whylen)
{
  enum kvvm_err rc = KVVM_E_STORE;
  size_t used = 1;
  char *sofar = kvvm_xcalloc(strlen(path) + 2, 1);
  int cur = open("/", DIR_FLAGS);
  *fd = -1;
  sofar[0] = '/';
  if (path[0] != '/' || cur < 0) {
    snprintf(why, whylen, "%s is not an absolute folder", path);
    goto out;
  }
  const char *p = path + strspn(path, "/");
  rc = check(cur, sofar, !*p, cb, ctx, why, whylen);
  while (rc == KVVM_OK && *p) {
    size_t n = strcspn(p, "/");
    char *comp = kvvm_xasprintf("%.*s", (int)n, p);
    memcpy(sofar + used, comp, n + 1);
    used += n;
    p += n + strspn(p + n, "/");
    rc = step(&cur, comp, sofar, !*p, create, cb, ctx, why, whylen);
    free(comp);
    sofar[used++] = '/';
  }
  if (rc == KVVM_OK) {
    *fd = cur;
    cur = -1;
  }
out:
  if (cur >= 0)
    close(cur);
  free(sofar);
  return rc;
}

int store_dir_each(int dfd, void (*fn)(int, const char *, void *), void *ctx)
{
  int dup_fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
  DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
  if (!d) {
    if (dup_fd >= 0)
      close(dup_fd);
    return -1;
  }
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      fn(dfd, e->d_name, ctx);
  closedir(d);
  return 0;
}

/* Only root's files and links go: anything else keeps the folder (and is reported). */
static void remove_entry(int fd, const char *name, void *ctx)
{
  struct stat st;
  bool *ok = ctx;
  if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || st.st_uid != 0 ||
      !(S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) || unlinkat(fd, name, 0) != 0)
    *ok = false;
}

bool store_tree_remove(int dfd, const char *dir, const char *name)
{
  struct stat st;
  bool ok = true;
  int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 || fstat(fd, &st) != 0 || st.st_uid != 0 || store_dir_each(fd, remove_entry, &ok))
    ok = false;
  if (fd >= 0)
    close(fd);
  if (ok && unlinkat(dfd, name, AT_REMOVEDIR) != 0)
    ok = false;
  if (!ok)
    KVVM_WARN("%s/%s: cannot remove this folder whole (kvvm removes only root's files in "
              "root's folder): %s", dir, name, strerror(errno));
  return ok;
}

static bool sweep_one(int dfd, const char *path, const char *name)
{
  struct stat st;
  if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return false;
  if (st.st_uid == 0 && S_ISDIR(st.st_mode))  /* a fileLayout folder never renamed in */
    return store_tree_remove(dfd, path, name);
  if (st.st_uid != 0 || !(S_ISREG(st.st_mode) || S_ISLNK(st.st_mode))) {
    KVVM_WARN("%s/%s looks like a temp file but is not root's file, link or folder; left "
              "alone", path, name);
    return false;
  }
  if (unlinkat(dfd, name, 0) != 0) {
    KVVM_WARN("%s/%s: cannot remove: %s", path, name, strerror(errno));
    return false;
  }
  return true;
}

struct sweep {
  const char *path;
  int count;
};

static void sweep_entry(int dfd, const char *name, void *ctx)
{
  struct sweep *sw = ctx;
  if (strncmp(name, KVVM_TEMP_PREFIX, strlen(KVVM_TEMP_PREFIX)) == 0)
    sw->count += sweep_one(dfd, sw->path, name);
}

int store_dir_sweep(int dfd, const char *path)
{
  struct sweep sw = {path, 0};
  if (store_dir_each(dfd, sweep_entry, &sw) != 0) {
    KVVM_WARN("%s: cannot list: %s", path, strerror(errno));
    return 0;
  }
  if (sw.count) {
    KVVM_INFO("%s: removed %d temp file(s) an interrupted install left", path, sw.count);
    if (fsync(dfd) != 0)
      KVVM_WARN("%s: fsync: %s", path, strerror(errno));
  }
  return sw.count;
}
