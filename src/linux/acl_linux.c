/* POSIX ACLs on Linux, read and written as the kernel's system.posix_acl_access attribute:
 * a little-endian version word (2), then 8-byte entries {tag, perm, id}, sorted by tag and
 * id. Why not libacl: this format is a stable kernel ABI (linux/posix_acl_xattr.h, unchanged
 * since 2.6), kvvm needs a few dozen lines of it, the kernel validates every ACL it is
 * given, and the package then needs no new library on any machine. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "kvvm/acl.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "posix/acl_int.h"

#define XATTR_ACCESS "system.posix_acl_access"
#define XATTR_DEFAULT "system.posix_acl_default"
#define ACL_XATTR_VERSION 2u
#define UNDEF_ID 0xffffffffu
#define ACL_MAX_BYTES 65536
#define NGROUPS_CAP 4096

enum { T_USER_OBJ = 0x01, T_USER = 0x02, T_GROUP_OBJ = 0x04, T_GROUP = 0x08, T_MASK = 0x10,
       T_OTHER = 0x20 };
enum { P_R = 4, P_W = 2, P_X = 1 };

struct ent {
  unsigned tag, perm, id;
};

struct acl {
  struct ent *e;
  size_t n;
};

static void acl_add(struct acl *a, unsigned tag, unsigned perm, unsigned id)
{
  a->e = kvvm_xrealloc(a->e, (a->n + 1) * sizeof *a->e);
  a->e[a->n++] = (struct ent){tag, perm, id};
}

static void acl_from_mode(struct acl *a, mode_t mode)
{
  acl_add(a, T_USER_OBJ, (mode >> 6) & 7, UNDEF_ID);
  acl_add(a, T_GROUP_OBJ, (mode >> 3) & 7, UNDEF_ID);
  acl_add(a, T_OTHER, mode & 7, UNDEF_ID);
}

static unsigned le16(const unsigned char *p) { return p[0] | (unsigned)p[1] << 8; }

static unsigned le32(const unsigned char *p) { return le16(p) | le16(p + 2) << 16; }

static void put_le16(unsigned char *p, unsigned v)
{
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
}

static void put_le32(unsigned char *p, unsigned v)
{
  put_le16(p, v & 0xffff);
  put_le16(p + 2, v >> 16);
}

/* The access ACL of fd; a file without one (or on a filesystem without ACLs) has the
 * three entries its mode implies. */
static enum kvvm_err acl_read(int fd, const struct stat *st, struct acl *a)
{
  unsigned char buf[ACL_MAX_BYTES];
  memset(a, 0, sizeof *a);
  ssize_t len = fgetxattr(fd, XATTR_ACCESS, buf, sizeof buf);
  if (len < 0 && (errno == ENODATA || errno == ENOTSUP)) {
    acl_from_mode(a, st->st_mode);
    return KVVM_OK;
  }
  if (len < 4 || (len - 4) % 8 != 0 || le32(buf) != ACL_XATTR_VERSION) {
    KVVM_ERR("cannot read the ACL of inode %lu: %s", (unsigned long)st->st_ino,
             len < 0 ? strerror(errno) : "unexpected format");
    return KVVM_E_IO;
  }
  for (ssize_t off = 4; off < len; off += 8)
    acl_add(a, le16(buf + off), le16(buf + off + 2) & 7, le32(buf + off + 4));
  return KVVM_OK;
}

static int find(const struct acl *a, unsigned tag, unsigned id)
{
  for (size_t i = 0; i < a->n; i++)
    if (a->e[i].tag == tag && (id == UNDEF_ID || a->e[i].id == id))
      return (int)i;
  return -1;
}

static bool has_named(const struct acl *a)
{
  return find(a, T_USER, UNDEF_ID) >= 0 || find(a, T_GROUP, UNDEF_ID) >= 0;
}

static void drop(struct acl *a, int i)
{
  memmove(a->e + i, a->e + i + 1, (a->n - (size_t)i - 1) * sizeof *a->e);
  a->n--;
}

static int ent_cmp(const void *x, const void *y)
{
  const struct ent *a = x, *b = y;
  if (a->tag != b->tag)
    return a->tag < b->tag ? -1 : 1;
  return (a->id > b->id) - (a->id < b->id);
}

/* Write a as fd's access ACL. Without named entries a mask that limits nothing goes, and
 * an ACL of three entries is plain mode bits again (the attribute removed first, so chmod
 * sets the group bits rather than a mask). */
