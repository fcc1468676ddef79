/* fileLayout's split files (store_split_posix.c): the certbot folder's four files and the
 * CSI pair hold what they say (the leaf, the chain, both, the key that matches the leaf),
 * root 0600 in a 0700 folder per version behind the one link <stable>.live; renewal,
 * retention, the keep path rewriting a deleted file, switching the layout and switching it
 * off, grants on every file and folder (given and taken back by reconcile), a planted link,
 * and the sweep of a temp folder a crash left. The link's swap under SIGKILL is in
 * test_store_crash.c. */
#include <jansson.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "kt.h"
#include "kvvm/log.h"
#include "kvvm/store.h"
#include "test_store_fx.h"

static char *fx;  /* certificates */
static struct kvvm_bundle *ba, *bb, *bc;

struct env {
  char *top, *state, *store;
  struct kvvm_store *s;
};

static void env_open(struct env *e, unsigned retain)
{
  struct kvvm_store_opts o = {.state_dir = e->state, .retain = retain};
  kvvm_store_open(&o, &e->s);
}

static void env_init(struct env *e, struct kvvm_cert_cfg *cc, enum kvvm_file_layout l)
{
  e->top = kt_tmpdir();
  e->state = kvvm_path_join(e->top, "state");
  e->store = kvvm_path_join(e->top, "store");
  env_open(e, 0);
  *cc = fx_cc("c1", e->store, NULL);
  cc->layout = l;
}

static void env_done(struct env *e, struct kvvm_cert_cfg *cc)
{
  kvvm_store_close(e->s);
  kt_rmtree(e->top);
  free(e->top);
  free(e->state);
  free(e->store);
  fx_cc_free(cc);
}

static enum kvvm_err install(struct env *e, const struct kvvm_cert_cfg *cc,
                             const struct kvvm_bundle *b, const char *version)
{
  struct kvvm_install_result res;
  enum kvvm_err rc = kvvm_store_install(e->s, cc, b, version, &res);
  if (kvvm_store_commit(e->s) != KVVM_OK)
    fprintf(stderr, "  commit failed\n");
  kvvm_install_result_clear(&res);
  return rc;
}

static char *link_of(const char *dir, const char *name)
{
  char buf[1024], *path = kvvm_path_join(dir, name);
  ssize_t n = readlink(path, buf, sizeof buf - 1);
  free(path);
  if (n < 0)
    return NULL;
  buf[n] = '\0';
  return kvvm_xstrdup(buf);
}

static bool root_mode(const char *dir, const char *name, unsigned mode, bool folder)
{
  struct stat st;
  char *path = kvvm_path_join(dir, name);
  bool ok = lstat(path, &st) == 0 && (folder ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode)) &&
            st.st_uid == 0 && st.st_gid == 0 && (st.st_mode & 07777) == mode;
  free(path);
  return ok;
}

/* 0 when the two shell commands print the same non-empty text. */
static int same_out(const char *a, const char *b)
{
  char *x = fx_out("%s 2>&1", a), *y = fx_out("%s 2>&1", b);
  int rc = x[0] && strcmp(x, y) == 0 ? 0 : 1;
  if (rc)
    fprintf(stderr, "  [%s] printed:\n%s  [%s] printed:\n%s", a, x, b, y);
  free(x);
  free(y);
  return rc;
}

