/* Read grants: each case checked three ways, with getfacl, with stat, and by reading as
 * another user (kvvmt-u1; kvvmt-u2 in kvvmt-g1; kvvmt-u3 granted nothing), made here and
 * removed at the end. Users, groups, Windows accounts, names that do not exist, grants
 * taken back on a settings change and for a certificate no longer observed, folder
 * entries shared by two certificates, entries kvvm did not add left as they were. */
#include <stdbool.h>
#include <sys/stat.h>

#include "kt.h"
#include "kvvm/acl.h"
#include "kvvm/installed.h"
#include "kvvm/log.h"
#include "kvvm/store.h"
#include "test_store_fx.h"

static char *fx;
static struct kvvm_bundle *ba, *bb;

struct env {
  char *top, *state, *store;
  struct kvvm_store *s;
};

static void env_init(struct env *e)
{
  e->top = kt_tmpdir();
  e->state = kvvm_path_join(e->top, "state");
  e->store = kvvm_path_join(e->top, "store");
  struct kvvm_store_opts o = {.state_dir = e->state};
  kvvm_store_open(&o, &e->s);
}

static void env_done(struct env *e)
{
  kvvm_store_close(e->s);
  kt_rmtree(e->top);
  free(e->top);
  free(e->state);
  free(e->store);
}

static enum kvvm_err install(struct env *e, const struct kvvm_cert_cfg *cc,
                             const struct kvvm_bundle *b, const char *version, char *why)
{
  struct kvvm_install_result res;
  enum kvvm_err rc = kvvm_store_install(e->s, cc, b, version, &res);
  if (why)
    snprintf(why, sizeof res.why, "%s", res.why);
  kvvm_install_result_clear(&res);
  kvvm_store_commit(e->s);
  return rc;
}

static enum kvvm_err reconcile(struct env *e, struct kvvm_cert_cfg *certs, size_t n)
{
  struct kvvm_config cfg = {.certs = certs, .n_certs = n};
  enum kvvm_err rc = kvvm_store_reconcile_grants(e->s, &cfg);
  kvvm_store_commit(e->s);
  return rc;
}

static char *facl(const char *path) { return fx_out("getfacl -cp '%s' 2>&1", path); }

static unsigned mode_of(const char *path)
{
  struct stat st;
  return lstat(path, &st) == 0 ? (unsigned)(st.st_mode & 07777) : 0xffffu;
}

static char *in_store(const struct env *e, const char *name)
{
  return kvvm_path_join(e->store, name);
}

static const char file_u1[] = "user::rw-\nuser:kvvmt-u1:r--\ngroup::---\nmask::r--\n"
                              "other::---\n\n";
static const char dir_u1[] = "user::rwx\nuser:kvvmt-u1:--x\ngroup::---\nmask::--x\n"
                             "other::---\n\n";
static const char plain_file[] = "user::rw-\ngroup::---\nother::---\n\n";
static const char plain_dir[] = "user::rwx\ngroup::---\nother::---\n\n";

static void user_grant(void)
{
  struct env e;
  env_init(&e);
  struct kvvm_cert_cfg cc = fx_cc("c1", e.store, NULL);
  fx_cc_acl(&cc, "kvvmt-u1", NULL);
  KT_CHECK(install(&e, &cc, ba, "v1", NULL) == KVVM_OK);
  char *file = in_store(&e, "kvt.c1.v1"), *link = in_store(&e, "kvt.c1");
  char *a = facl(file), *d = facl(e.store), *t = facl(e.top);
  KT_STREQ(a, file_u1);
  KT_STREQ(d, dir_u1);  /* the store kvvm made */
  KT_STREQ(t, dir_u1);  /* the 0700 folder above it that would have stopped kvvmt-u1 */
  KT_CHECK(mode_of(file) == 0640 && mode_of(e.store) == 0710);  /* group bits = mask */
  KT_CHECK(fx_read_as("kvvmt-u1", link) == 0);
  KT_CHECK(fx_read_as("kvvmt-u3", link) == EACCES);
  KT_CHECK(fx_read_as("kvvmt-u2", link) == EACCES);
  /* Traverse only: the folder cannot be listed. */
  KT_CHECK(fx_list_as("kvvmt-u1", e.store) == EACCES);
  /* The same version again (after a restart): no file, folder or ACL is touched. */
  struct stat f0, d0, t0, f1, d1, t1;
  KT_CHECK(stat(file, &f0) == 0 && stat(e.store, &d0) == 0 && stat(e.top, &t0) == 0);
  kvvm_store_close(e.s);
  struct kvvm_store_opts o = {.state_dir = e.state};
  kvvm_store_open(&o, &e.s);
  KT_CHECK(install(&e, &cc, ba, "v1", NULL) == KVVM_OK);
  KT_CHECK(stat(file, &f1) == 0 && stat(e.store, &d1) == 0 && stat(e.top, &t1) == 0);
  KT_CHECK(f0.st_ctim.tv_nsec == f1.st_ctim.tv_nsec && d0.st_ctim.tv_nsec == d1.st_ctim.tv_nsec &&
           t0.st_ctim.tv_nsec == t1.st_ctim.tv_nsec && f0.st_ino == f1.st_ino);
  free(a);
  free(d);
  free(t);
  free(file);
  free(link);
  fx_cc_free(&cc);
  env_done(&e);
}