static enum kvvm_err acl_write(int fd, const struct stat *st, struct acl *a, char *why,
                               size_t whylen)
{
  qsort(a->e, a->n, sizeof *a->e, ent_cmp);
  int m = find(a, T_MASK, UNDEF_ID), g = find(a, T_GROUP_OBJ, UNDEF_ID);
  if (!has_named(a) && m >= 0 && (a->e[g].perm & ~a->e[m].perm) == 0)
    drop(a, m);
  if (a->n == 3) {
    if (fremovexattr(fd, XATTR_ACCESS) != 0 && errno != ENODATA && errno != ENOTSUP)
      goto fail;
    mode_t mode = (st->st_mode & 07000) | a->e[find(a, T_USER_OBJ, UNDEF_ID)].perm << 6 |
                  a->e[find(a, T_GROUP_OBJ, UNDEF_ID)].perm << 3 |
                  a->e[find(a, T_OTHER, UNDEF_ID)].perm;
    if (fchmod(fd, mode) != 0)
      goto fail;
    return KVVM_OK;
  }
  size_t len = 4 + 8 * a->n;
  unsigned char *buf = kvvm_xmalloc(len);
  put_le32(buf, ACL_XATTR_VERSION);
  for (size_t i = 0; i < a->n; i++) {
    put_le16(buf + 4 + 8 * i, a->e[i].tag);
    put_le16(buf + 6 + 8 * i, a->e[i].perm);
    put_le32(buf + 8 + 8 * i, a->e[i].id);
  }
  int r = fsetxattr(fd, XATTR_ACCESS, buf, len, 0);
  free(buf);
  if (r == 0)
    return KVVM_OK;
fail:
  snprintf(why, whylen, "cannot set the ACL: %s%s", strerror(errno),
           errno == ENOTSUP ? " (the filesystem has no POSIX ACLs)" : "");
  return errno == ENOTSUP ? KVVM_E_GRANT : KVVM_E_IO;
}

static unsigned masked(const struct acl *a, unsigned perm)
{
  int m = find(a, T_MASK, UNDEF_ID);
  return m >= 0 ? perm & a->e[m].perm : perm;
}

static bool in(const gid_t *gids, size_t n, unsigned id)
{
  for (size_t i = 0; i < n; i++)
    if (gids[i] == id)
      return true;
  return false;
}

/* The kernel's access check (posix_acl_permission) for uid (UNDEF_ID: any member of a
 * group, as a group grant means) with supplementary groups gids. */
static bool allows(const struct acl *a, const struct stat *st, unsigned uid, const gid_t *gids,
                   size_t ng, unsigned want)
{
  bool matched = false;
  if (uid != UNDEF_ID && uid == st->st_uid)
    return (a->e[find(a, T_USER_OBJ, UNDEF_ID)].perm & want) == want;
  int u = uid == UNDEF_ID ? -1 : find(a, T_USER, uid);
  if (u >= 0)
    return (masked(a, a->e[u].perm) & want) == want;
  for (size_t i = 0; i < a->n; i++) {
    const struct ent *e = &a->e[i];
    unsigned id = e->tag == T_GROUP_OBJ ? st->st_gid : e->id;
    if ((e->tag != T_GROUP_OBJ && e->tag != T_GROUP) || !in(gids, ng, id))
      continue;
    matched = true;
    if ((masked(a, e->perm) & want) == want)
      return true;
  }
  return !matched && (a->e[find(a, T_OTHER, UNDEF_ID)].perm & want) == want;
}

/* p's groups: its own gid for a group, the user's groups (getgrouplist) for a user. */
static size_t groups_of(const struct kvvm_principal *p, gid_t *gids, int cap)
{
  if (p->group) {
    gids[0] = p->id;
    return 1;
  }
  struct passwd pw, *res = NULL;
  char buf[16384];
  if (getpwuid_r(p->id, &pw, buf, sizeof buf, &res) != 0 || !res)
    return 0;
  int n = cap;
  if (getgrouplist(pw.pw_name, pw.pw_gid, gids, &n) < 0)
    n = cap;  /* more groups than we look at: the first cap decide */
  return (size_t)n;
}

/* x is about to join a mask that lacked it: entries the mask kept from x (the owning group,
 * named users and groups) lose their x, so nobody but p gains anything. Returns what was
 * trimmed, "G" for the owning group and u<id>/g<id> for named entries, comma-separated. */