static void certbot_files(void)
{
  struct env e;
  struct kvvm_cert_cfg cc;
  char a[1024], b[1024];
  env_init(&e, &cc, KVVM_LAYOUT_CERTBOT);
  struct kvvm_install_result res;
  KT_CHECK(kvvm_store_install(e.s, &cc, ba, "v1", &res) == KVVM_OK);
  KT_CHECK(kvvm_store_commit(e.s) == KVVM_OK);
  char *want = kvvm_path_join(e.store, "kvt.c1.live"), *target = link_of(e.store, "kvt.c1.live");
  KT_STREQ(res.files, want);
  KT_STREQ(target, "kvt.c1.certbot.v1");
  KT_CHECK(root_mode(e.store, "kvt.c1.certbot.v1", 0700, true));
  char *ls = fx_out("ls -A '%s/kvt.c1.live/'", e.store);
  KT_STREQ(ls, "cert.pem\nchain.pem\nfullchain.pem\nprivkey.pem\n");
  const char *names[] = {"cert.pem", "chain.pem", "fullchain.pem", "privkey.pem"};
  for (int i = 0; i < 4; i++) {
    char *dir = kvvm_path_join(e.store, "kvt.c1.certbot.v1");
    KT_CHECK(root_mode(dir, names[i], 0600, false));
    free(dir);
  }
  /* cert.pem: the leaf alone; chain.pem: the CA; fullchain: both in that order. */
  const char *d = e.store;
#define L "'%s/kvt.c1.live/"
  snprintf(a, sizeof a, "grep -c BEGIN " L "cert.pem'; openssl x509 -in " L "cert.pem' -noout "
           "-fingerprint", d, d);
  snprintf(b, sizeof b, "echo 1; openssl x509 -in '%s/a.crt' -noout -fingerprint", fx);
  KT_CHECK(same_out(a, b) == 0);
  snprintf(a, sizeof a, "grep -c BEGIN " L "chain.pem'; openssl x509 -in " L "chain.pem' "
           "-noout -fingerprint", d, d);
  snprintf(b, sizeof b, "echo 1; openssl x509 -in '%s/ca.crt' -noout -fingerprint", fx);
  KT_CHECK(same_out(a, b) == 0);
  snprintf(a, sizeof a, "cat " L "fullchain.pem'", d);
  snprintf(b, sizeof b, "cat " L "cert.pem' " L "chain.pem'", d, d);
  KT_CHECK(same_out(a, b) == 0);
  /* privkey.pem: a key alone, the one of the leaf. */
  snprintf(a, sizeof a, "grep -c BEGIN " L "privkey.pem'; openssl pkey -in " L "privkey.pem' "
           "-pubout", d, d);
  snprintf(b, sizeof b, "echo 1; openssl x509 -in " L "cert.pem' -noout -pubkey", d);
  KT_CHECK(same_out(a, b) == 0);
#undef L
  free(ls);
  free(want);
  free(target);
  kvvm_install_result_clear(&res);
  env_done(&e, &cc);
}

static void csi_pair(void)
{
  struct env e;
  struct kvvm_cert_cfg cc;
  char a[1024], b[1024];
  env_init(&e, &cc, KVVM_LAYOUT_CSI);
  free(cc.link_name);
  cc.link_name = kvvm_xstrdup("web");
  KT_CHECK(install(&e, &cc, ba, "v1") == KVVM_OK);
  char *target = link_of(e.store, "web.live"), *ls = fx_out("ls -A '%s/web.live/'", e.store);
  KT_STREQ(target, "web.csi.v1");
  KT_STREQ(ls, "web.crt\nweb.key\n");
  snprintf(a, sizeof a, "grep -c BEGIN '%s/web.live/web.crt'; cat '%s/web.live/web.crt' | "
           "openssl x509 -noout -fingerprint", e.store, e.store);
  snprintf(b, sizeof b, "echo 2; openssl x509 -in '%s/a.crt' -noout -fingerprint", fx);
  KT_CHECK(same_out(a, b) == 0);
  snprintf(a, sizeof a, "openssl pkey -in '%s/web.live/web.key' -pubout", e.store);
  snprintf(b, sizeof b, "openssl x509 -in '%s/web.live/web.crt' -noout -pubkey", e.store);
  KT_CHECK(same_out(a, b) == 0);
  free(ls);
  free(target);
  env_done(&e, &cc);
}

/* A renewal swaps the link to a new folder; the oldest folder goes with its version. */
static void renewal_and_retention(void)
{
  struct env e;
  struct kvvm_cert_cfg cc;
  env_init(&e, &cc, KVVM_LAYOUT_CERTBOT);
  KT_CHECK(install(&e, &cc, ba, "v1") == KVVM_OK);
  KT_CHECK(install(&e, &cc, bb, "v2") == KVVM_OK);
  char *target = link_of(e.store, "kvt.c1.live");
  KT_STREQ(target, "kvt.c1.certbot.v2");
  free(target);
  struct kvvm_install_result r3;
  KT_CHECK(kvvm_store_install(e.s, &cc, bc, "v3", &r3) == KVVM_OK);
  KT_CHECK(fx_sh("test -d '%s/kvt.c1.certbot.v1'", e.store) == 0);  /* until the commit */
  KT_CHECK(kvvm_store_commit(e.s) == KVVM_OK);
  char *ls = fx_out("ls -A '%s'", e.store);
  KT_STREQ(ls, "kvt.c1\nkvt.c1.certbot.v2\nkvt.c1.certbot.v3\nkvt.c1.live\nkvt.c1.v2\n"
               "kvt.c1.v3\n");
  char *fp = fx_out("openssl x509 -in '%s/kvt.c1.live/cert.pem' -noout -fingerprint", e.store);
  char *want = fx_out("openssl x509 -in '%s/c.crt' -noout -fingerprint", fx);
  KT_STREQ(fp, want);
  free(fp);
  free(want);
  free(ls);
  kvvm_install_result_clear(&r3);
  env_done(&e, &cc);
}