static void group_and_accounts(void)
{
  struct env e;
  env_init(&e);
  struct kvvm_cert_cfg cg = fx_cc("c1", e.store, NULL), ca = fx_cc("c2", e.store, NULL);
  fx_cc_acl(&cg, NULL, "kvvmt-g1");
  kvvm_strv_free(ca.accounts);
  ca.accounts = kvvm_xcalloc(3, sizeof *ca.accounts);
  ca.accounts[0] = kvvm_xstrdup("kvvmt-u3");  /* a user */
  ca.accounts[1] = kvvm_xstrdup("kvvmt-g1");  /* no such user: the group */
  KT_CHECK(install(&e, &cg, ba, "v1", NULL) == KVVM_OK);
  KT_CHECK(install(&e, &ca, bb, "v1", NULL) == KVVM_OK);
  char *l1 = in_store(&e, "kvt.c1"), *l2 = in_store(&e, "kvt.c2"), *f1 = in_store(&e, "kvt.c1.v1");
  char *a = facl(f1);
  KT_STREQ(a, "user::rw-\ngroup::---\ngroup:kvvmt-g1:r--\nmask::r--\nother::---\n\n");
  KT_CHECK(fx_read_as("kvvmt-u2", l1) == 0);
  KT_CHECK(fx_read_as("kvvmt-u1", l1) == EACCES);
  KT_CHECK(fx_read_as("kvvmt-u3", l1) == EACCES);
  KT_CHECK(fx_read_as("kvvmt-u2", l2) == 0);
  KT_CHECK(fx_read_as("kvvmt-u3", l2) == 0);
  KT_CHECK(fx_read_as("kvvmt-u1", l2) == EACCES);
  free(a);
  free(l1);
  free(l2);
  free(f1);
  fx_cc_free(&cg);
  fx_cc_free(&ca);
  env_done(&e);
}

/* A name that does not exist is this certificate's error; the others still get theirs,
 * and nothing is widened for the missing one. */
static void unknown_names(void)
{
  struct env e;
  env_init(&e);
  char why[512];
  struct kvvm_cert_cfg cc = fx_cc("c1", e.store, NULL);
  fx_cc_acl(&cc, "kvvmt-nosuch", NULL);
  KT_CHECK(install(&e, &cc, ba, "v1", why) == KVVM_E_GRANT);
  KT_CONTAINS(why, "user \"kvvmt-nosuch\" does not exist on this machine");
  char *file = in_store(&e, "kvt.c1.v1"), *link = in_store(&e, "kvt.c1");
  char *a = facl(file), *d = facl(e.store);
  KT_STREQ(a, plain_file);
  KT_STREQ(d, plain_dir);
  KT_CHECK(mode_of(file) == 0600);
  KT_CHECK(fx_read_as("kvvmt-u3", link) == EACCES);
  struct kvvm_installed_cert ic;
  KT_CHECK(kvvm_installed_get(kvvm_store_installed(e.s), cc.url, e.store, &ic));
  KT_STREQ(ic.version, "v1");
  KT_CONTAINS(ic.last_error, "kvvmt-nosuch");
  /* With a good name beside it, the good one is granted and the error stays. */
  fx_cc_acl(&cc, "kvvmt-u1", "kvvmt-nosuchgroup");
  KT_CHECK(install(&e, &cc, ba, "v1", why) == KVVM_E_GRANT);
  KT_CONTAINS(why, "group \"kvvmt-nosuchgroup\" does not exist");
  KT_CHECK(fx_read_as("kvvmt-u1", link) == 0);
  KT_CHECK(fx_read_as("kvvmt-u3", link) == EACCES);
  free(a);
  free(d);
  free(file);
  free(link);
  fx_cc_free(&cc);
  env_done(&e);
}