static char *trim_x(struct acl *a)
{
  char *out = kvvm_xstrdup("");
  for (size_t i = 0; i < a->n; i++) {
    struct ent *e = &a->e[i];
    if (!(e->perm & P_X) || (e->tag != T_GROUP_OBJ && e->tag != T_USER && e->tag != T_GROUP))
      continue;
    e->perm &= ~(unsigned)P_X;
    char *next = e->tag == T_GROUP_OBJ ?
                     kvvm_xasprintf("%s%sG", out, *out ? "," : "") :
                     kvvm_xasprintf("%s%s%c%u", out, *out ? "," : "",
                                    e->tag == T_USER ? 'u' : 'g', e->id);
    free(out);
    out = next;
  }
  return out;
}

/* Put back the x trim_x took, where the entry is still there without it. */
static void untrim_x(struct acl *a, const char *trimmed)
{
  for (const char *p = trimmed; p && *p;) {
    unsigned tag = *p == 'G' ? T_GROUP_OBJ : *p == 'u' ? T_USER : T_GROUP;
    unsigned id = *p == 'G' ? UNDEF_ID : (unsigned)strtoul(p + 1, NULL, 10);
    int i = find(a, tag, id);
    if (i >= 0)
      a->e[i].perm |= P_X;
    p += strcspn(p, ",");
    p += *p == ',';
  }
}

/* Add an --x entry for p and x to the mask (made from the owning group's bits when there
 * was none, which widens nothing). */
static void add_entry(struct acl *a, const struct kvvm_principal *p, unsigned *mask_added,
                      char **trimmed)
{
  int m = find(a, T_MASK, UNDEF_ID);
  if (m >= 0 && !(a->e[m].perm & P_X))
    *trimmed = trim_x(a);
  acl_add(a, p->group ? T_GROUP : T_USER, P_X, p->id);
  if (m < 0)
    acl_add(a, T_MASK, a->e[find(a, T_GROUP_OBJ, UNDEF_ID)].perm, UNDEF_ID);
  m = find(a, T_MASK, UNDEF_ID);
  *mask_added = P_X & ~a->e[m].perm;
  a->e[m].perm |= P_X;
}

enum kvvm_err kvvm_acl_dir_add_traverse(int dfd, const struct kvvm_principal *p, bool *added,
                                        unsigned *mask_added, char **trimmed, char *why,
                                        size_t whylen)
{
  gid_t gids[NGROUPS_CAP];
  struct stat st;
  struct acl a = {0};
  enum kvvm_err rc = KVVM_E_IO;
  *added = false;
  *mask_added = 0;
  *trimmed = NULL;
  if (fstat(dfd, &st) != 0 || acl_read(dfd, &st, &a) != KVVM_OK) {
    snprintf(why, whylen, "cannot read the folder's permissions: %s", strerror(errno));
    goto out;
  }
  size_t ng = groups_of(p, gids, NGROUPS_CAP);
  rc = KVVM_OK;
  if (allows(&a, &st, p->group ? UNDEF_ID : p->id, gids, ng, P_X))
    goto out;
  if (find(&a, p->group ? T_GROUP : T_USER, p->id) >= 0) {
    snprintf(why, whylen, "an ACL entry for %s %s denies it traverse; kvvm leaves entries it "
             "did not add alone", p->group ? "group" : "user", p->name);
    rc = KVVM_E_GRANT;
    goto out;
  }
  add_entry(&a, p, mask_added, trimmed);
  rc = acl_write(dfd, &st, &a, why, whylen);
  *added = rc == KVVM_OK;
  if (rc != KVVM_OK) {
    *mask_added = 0;
    free(*trimmed);
    *trimmed = NULL;
  }
out:
  free(a.e);
  return rc;
}

enum kvvm_err kvvm_acl_dir_remove_traverse(int dfd, bool group, unsigned id, unsigned mask_bits,
                                           const char *trimmed, char *why, size_t whylen)
{
  struct stat st;
  struct acl a = {0};
  enum kvvm_err rc = KVVM_E_IO;
  if (fstat(dfd, &st) != 0 || acl_read(dfd, &st, &a) != KVVM_OK) {
    snprintf(why, whylen, "cannot read the folder's permissions: %s", strerror(errno));
    goto out;
  }
  int i = find(&a, group ? T_GROUP : T_USER, id);
  int m = find(&a, T_MASK, UNDEF_ID);
  if (i >= 0 && a.e[i].perm == P_X)
    drop(&a, i);
  if (m >= 0 && mask_bits) {
    a.e[find(&a, T_MASK, UNDEF_ID)].perm &= ~mask_bits;
    untrim_x(&a, trimmed);
  }
  rc = acl_write(dfd, &st, &a, why, whylen);
out:
  free(a.e);
  return rc;
}