/* The keep path (a steady pass) sees a deleted file and lets the install rewrite it. */
static void keep_rewrites_missing(void)
{
  struct env e;
  struct kvvm_cert_cfg cc;
  struct kvvm_install_result res;
  enum kvvm_err rc;
  env_init(&e, &cc, KVVM_LAYOUT_CERTBOT);
  KT_CHECK(install(&e, &cc, ba, "v1") == KVVM_OK);
  KT_CHECK(kvvm_store_keep(e.s, &cc, "v1", &res, &rc) && rc == KVVM_OK && !res.changed);
  kvvm_install_result_clear(&res);
  fx_sh("rm '%s/kvt.c1.live/privkey.pem'", e.store);
  KT_CHECK(!kvvm_store_keep(e.s, &cc, "v1", &res, &rc));
  KT_CHECK(install(&e, &cc, ba, "v1") == KVVM_OK);
  char *dir = kvvm_path_join(e.store, "kvt.c1.certbot.v1");
  KT_CHECK(root_mode(dir, "privkey.pem", 0600, false));
  KT_CHECK(kvvm_store_keep(e.s, &cc, "v1", &res, &rc) && rc == KVVM_OK);
  kvvm_install_result_clear(&res);
  /* The link gone too: found and made again. */
  fx_sh("rm '%s/kvt.c1.live'", e.store);
  KT_CHECK(!kvvm_store_keep(e.s, &cc, "v1", &res, &rc));
  KT_CHECK(install(&e, &cc, ba, "v1") == KVVM_OK);
  char *target = link_of(e.store, "kvt.c1.live");
  KT_STREQ(target, "kvt.c1.certbot.v1");
  free(target);
  free(dir);
  env_done(&e, &cc);
}

/* none -> certbot -> csi: the link names the csi folder, the certbot folder goes; off: the link and
 * the folders go, the bundle and its stable name stay. */
static void switching(void)
{
  struct env e;
  struct kvvm_cert_cfg cc;
  env_init(&e, &cc, KVVM_LAYOUT_NONE);
  KT_CHECK(install(&e, &cc, ba, "v1") == KVVM_OK);  /* a record without the keys, as before */
  cc.layout = KVVM_LAYOUT_CERTBOT;
  struct kvvm_install_result res;
  enum kvvm_err rc;
  KT_CHECK(!kvvm_store_keep(e.s, &cc, "v1", &res, &rc));  /* turned on: the files are due */
  KT_CHECK(install(&e, &cc, ba, "v1") == KVVM_OK);
  KT_CHECK(fx_sh("test -f '%s/kvt.c1.live/fullchain.pem'", e.store) == 0);
  cc.layout = KVVM_LAYOUT_CSI;
  KT_CHECK(install(&e, &cc, ba, "v1") == KVVM_OK);
  char *ls = fx_out("ls -A '%s'", e.store);
  KT_STREQ(ls, "kvt.c1\nkvt.c1.csi.v1\nkvt.c1.live\nkvt.c1.v1\n");
  free(ls);
  ls = fx_out("ls -A '%s/kvt.c1.live/'", e.store);
  KT_STREQ(ls, "kvt.c1.crt\nkvt.c1.key\n");
  free(ls);
  cc.layout = KVVM_LAYOUT_NONE;
  KT_CHECK(!kvvm_store_keep(e.s, &cc, "v1", &res, &rc));
  KT_CHECK(install(&e, &cc, ba, "v1") == KVVM_OK);
  ls = fx_out("ls -A '%s'", e.store);
  KT_STREQ(ls, "kvt.c1\nkvt.c1.v1\n");
  free(ls);
  struct kvvm_installed_cert ic;
  KT_CHECK(kvvm_store_keep(e.s, &cc, "v1", &res, &rc) && rc == KVVM_OK);
  KT_CHECK(kvvm_installed_get(kvvm_store_installed(e.s), cc.url, cc.store_dir, &ic));
  kvvm_install_result_clear(&res);
  env_done(&e, &cc);
}

static const char file_u1[] = "user::rw-\nuser:kvvmt-u1:r--\ngroup::---\nmask::r--\n"
                              "other::---\n\n";
static const char dir_u1[] = "user::rwx\nuser:kvvmt-u1:--x\ngroup::---\nmask::--x\n"
                             "other::---\n\n";