/* Grants follow settings on every retained version, added and taken back, files and
 * folders, without a new version. */
static void change_and_take_back(void)
{
  struct env e;
  env_init(&e);
  struct kvvm_cert_cfg cc = fx_cc("c1", e.store, NULL);
  cc.key_exportable = true;
  fx_cc_acl(&cc, "kvvmt-u1", NULL);
  KT_CHECK(install(&e, &cc, ba, "v1", NULL) == KVVM_OK);
  KT_CHECK(install(&e, &cc, bb, "v2", NULL) == KVVM_OK);
  char *v1 = in_store(&e, "kvt.c1.v1"), *v2 = in_store(&e, "kvt.c1.v2");
  char *pfx = in_store(&e, "kvt.c1.pfx"), *link = in_store(&e, "kvt.c1");
  char *a = facl(v1), *b = facl(v2), *p = facl(pfx);
  KT_STREQ(a, file_u1);
  KT_STREQ(b, file_u1);
  KT_STREQ(p, file_u1);
  KT_CHECK(fx_read_as("kvvmt-u1", pfx) == 0);
  free(a);
  free(b);
  free(p);
  /* Settings now name the group instead. */
  fx_cc_clear_acls(&cc);
  fx_cc_acl(&cc, NULL, "kvvmt-g1");
  KT_CHECK(reconcile(&e, &cc, 1) == KVVM_OK);
  a = facl(v1);
  b = facl(v2);
  KT_STREQ(a, "user::rw-\ngroup::---\ngroup:kvvmt-g1:r--\nmask::r--\nother::---\n\n");
  KT_STREQ(b, a);
  KT_CHECK(fx_read_as("kvvmt-u1", link) == EACCES);
  KT_CHECK(fx_read_as("kvvmt-u2", link) == 0);
  free(a);
  free(b);
  /* No grants at all: plain 0600 files and 0700 folders again. */
  fx_cc_clear_acls(&cc);
  KT_CHECK(reconcile(&e, &cc, 1) == KVVM_OK);
  a = facl(v2);
  b = facl(e.store);
  p = facl(e.top);
  KT_STREQ(a, plain_file);
  KT_STREQ(b, plain_dir);
  KT_STREQ(p, plain_dir);
  KT_CHECK(mode_of(v2) == 0600 && mode_of(e.store) == 0700 && mode_of(e.top) == 0700);
  KT_CHECK(fx_read_as("kvvmt-u2", link) == EACCES);
  free(a);
  free(b);
  free(p);
  free(v1);
  free(v2);
  free(pfx);
  free(link);
  fx_cc_free(&cc);
  env_done(&e);
}

/* installed.json lost: the traverse entries kvvm added are known again from
 * folder-acls.json, and go when the settings stop granting them (a certificate still
 * observed, installed again) or stop naming the certificate. */
static void entries_survive_lost_state(void)
{
  for (int observed = 1; observed >= 0; observed--) {
    struct env e;
    env_init(&e);
    struct kvvm_cert_cfg cc = fx_cc("c1", e.store, NULL);
    fx_cc_acl(&cc, "kvvmt-u1", NULL);
    KT_CHECK(install(&e, &cc, ba, "v1", NULL) == KVVM_OK);
    char *t = facl(e.top), *lost = kvvm_path_join(e.state, "installed.json");
    KT_STREQ(t, dir_u1);
    free(t);
    kvvm_store_close(e.s);
    KT_CHECK(unlink(lost) == 0);
    struct kvvm_store_opts o = {.state_dir = e.state};
    kvvm_store_open(&o, &e.s);
    fx_cc_clear_acls(&cc);
    if (observed)
      KT_CHECK(install(&e, &cc, ba, "v1", NULL) == KVVM_OK);
    else
      KT_CHECK(reconcile(&e, NULL, 0) == KVVM_OK);
    t = facl(e.top);
    KT_STREQ(t, plain_dir);
    free(t);
    t = facl(e.store);
    KT_STREQ(t, plain_dir);
    free(t);
    free(lost);
    fx_cc_free(&cc);
    env_done(&e);
  }
}