/* True when fd has no access ACL of its own (none set, or a filesystem without ACLs). */
static bool no_access_acl(int fd)
{
  return fgetxattr(fd, XATTR_ACCESS, NULL, 0) < 0 && (errno == ENODATA || errno == ENOTSUP);
}

/* owner: the owner's bits; each principal perm, the mask perm, nobody else anything. st is
 * fd's, fresh. A file that is already exactly that (no principals, the mode, no ACL: a temp
 * file just made in a folder with no default ACL) is left as it is: no write, no inode
 * change for the journal. */
static enum kvvm_err set_exact(int fd, const struct stat *fst, mode_t owner, unsigned perm,
                               const struct kvvm_principal *p, size_t n, char *why,
                               size_t whylen)
{
  if (n == 0 && (fst->st_mode & 07777) == owner && no_access_acl(fd))
    return KVVM_OK;
  struct stat st = *fst;
  struct acl a = {0};
  acl_from_mode(&a, owner);
  for (size_t i = 0; i < n; i++)
    acl_add(&a, p[i].group ? T_GROUP : T_USER, perm, p[i].id);
  if (n)
    acl_add(&a, T_MASK, perm, UNDEF_ID);
  st.st_mode &= ~(mode_t)07000;
  enum kvvm_err rc = acl_write(fd, &st, &a, why, whylen);
  free(a.e);
  return rc;
}

static enum kvvm_err stat_and_set(int fd, mode_t owner, unsigned perm,
                                  const struct kvvm_principal *p, size_t n, char *why,
                                  size_t whylen)
{
  struct stat st;
  if (fstat(fd, &st) != 0) {
    snprintf(why, whylen, "fstat: %s", strerror(errno));
    return KVVM_E_IO;
  }
  return set_exact(fd, &st, owner, perm, p, n, why, whylen);
}

enum kvvm_err kvvm_acl_set_file(int fd, const struct kvvm_principal *p, size_t n, char *why,
                                size_t whylen)
{
  return stat_and_set(fd, 0600, P_R, p, n, why, whylen);
}

enum kvvm_err kvvm_acl_set_file_st(int fd, const struct stat *st,
                                   const struct kvvm_principal *p, size_t n, char *why,
                                   size_t whylen)
{
  return set_exact(fd, st, 0600, P_R, p, n, why, whylen);
}

enum kvvm_err kvvm_acl_set_dir(int fd, const struct kvvm_principal *p, size_t n, char *why,
                               size_t whylen)
{
  return stat_and_set(fd, 0700, P_X, p, n, why, whylen);
}

bool kvvm_acl_writable_by_others(int fd, const struct stat *st, bool sticky_ok, char *why,
                                 size_t whylen)
{
  struct acl a = {0};
  bool bad = true;
  if (st->st_uid != 0)
    snprintf(why, whylen, "owned by uid %u, not root", (unsigned)st->st_uid);
  else if (sticky_ok && S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX))
    bad = false;  /* sticky: others may add names but cannot replace root's */
  else if (acl_read(fd, st, &a) != KVVM_OK)
    snprintf(why, whylen, "its ACL cannot be read");
  else if (a.e[find(&a, T_OTHER, UNDEF_ID)].perm & P_W)
    snprintf(why, whylen, "writable by everyone");
  else if (masked(&a, a.e[find(&a, T_GROUP_OBJ, UNDEF_ID)].perm) & P_W)
    snprintf(why, whylen, "writable by its group (gid %u)", (unsigned)st->st_gid);
  else
    bad = false;
  for (size_t i = 0; !bad && i < a.n; i++) {
    const struct ent *e = &a.e[i];
    if (((e->tag == T_USER && e->id != 0) || e->tag == T_GROUP) &&
        (masked(&a, e->perm) & P_W)) {
      snprintf(why, whylen, "writable through an ACL entry (%s %u)",
               e->tag == T_USER ? "uid" : "gid", e->id);
      bad = true;
    }
  }
  free(a.e);
  return bad;
}