/* acls reach every file and the version folder; reconcile takes them back. */
static void grants(void)
{
  struct env e;
  struct kvvm_cert_cfg cc;
  env_init(&e, &cc, KVVM_LAYOUT_CERTBOT);
  fx_cc_acl(&cc, "kvvmt-u1", NULL);
  KT_CHECK(install(&e, &cc, ba, "v1") == KVVM_OK);
  char *path = kvvm_xasprintf("%s/kvt.c1.live/privkey.pem", e.store);
  char *t = fx_out("getfacl -cp '%s'", path);
  KT_STREQ(t, file_u1);
  free(t);
  t = fx_out("getfacl -cp '%s/kvt.c1.certbot.v1'", e.store);
  KT_STREQ(t, dir_u1);
  free(t);
  KT_CHECK(fx_read_as("kvvmt-u1", path) == 0);
  KT_CHECK(fx_read_as("kvvmt-u3", path) == EACCES);
  KT_CHECK(install(&e, &cc, bb, "v2") == KVVM_OK);  /* the new folder gets them too */
  KT_CHECK(fx_read_as("kvvmt-u1", path) == 0);
  struct kvvm_config cfg = {.certs = &cc, .n_certs = 1};
  fx_cc_clear_acls(&cc);
  KT_CHECK(kvvm_store_reconcile_grants(e.s, &cfg) == KVVM_OK);
  KT_CHECK(kvvm_store_commit(e.s) == KVVM_OK);
  t = fx_out("getfacl -cp '%s/kvt.c1.certbot.v1/cert.pem' '%s/kvt.c1.certbot.v2'", e.store,
             e.store);
  KT_STREQ(t, "user::rw-\ngroup::---\nother::---\n\nuser::rwx\ngroup::---\nother::---\n\n");
  free(t);
  KT_CHECK(fx_read_as("kvvmt-u1", path) == EACCES);
  free(path);
  env_done(&e, &cc);
}

/* A link planted at <stable>.live is not replaced (and nothing is written); a temp folder a
 * crash left is swept, and a temp file inside a version's folder. */
static void planted_and_sweep(void)
{
  struct env e;
  struct kvvm_cert_cfg cc;
  struct kvvm_install_result res;
  env_init(&e, &cc, KVVM_LAYOUT_CERTBOT);
  fx_sh("mkdir -p '%s' && ln -s /etc '%s/kvt.c1.live'", e.store, e.store);
  KT_CHECK(kvvm_store_install(e.s, &cc, ba, "v1", &res) == KVVM_E_STORE);
  KT_CONTAINS(res.why, "kvt.c1.live is a symbolic link to /etc kvvm did not make");
  kvvm_install_result_clear(&res);
  char *before = fx_out("ls -A '%s'", e.store);
  KT_STREQ(before, "kvt.c1.live\n");  /* refused before anything was written */
  free(before);
  fx_sh("rm '%s/kvt.c1.live'", e.store);
  KT_CHECK(install(&e, &cc, ba, "v1") == KVVM_OK);
  fx_sh("cd '%s' && mkdir .kvvm-tmp.9 && echo x >.kvvm-tmp.9/cert.pem && "
        "echo x >kvt.c1.certbot.v1/.kvvm-tmp.8", e.store);
  struct kvvm_config cfg = {.certs = &cc, .n_certs = 1};
  KT_CHECK(kvvm_store_sweep(e.s, &cfg) == 2);
  char *in = fx_out("ls -A '%s/kvt.c1.live/'", e.store);
  KT_STREQ(in, "cert.pem\nchain.pem\nfullchain.pem\nprivkey.pem\n");
  free(in);
  char *ls = fx_out("ls -A '%s'", e.store);
  KT_STREQ(ls, "kvt.c1\nkvt.c1.certbot.v1\nkvt.c1.live\nkvt.c1.v1\n");
  free(ls);
  env_done(&e, &cc);
}

int main(void)
{
  kvvm_log_set_stderr_level((enum kvvm_log_level)(KVVM_LOG_ERR + 1));
  fx = kt_tmpdir();
  if (!fx || fx_gen(fx) != 0 || fx_users_add() != 0) {
    fprintf(stderr, "cannot make certificates with openssl or the test users\n");
    return 1;
  }
  ba = fx_bundle(fx, "a");
  bb = fx_bundle(fx, "b");
  bc = fx_bundle(fx, "c");
  static const struct kt_case cases[] = {
      KT_CASE(certbot_files), KT_CASE(csi_pair),  KT_CASE(renewal_and_retention),
      KT_CASE(keep_rewrites_missing), KT_CASE(switching), KT_CASE(grants),
      KT_CASE(planted_and_sweep),
  };
  int rc = KT_RUN("store_split", cases);
  kvvm_bundle_free(ba);
  kvvm_bundle_free(bb);
  kvvm_bundle_free(bc);
  fx_users_del();
  kt_rmtree(fx);
  free(fx);
  return rc;
}