/* Two certificates under one folder need the same traverse entry: it stays until the last
 * one lets it go; a certificate no longer observed loses its grants, keeps its files. */
static void shared_folders(void)
{
  struct env e;
  env_init(&e);
  struct kvvm_cert_cfg cc[2] = {fx_cc("c1", e.store, NULL), fx_cc("c2", e.store, NULL)};
  fx_cc_acl(&cc[0], "kvvmt-u1", NULL);
  fx_cc_acl(&cc[1], "kvvmt-u1", NULL);
  KT_CHECK(install(&e, &cc[0], ba, "v1", NULL) == KVVM_OK);
  KT_CHECK(install(&e, &cc[1], bb, "v1", NULL) == KVVM_OK);
  char *l1 = in_store(&e, "kvt.c1"), *l2 = in_store(&e, "kvt.c2"), *f1 = in_store(&e, "kvt.c1.v1");
  fx_cc_clear_acls(&cc[0]);
  KT_CHECK(reconcile(&e, cc, 2) == KVVM_OK);
  char *d = facl(e.store);
  KT_STREQ(d, dir_u1);
  KT_CHECK(fx_read_as("kvvmt-u1", l1) == EACCES);
  KT_CHECK(fx_read_as("kvvmt-u1", l2) == 0);
  free(d);
  /* c2 leaves the settings: its grants go, its files stay. */
  KT_CHECK(reconcile(&e, cc, 1) == KVVM_OK);
  d = facl(e.store);
  KT_STREQ(d, plain_dir);
  KT_CHECK(fx_read_as("kvvmt-u1", l2) == EACCES);
  KT_CHECK(kvvm_path_exists(l2) && kvvm_path_exists(f1));
  free(d);
  free(l1);
  free(l2);
  free(f1);
  fx_cc_free(&cc[0]);
  fx_cc_free(&cc[1]);
  env_done(&e);
}

/* A folder with an ACL kvvm did not write: kvvm adds its entry and later restores exactly
 * what was there (entries and mask); an entry that denies is left alone and reported; a
 * folder that already lets the grantee through gets nothing. */
static void foreign_folder_acls(void)
{
  struct env e;
  env_init(&e);
  char why[512];
  fx_sh("mkdir -m 750 '%s' && setfacl -m u:kvvmt-u3:r--,m::r-- '%s'", e.store, e.store);
  char *before = facl(e.store);
  struct kvvm_cert_cfg cc = fx_cc("c1", e.store, NULL);
  fx_cc_acl(&cc, "kvvmt-u1", NULL);
  KT_CHECK(install(&e, &cc, ba, "v1", NULL) == KVVM_OK);
  char *during = facl(e.store), *link = in_store(&e, "kvt.c1");
  KT_CONTAINS(during, "user:kvvmt-u1:--x\n");
  /* The mask gains x for kvvmt-u1; the owning group (r-x under an r-- mask) loses its x so
   * it gains nothing, and gets it back when kvvm leaves. */
  KT_CONTAINS(during, "user:kvvmt-u3:r--\n");
  KT_CONTAINS(during, "group::r--\n");
  KT_CONTAINS(during, "mask::r-x\n");
  KT_CHECK(fx_read_as("kvvmt-u1", link) == 0);
  fx_cc_clear_acls(&cc);
  KT_CHECK(reconcile(&e, &cc, 1) == KVVM_OK);
  char *after = facl(e.store);
  KT_STREQ(after, before);
  /* An entry that denies kvvmt-u1 traverse: reported, not overridden. */
  fx_sh("setfacl -m u:kvvmt-u1:--- '%s'", e.store);
  fx_cc_acl(&cc, "kvvmt-u1", NULL);
  KT_CHECK(install(&e, &cc, ba, "v1", why) == KVVM_E_GRANT);
  KT_CONTAINS(why, "denies it traverse");
  char *denied = facl(e.store);
  KT_CONTAINS(denied, "user:kvvmt-u1:---\n");
  KT_CHECK(fx_read_as("kvvmt-u1", link) == EACCES);
  /* A folder open to everyone needs no entry. */
  fx_sh("setfacl -b '%s' && chmod 711 '%s' '%s'", e.store, e.store, e.top);
  KT_CHECK(reconcile(&e, &cc, 1) == KVVM_OK);
  char *open = facl(e.store);
  KT_STREQ(open, "user::rwx\ngroup::--x\nother::--x\n\n");
  KT_CHECK(fx_read_as("kvvmt-u1", link) == 0);
  free(open);
  free(denied);
  free(before);
  free(during);
  free(after);
  free(link);
  fx_cc_free(&cc);
  env_done(&e);
}