enum kvvm_err kvvm_acl_strip(int fd)
{
  for (int i = 0; i < 2; i++)
    if (fremovexattr(fd, i ? XATTR_ACCESS : XATTR_DEFAULT) != 0 && errno != ENODATA &&
        errno != ENOTSUP) {
      KVVM_ERR("cannot remove an inherited ACL: %s", strerror(errno));
      return KVVM_E_IO;
    }
  return KVVM_OK;
}

/* Name lookups: getpw*_r/getgr*_r with a buffer that grows for large NSS entries. */
static int lookup_once(const char *name, bool group, char *buf, size_t cap, unsigned *id,
                       bool *found)
{
  int r;
  if (group) {
    struct group gr, *res = NULL;
    r = getgrnam_r(name, &gr, buf, cap, &res);
    *found = r == 0 && res;
    if (*found)
      *id = gr.gr_gid;
  } else {
    struct passwd pw, *res = NULL;
    r = getpwnam_r(name, &pw, buf, cap, &res);
    *found = r == 0 && res;
    if (*found)
      *id = pw.pw_uid;
  }
  return r;
}

static bool lookup(const char *name, bool group, unsigned *id)
{
  bool found = false;
  for (size_t cap = 4096; cap <= (1u << 22); cap *= 4) {
    char *buf = kvvm_xmalloc(cap);
    int r = lookup_once(name, group, buf, cap, id, &found);
    free(buf);
    if (r != ERANGE)
      break;
  }
  return found;
}

struct resolver {
  struct kvvm_principal *p;
  size_t n;
  char *why;
  size_t whylen, used;
  enum kvvm_err rc;
};

static void missing(struct resolver *r, const char *what, const char *name)
{
  if (r->used < r->whylen) {
    int k = snprintf(r->why + r->used, r->whylen - r->used, "%s%s \"%s\" does not exist on "
                     "this machine", r->used ? "; " : "", what, name);
    r->used += k > 0 ? (size_t)k : 0;
  }
  r->rc = KVVM_E_GRANT;
}

static void want(struct resolver *r, const char *name, bool user, bool group, const char *what)
{
  unsigned id;
  bool is_group = false;
  if (!(user && lookup(name, false, &id)) && !(group && (is_group = lookup(name, true, &id)))) {
    missing(r, what, name);
    return;
  }
  r->p = kvvm_xrealloc(r->p, (r->n + 1) * sizeof *r->p);
  r->p[r->n++] = (struct kvvm_principal){is_group, id, kvvm_xstrdup(name)};
}

static int pr_cmp(const void *x, const void *y)
{
  const struct kvvm_principal *a = x, *b = y;
  if (a->group != b->group)
    return a->group ? 1 : -1;
  return (a->id > b->id) - (a->id < b->id);
}

enum kvvm_err kvvm_acl_resolve(const struct kvvm_cert_cfg *cc, struct kvvm_principal **out,
                               size_t *n, char *why, size_t whylen)
{
  struct resolver r = {.why = why, .whylen = whylen, .rc = KVVM_OK};
  if (whylen)
    why[0] = '\0';
  for (size_t i = 0; cc->accounts && cc->accounts[i]; i++)
    want(&r, cc->accounts[i], true, true, "account");
  for (size_t i = 0; i < cc->n_acls; i++) {
    if (cc->acls[i].user)
      want(&r, cc->acls[i].user, true, false, "user");
    if (cc->acls[i].group)
      want(&r, cc->acls[i].group, false, true, "group");
  }
  if (r.n)
    qsort(r.p, r.n, sizeof *r.p, pr_cmp);
  size_t k = 0;
  for (size_t i = 0; i < r.n; i++) {
    if (k && pr_cmp(&r.p[k - 1], &r.p[i]) == 0) {
      free(r.p[i].name);
      continue;
    }
    r.p[k++] = r.p[i];
  }
  *out = r.p;
  *n = k;
  return r.rc;
}

void kvvm_principals_free(struct kvvm_principal *p, size_t n)
{
  for (size_t i = 0; p && i < n; i++)
    free(p[i].name);
  free(p);
}

char *kvvm_principals_str(const struct kvvm_principal *p, size_t n)
{
  char *s = kvvm_xstrdup("");
  for (size_t i = 0; i < n; i++) {
    char *next = kvvm_xasprintf("%s%s%s:%s(%u)", s, i ? "," : "", p[i].group ? "group" : "user",
                                p[i].name, p[i].id);
    free(s);
    s = next;
  }
  return s;
}