/* A mask left without named entries (what `setfacl -x` leaves) still limits the owning
 * group: kvvm's visit must leave it exactly so, not drop it and widen the group. */
static void stale_mask(void)
{
  struct env e;
  env_init(&e);
  fx_sh("mkdir -m 750 '%s' && setfacl -m u:kvvmt-u3:r-x,m::r-- '%s' && "
        "setfacl -n -x u:kvvmt-u3 '%s'", e.store, e.store, e.store);
  char *before = facl(e.store);
  KT_CONTAINS(before, "group::r-x\t#effective:r--\nmask::r--\n");
  struct kvvm_cert_cfg cc = fx_cc("c1", e.store, NULL);
  fx_cc_acl(&cc, "kvvmt-u1", NULL);
  KT_CHECK(install(&e, &cc, ba, "v1", NULL) == KVVM_OK);
  fx_cc_clear_acls(&cc);
  KT_CHECK(reconcile(&e, &cc, 1) == KVVM_OK);
  char *after = facl(e.store);
  KT_STREQ(after, before);
  free(before);
  free(after);
  fx_cc_free(&cc);
  env_done(&e);
}

/* The interface itself: resolution order, canonical string, folder checks. */
static void interface(void)
{
  struct kvvm_cert_cfg cc = fx_cc("c1", "/x", NULL);
  struct kvvm_principal *p = NULL;
  size_t n = 0;
  char why[256];
  fx_cc_acl(&cc, "kvvmt-u2", "kvvmt-g1");
  fx_cc_acl(&cc, "kvvmt-u1", NULL);
  fx_cc_acl(&cc, "kvvmt-u1", NULL);  /* repeated: once */
  KT_CHECK(kvvm_acl_resolve(&cc, &p, &n, why, sizeof why) == KVVM_OK);
  KT_CHECK(n == 3);
  char *s = kvvm_principals_str(p, n);
  struct passwd *pw = getpwnam("kvvmt-u1");  /* a static buffer: copy before the next */
  unsigned id1 = pw ? pw->pw_uid : 0, id2 = (pw = getpwnam("kvvmt-u2")) ? pw->pw_uid : 0;
  struct group *g1 = getgrnam("kvvmt-g1");
  char *want = id1 < id2 ? kvvm_xasprintf("user:kvvmt-u1(%u),user:kvvmt-u2(%u),", id1, id2) :
                           kvvm_xasprintf("user:kvvmt-u2(%u),user:kvvmt-u1(%u),", id2, id1);
  char *full = kvvm_xasprintf("%sgroup:kvvmt-g1(%u)", want, g1 ? (unsigned)g1->gr_gid : 0);
  free(want);
  want = full;
  KT_STREQ(s, want);
  free(want);
  free(s);
  kvvm_principals_free(p, n);
  fx_cc_free(&cc);
}

int main(void)
{
  kvvm_log_set_stderr_level((enum kvvm_log_level)(KVVM_LOG_ERR + 1));
  fx = kt_tmpdir();
  if (!fx || fx_gen(fx) != 0 || fx_users_add() != 0) {
    fprintf(stderr, "cannot make certificates or test users\n");
    fx_users_del();
    return 1;
  }
  ba = fx_bundle(fx, "a");
  bb = fx_bundle(fx, "b");
  static const struct kt_case cases[] = {
      KT_CASE(user_grant),    KT_CASE(group_and_accounts), KT_CASE(unknown_names),
      KT_CASE(change_and_take_back), KT_CASE(shared_folders), KT_CASE(foreign_folder_acls),
      KT_CASE(stale_mask), KT_CASE(entries_survive_lost_state),    KT_CASE(interface),
  };
  int rc = KT_RUN("acl", cases);
  fx_users_del();
  kvvm_bundle_free(ba);
  kvvm_bundle_free(bb);
  kt_rmtree(fx);
  free(fx);
  return rc;
}
