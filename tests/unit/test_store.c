/* The store: every mapping rule (through the settings module), the file layout and its
 * content, zero writes for an unchanged certificate, renewal and retention, keyExportable,
 * link renames, planted symlinks and foreign files, unsafe folders, new folders' modes,
 * installed.json (fields, unknown keys kept) and the sweep of temp files. Grants are in
 * test_acl.c, hooks in test_hooks.c, crashes in test_store_crash.c. */
#include <jansson.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <time.h>

#include "kt.h"
#include "kvvm/installed.h"
#include "kvvm/log.h"
#include "kvvm/store.h"
#include "test_store_fx.h"

static char *fx;  /* certificates */
static struct kvvm_bundle *ba, *bb, *bc;

struct env {
  char *top, *state, *store;  /* a fresh folder, its state folder and store folder */
  struct kvvm_store *s;
};

static void env_open(struct env *e, unsigned retain)
{
  struct kvvm_store_opts o = {.state_dir = e->state, .retain = retain};
  kvvm_store_open(&o, &e->s);
}

static void env_init(struct env *e)
{
  e->top = kt_tmpdir();
  e->state = kvvm_path_join(e->top, "state");
  e->store = kvvm_path_join(e->top, "store");
  env_open(e, 0);
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
                             const struct kvvm_bundle *b, const char *version,
                             struct kvvm_install_result *res)
{
  enum kvvm_err rc = kvvm_store_install(e->s, cc, b, version, res);
  if (kvvm_store_commit(e->s) != KVVM_OK)
    fprintf(stderr, "  commit failed\n");
  return rc;
}

static char *at(const char *dir, const char *name) { return kvvm_path_join(dir, name); }

static char *link_of(const char *path)
{
  char buf[1024];
  ssize_t n = readlink(path, buf, sizeof buf - 1);
  if (n < 0)
    return NULL;
  buf[n] = '\0';
  return kvvm_xstrdup(buf);
}

static bool is_root_0600(const char *path)
{
  struct stat st;
  return lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == 0 && st.st_gid == 0 &&
         (st.st_mode & 07777) == 0600;
}

static unsigned mode_of(const char *path)
{
  struct stat st;
  return lstat(path, &st) == 0 ? (unsigned)(st.st_mode & 07777) : 0xffffu;
}

/* Install a into the folder a setting maps to, and check where the files went. */
static void mapping_case(const char *top, const char *obs, const char *dir, const char *stable)
{
  char *root = at(top, "root"), why[1024];
  char *text = kvvm_xasprintf("{\"runtimeSettings\":[{\"handlerSettings\":{\"publicSettings\":"
                              "{\"secretsManagementSettings\":{\"observedCertificates\":[%s]}}"
                              "}}]}", obs);
  struct kvvm_settings_opts so = {.default_store_root = root};
  struct kvvm_config *cfg = NULL;
  struct env e = {.top = kvvm_xstrdup(top), .state = at(top, "state")};
  KT_CHECK(kvvm_settings_parse(text, strlen(text), &so, &cfg, why, sizeof why) == KVVM_OK);
  if (cfg) {
    env_open(&e, 0);
    struct kvvm_install_result res;
    KT_CHECK(install(&e, &cfg->certs[0], ba, "v1", &res) == KVVM_OK);
    char *want_dir = kvvm_xasprintf("%s%s", top, dir), *link = at(want_dir, stable);
    char *file = at(want_dir, "kvt.c1.v1");
    KT_STREQ(cfg->certs[0].store_dir, want_dir);
    KT_STREQ(res.link, link);
    KT_STREQ(res.file, file);
    char *target = link_of(link);
    KT_STREQ(target, "kvt.c1.v1");
    KT_CHECK(is_root_0600(file));
    KT_CHECK(mode_of(want_dir) == 0700);
    free(target);
    free(file);
    free(link);
    free(want_dir);
    kvvm_install_result_clear(&res);
    kvvm_store_close(e.s);
  }
  kvvm_config_free(cfg);
  free(e.top);
  free(e.state);
  free(text);
  free(root);
  fx_sh("rm -rf '%s/root' '%s/abs' '%s/state'", top, top, top);
}

#define URL "\"url\":\"https://kvt.vault.azure.net/secrets/c1\""
static void mapping(void)
{
  char *top = kt_tmpdir(), *abs = NULL;
  mapping_case(top, "\"https://kvt.vault.azure.net/secrets/c1\"", "/root", "kvt.c1");
  mapping_case(top, "{" URL "}", "/root", "kvt.c1");
  mapping_case(top, "{" URL ",\"certificateStoreLocation\":\"LocalMachine\","
               "\"certificateStoreName\":\"my\"}", "/root", "kvt.c1");
  mapping_case(top, "{" URL ",\"certificateStoreLocation\":\"CurrentUser\"}",
               "/root/CurrentUser", "kvt.c1");
  mapping_case(top, "{" URL ",\"certificateStoreName\":\"TrustedPeople\"}",
               "/root/TrustedPeople", "kvt.c1");
  mapping_case(top, "{" URL ",\"certificateStoreLocation\":\"CurrentUser\","
               "\"certificateStoreName\":\"WebHosting\"}", "/root/CurrentUser/WebHosting",
               "kvt.c1");
  abs = kvvm_xasprintf("{" URL ",\"certificateStoreLocation\":\"%s/abs/certs\","
                       "\"customSymbolicLinkName\":\"app1Cert1\"}", top);
  mapping_case(top, abs, "/abs/certs", "app1Cert1");
  /* The folder that already existed (kt_tmpdir's, 0700) keeps its mode. */
  KT_CHECK(mode_of(top) == 0700);
  free(abs);
  kt_rmtree(top);
  free(top);
}

static void layout_and_content(void)
{
  struct env e;
  env_init(&e);
  struct kvvm_cert_cfg cc = fx_cc("c1", e.store, NULL);
  struct kvvm_install_result res;
  KT_CHECK(install(&e, &cc, ba, "0123abcd", &res) == KVVM_OK);
  KT_CHECK(res.changed && res.first && !res.prev_version && !res.pfx);
  char *text = NULL, *want = NULL, why[256];
  size_t len = 0, wlen = 0;
  KT_CHECK(kvvm_file_read(res.link, 1 << 20, &text, &len) == KVVM_OK);
  KT_CHECK(kvvm_bundle_to_pem(ba, &want, &wlen) == KVVM_OK);
  KT_CHECK(text && want && len == wlen && memcmp(text, want, len) == 0);
  /* Leaf first, then the CA, then the key. */
  KT_CHECK(text && strncmp(text, "-----BEGIN CERTIFICATE-----", 27) == 0);
  KT_CHECK(text && strstr(text, "BEGIN PRIVATE KEY") > strstr(text, "END CERTIFICATE"));
  struct kvvm_bundle *back = NULL;
  KT_CHECK(kvvm_certmat_from_pem(text, len, &back, why, sizeof why) == KVVM_OK);
  KT_CHECK(back && kvvm_bundle_chain_len(back) == 1);
  KT_STREQ(back ? kvvm_bundle_facts(back)->thumbprint : NULL, kvvm_bundle_facts(ba)->thumbprint);
  KT_CHECK(is_root_0600(res.file));
  char *acl = fx_out("getfacl -cpn '%s'", res.file);
  KT_STREQ(acl, "user::rw-\ngroup::---\nother::---\n\n");
  /* Only certificate files in the store folder. */
  char *ls = fx_out("ls -A '%s'", e.store);
  KT_STREQ(ls, "kvt.c1\nkvt.c1.0123abcd\n");
  free(ls);
  free(acl);
  kvvm_bundle_free(back);
  free(text);
  kvvm_free_secret(want, wlen);
  kvvm_install_result_clear(&res);
  fx_cc_free(&cc);
  env_done(&e);
}

struct snap {
  ino_t ino;
  struct timespec mtime, ctime;
};

static struct snap snap_of(const char *path)
{
  struct stat st;
  struct snap s = {0};
  if (lstat(path, &st) == 0)
    s = (struct snap){st.st_ino, st.st_mtim, st.st_ctim};
  return s;
}

static bool same(struct snap a, struct snap b)
{
  return a.ino && a.ino == b.ino && a.mtime.tv_sec == b.mtime.tv_sec &&
         a.mtime.tv_nsec == b.mtime.tv_nsec && a.ctime.tv_sec == b.ctime.tv_sec &&
         a.ctime.tv_nsec == b.ctime.tv_nsec;
}

/* The second install of the same version (after a restart) writes nothing at all: inodes,
 * mtimes and ctimes of the files, the link, the folder and installed.json stay. */
static void unchanged_zero_writes(void)
{
  struct env e;
  env_init(&e);
  struct kvvm_cert_cfg cc = fx_cc("c1", e.store, NULL);
  cc.key_exportable = true;
  struct kvvm_install_result res;
  KT_CHECK(install(&e, &cc, ba, "v1", &res) == KVVM_OK);
  char *state = at(e.state, "installed.json");
  const char *paths[] = {res.file, res.link, res.pfx, e.store, state};
  struct snap before[5];
  for (int i = 0; i < 5; i++)
    before[i] = snap_of(paths[i]);
  struct timespec pause = {0, 20 * 1000 * 1000};
  nanosleep(&pause, NULL);
  kvvm_store_close(e.s);
  env_open(&e, 0);
  struct kvvm_install_result again;
  KT_CHECK(install(&e, &cc, ba, "v1", &again) == KVVM_OK);
  KT_CHECK(!again.changed);
  KT_STREQ(again.prev_version, "v1");
  for (int i = 0; i < 5; i++)
    KT_CHECK(same(before[i], snap_of(paths[i])));
  kvvm_install_result_clear(&again);
  kvvm_install_result_clear(&res);
  free(state);
  fx_cc_free(&cc);
  env_done(&e);
}

static bool exists(const char *dir, const char *name)
{
  char *p = at(dir, name);
  bool r = kvvm_path_exists(p);
  free(p);
  return r;
}

static void renewal_and_retention(void)
{
  struct env e;
  env_init(&e);
  struct kvvm_cert_cfg cc = fx_cc("c1", e.store, NULL);
  struct kvvm_install_result r1, r2, r3;
  KT_CHECK(install(&e, &cc, ba, "v1", &r1) == KVVM_OK);
  KT_CHECK(install(&e, &cc, bb, "v2", &r2) == KVVM_OK);
  KT_CHECK(r2.changed && !r2.first);
  KT_STREQ(r2.prev_version, "v1");
  KT_STREQ(r2.prev_thumbprint, kvvm_bundle_facts(ba)->thumbprint);
  KT_CHECK(exists(e.store, "kvt.c1.v1") && exists(e.store, "kvt.c1.v2"));
  /* The new link and v1's removal wait for the commit: the link moves only once v3's data
   * is durable, v1 goes only after that. */
  KT_CHECK(kvvm_store_install(e.s, &cc, bc, "v3", &r3) == KVVM_OK);
  KT_CHECK(exists(e.store, "kvt.c1.v1"));
  char *target = link_of(r3.link);
  KT_STREQ(target, "kvt.c1.v2");
  free(target);
  KT_CHECK(kvvm_store_commit(e.s) == KVVM_OK);
  target = link_of(r3.link);
  KT_STREQ(target, "kvt.c1.v3");
  KT_CHECK(!exists(e.store, "kvt.c1.v1") && exists(e.store, "kvt.c1.v2") &&
           exists(e.store, "kvt.c1.v3"));
  kvvm_install_result_clear(&r1);
  kvvm_install_result_clear(&r2);
  kvvm_install_result_clear(&r3);
  /* Retention 1: only the current version; retention 3: three. */
  kvvm_store_close(e.s);
  env_open(&e, 1);
  KT_CHECK(install(&e, &cc, ba, "v4", &r1) == KVVM_OK);
  char *ls = fx_out("ls -A '%s'", e.store);
  KT_STREQ(ls, "kvt.c1\nkvt.c1.v4\n");
  free(ls);
  kvvm_store_close(e.s);
  env_open(&e, 3);
  KT_CHECK(install(&e, &cc, bb, "v5", &r2) == KVVM_OK);
  KT_CHECK(install(&e, &cc, bc, "v6", &r3) == KVVM_OK);
  ls = fx_out("ls -A '%s'", e.store);
  KT_STREQ(ls, "kvt.c1\nkvt.c1.v4\nkvt.c1.v5\nkvt.c1.v6\n");
  free(ls);
  free(target);
  kvvm_install_result_clear(&r1);
  kvvm_install_result_clear(&r2);
  kvvm_install_result_clear(&r3);
  fx_cc_free(&cc);
  env_done(&e);
}

static void key_exportable(void)
{
  struct env e;
  env_init(&e);
  struct kvvm_cert_cfg cc = fx_cc("c1", e.store, "app");
  cc.key_exportable = true;
  struct kvvm_install_result res, off;
  KT_CHECK(install(&e, &cc, ba, "v1", &res) == KVVM_OK);
  char *want = at(e.store, "app.pfx");
  KT_STREQ(res.pfx, want);
  KT_CHECK(is_root_0600(want));
  unsigned char *der = NULL;
  size_t len = 0;
  char why[256];
  struct kvvm_bundle *back = NULL;
  KT_CHECK(kvvm_file_read(want, 1 << 20, (char **)&der, &len) == KVVM_OK);
  KT_CHECK(kvvm_certmat_from_pkcs12(der, len, "", &back, why, sizeof why) == KVVM_OK);
  KT_STREQ(back ? kvvm_bundle_facts(back)->thumbprint : NULL, kvvm_bundle_facts(ba)->thumbprint);
  KT_CHECK(back && kvvm_bundle_chain_len(back) == 1);
  /* Turned off: the .pfx goes; the PEM stays. */
  cc.key_exportable = false;
  KT_CHECK(install(&e, &cc, ba, "v1", &off) == KVVM_OK);
  KT_CHECK(off.changed && !off.pfx && !kvvm_path_exists(want) && is_root_0600(off.file));
  kvvm_bundle_free(back);
  kvvm_free_secret(der, len);
  free(want);
  kvvm_install_result_clear(&res);
  kvvm_install_result_clear(&off);
  fx_cc_free(&cc);
  env_done(&e);
}

/* customSymbolicLinkName changed: the new name appears, the old one goes. */
static void link_renamed(void)
{
  struct env e;
  env_init(&e);
  struct kvvm_cert_cfg cc = fx_cc("c1", e.store, "old");
  struct kvvm_install_result r1, r2;
  KT_CHECK(install(&e, &cc, ba, "v1", &r1) == KVVM_OK);
  free(cc.link_name);
  cc.link_name = kvvm_xstrdup("new");
  KT_CHECK(install(&e, &cc, ba, "v1", &r2) == KVVM_OK);
  char *ls = fx_out("ls -A '%s'", e.store);
  KT_STREQ(ls, "kvt.c1.v1\nnew\n");
  free(ls);
  kvvm_install_result_clear(&r1);
  kvvm_install_result_clear(&r2);
  fx_cc_free(&cc);
  env_done(&e);
}

/* Plant something at name, install, expect a refusal that says why, and the victim intact. */
static void planted_case(const char *plant, const char *name, const char *words)
{
  struct env e;
  env_init(&e);
  char *victim = at(e.top, "victim");
  kt_write(victim, "precious\n");
  fx_sh("mkdir -m 700 '%s' && cd '%s' && %s", e.store, e.store, plant);
  struct kvvm_cert_cfg cc = fx_cc("c1", e.store, NULL);
  struct kvvm_install_result res;
  KT_CHECK(install(&e, &cc, ba, "v1", &res) == KVVM_E_STORE);
  KT_CONTAINS(res.why, name);
  KT_CONTAINS(res.why, words);
  char *text = NULL;
  KT_CHECK(kvvm_file_read(victim, 100, &text, NULL) == KVVM_OK);
  KT_STREQ(text, "precious\n");
  struct kvvm_installed_cert ic;
  KT_CHECK(kvvm_installed_get(kvvm_store_installed(e.s), cc.url, e.store, &ic));
  KT_CONTAINS(ic.last_error, words);
  KT_CHECK(!ic.version);
  KT_CHECK(fx_count_prefix(e.store, ".kvvm-tmp") == 0);
  free(text);
  free(victim);
  kvvm_install_result_clear(&res);
  fx_cc_free(&cc);
  env_done(&e);
}

static void planted(void)
{
  planted_case("ln -s ../victim kvt.c1.v1", "kvt.c1.v1", "symbolic link kvvm did not make");
  planted_case("ln -s ../victim kvt.c1", "kvt.c1", "symbolic link to ../victim");
  planted_case("echo mine >kvt.c1", "kvt.c1", "a file kvvm did not make");
  planted_case("echo x >kvt.c1.v1 && chown 12345 kvt.c1.v1", "kvt.c1.v1",
               "owned by another user");
  planted_case("mkfifo kvt.c1.v1", "kvt.c1.v1", "not a regular file");
}

static void refused_folder(const char *prep, const char *sub, const char *words)
{
  struct env e;
  env_init(&e);
  fx_sh("cd '%s' && %s", e.top, prep);
  char *dir = at(e.top, sub);
  struct kvvm_cert_cfg cc = fx_cc("c1", dir, NULL);
  struct kvvm_install_result res;
  KT_CHECK(install(&e, &cc, ba, "v1", &res) == KVVM_E_STORE);
  KT_CONTAINS(res.why, words);
  kvvm_install_result_clear(&res);
  fx_cc_free(&cc);
  free(dir);
  env_done(&e);
}

static void unsafe_folders(void)
{
  refused_folder("mkdir -m 777 open", "open/store", "writable by everyone");
  refused_folder("mkdir -m 770 grp", "grp/store", "writable by its group");
  refused_folder("mkdir -m 755 theirs && chown 12345 theirs", "theirs/store", "owned by uid 12345");
  refused_folder("mkdir -m 755 acl && setfacl -m u:12345:rwx acl", "acl/store",
                 "writable through an ACL entry (uid 12345)");
  refused_folder("mkdir -m 700 real && ln -s real lnk", "lnk/store", "a symbolic link");
  refused_folder("echo x >file", "file/store", "not a folder");
  /* The store folder itself may not be world-writable even with the sticky bit. */
  refused_folder("mkdir -m 1777 sticky", "sticky", "writable by everyone");
  /* ... but a sticky world-writable folder above it is fine (as /tmp is). */
  struct env e;
  env_init(&e);
  fx_sh("mkdir -m 1777 '%s/sticky'", e.top);
  char *dir = at(e.top, "sticky/store");
  struct kvvm_cert_cfg cc = fx_cc("c1", dir, NULL);
  struct kvvm_install_result res;
  KT_CHECK(install(&e, &cc, ba, "v1", &res) == KVVM_OK);
  kvvm_install_result_clear(&res);
  /* A version that is not a plain file name is refused before anything is touched. */
  KT_CHECK(install(&e, &cc, bb, "../x", &res) == KVVM_E_STORE);
  KT_CONTAINS(res.why, "not a plain file name");
  kvvm_install_result_clear(&res);
  KT_CHECK(install(&e, &cc, bb, ".hidden", &res) == KVVM_E_STORE);
  kvvm_install_result_clear(&res);
  fx_cc_free(&cc);
  free(dir);
  env_done(&e);
}

/* A parent with a default ACL and a wide umask: the folders kvvm makes are 0700, plain. */
static void new_folders_exact(void)
{
  struct env e;
  env_init(&e);
  fx_sh("mkdir -m 755 '%s/p' && setfacl -d -m u:12345:rwx,g::rwx,o::rwx '%s/p'", e.top, e.top);
  char *dir = at(e.top, "p/a/b");
  struct kvvm_cert_cfg cc = fx_cc("c1", dir, NULL);
  struct kvvm_install_result res;
  mode_t old = umask(0);
  KT_CHECK(install(&e, &cc, ba, "v1", &res) == KVVM_OK);
  umask(old);
  char *a = at(e.top, "p/a");
  KT_CHECK(mode_of(a) == 0700 && mode_of(dir) == 0700);
  char *acl = fx_out("getfacl -cpn '%s' '%s'", a, dir);
  KT_STREQ(acl, "user::rwx\ngroup::---\nother::---\n\nuser::rwx\ngroup::---\nother::---\n\n");
  KT_CHECK(is_root_0600(res.file));
  free(acl);
  free(a);
  free(dir);
  kvvm_install_result_clear(&res);
  fx_cc_free(&cc);
  env_done(&e);
}

/* A temp file is left as created only when it already is root's 0600 with no ACL: a default
 * ACL on a folder kvvm did not make, or a umask that takes the owner's bits, must not reach
 * the installed file. */
static void fresh_file_case(const char *prep, mode_t mask)
{
  struct env e;
  env_init(&e);
  fx_sh("mkdir -m 700 '%s' && %s '%s'", e.store, prep, e.store);
  struct kvvm_cert_cfg cc = fx_cc("c1", e.store, NULL);
  struct kvvm_install_result res;
  mode_t old = umask(mask);
  KT_CHECK(install(&e, &cc, ba, "v1", &res) == KVVM_OK);
  umask(old);
  KT_CHECK(is_root_0600(res.file));
  char *acl = fx_out("getfacl -cpn '%s'", res.file);
  KT_STREQ(acl, "user::rw-\ngroup::---\nother::---\n\n");
  free(acl);
  kvvm_install_result_clear(&res);
  fx_cc_free(&cc);
  env_done(&e);
}

static void fresh_file_exact(void)
{
  fresh_file_case("setfacl -d -m u:12345:rwx,g::rwx,o::rwx", 0);
  fresh_file_case("setfacl -d -m u:12345:r", 077);
  fresh_file_case("true", 0277);
  fresh_file_case("true", 0);
}

static void installed_state(void)
{
  struct env e;
  env_init(&e);
  struct kvvm_cert_cfg cc = fx_cc("c1", e.store, NULL);
  struct kvvm_install_result res;
  time_t t0 = time(NULL);
  KT_CHECK(install(&e, &cc, ba, "v1", &res) == KVVM_OK);
  kvvm_install_result_clear(&res);
  /* A newer version's keys, at the top and in the record, survive our rewrite. */
  char *path = at(e.state, "installed.json"), *text = NULL;
  json_t *doc = json_load_file(path, 0, NULL);
  json_object_set_new(doc, "future_top", json_string("keep"));
  json_t *rec = json_object_iter_value(json_object_iter(json_object_get(doc, "certs")));
  json_object_set_new(rec, "future_field", json_integer(7));
  json_dump_file(doc, path, 0);
  json_decref(doc);
  kvvm_store_close(e.s);
  env_open(&e, 0);
  KT_CHECK(install(&e, &cc, bb, "v2", &res) == KVVM_OK);
  struct kvvm_installed_cert ic;
  KT_CHECK(kvvm_installed_get(kvvm_store_installed(e.s), cc.url, e.store, &ic));
  KT_STREQ(ic.version, "v2");
  KT_STREQ(ic.thumbprint, kvvm_bundle_facts(bb)->thumbprint);
  KT_STREQ(ic.file, res.file);
  KT_STREQ(ic.link, res.link);
  KT_CHECK(!ic.pfx && !ic.last_error && !ic.hook_due);  /* no hooks folder: nothing due */
  KT_CHECK(ic.installed_at >= t0 && ic.not_after == kvvm_bundle_facts(bb)->not_after);
  KT_CHECK(kvvm_file_read(path, 1 << 20, &text, NULL) == KVVM_OK);
  /* Records are written one a line, in compact form (parked, installed.c). */
  doc = json_loads(text ? text : "", 0, NULL);
  rec = json_object_iter_value(json_object_iter(json_object_get(doc, "certs")));
  KT_STREQ(json_string_value(json_object_get(doc, "future_top")), "keep");
  KT_CHECK(json_integer_value(json_object_get(rec, "future_field")) == 7);
  KT_CHECK(json_integer_value(json_object_get(doc, "format")) == 1);
  KT_STREQ(json_string_value(json_object_get(rec, "version")), "v2");
  json_decref(doc);
  struct kvvm_installed_cert *all = NULL;
  KT_CHECK(kvvm_installed_list(kvvm_store_installed(e.s), &all) == 1);
  KT_STREQ(all ? all[0].url : NULL, cc.url);
  /* A fetch error recorded by the service; cleared by the next good install. */
  kvvm_installed_set_error(kvvm_store_installed(e.s), cc.url, e.store, "network down");
  KT_CHECK(kvvm_installed_get(kvvm_store_installed(e.s), cc.url, e.store, &ic));
  KT_STREQ(ic.last_error, "network down");
  free(all);
  free(text);
  free(path);
  kvvm_install_result_clear(&res);
  fx_cc_free(&cc);
  env_done(&e);
}

static void sweep(void)
{
  struct env e;
  env_init(&e);
  struct kvvm_cert_cfg cc = fx_cc("c1", e.store, NULL);
  struct kvvm_install_result res;
  KT_CHECK(install(&e, &cc, ba, "v1", &res) == KVVM_OK);
  fx_sh("cd '%s' && echo x >.kvvm-tmp.1 && ln -s kvt.c1.v1 .kvvm-tmp.2 && "
        "echo x >.kvvm-tmp.3 && chown 12345 .kvvm-tmp.3", e.store);
  struct kvvm_cert_cfg *certs = &cc;
  struct kvvm_config cfg = {.certs = certs, .n_certs = 1};
  KT_CHECK(kvvm_store_sweep(e.s, &cfg) == 2);
  char *ls = fx_out("ls -A '%s'", e.store);
  KT_STREQ(ls, ".kvvm-tmp.3\nkvt.c1\nkvt.c1.v1\n");
  free(ls);
  kvvm_install_result_clear(&res);
  fx_cc_free(&cc);
  env_done(&e);
}

/* Records parked between uses (installed.c): what is read back is what was written, a
 * change made before a park survives it, keys of a newer version survive, and a record that
 * is not an object (a string would read as parked text) is dropped at load. */
static void installed_parking(void)
{
  char *dir = kt_tmpdir(), *path = at(dir, "installed.json"), *text = NULL;
  static const char doc[] =
      "{\"format\": 1, \"seq\": 3, \"certs\": {\"u1 /s\": {\"url\": \"u1\", "
      "\"store_dir\": \"/s\", \"version\": \"v1\", \"hook_error\": \"10-x exited 1\", "
      "\"hook_due\": {\"seq\": 1}, \"x_future\": [1, 2]}, \"u2 /s\": {\"url\": \"u2\", "
      "\"store_dir\": \"/s\", \"version\": \"v9\"}, \"junk\": \"{}\"}}";
  KT_CHECK(kvvm_file_write_atomic(path, doc, sizeof doc - 1, 0600) == KVVM_OK);
  struct kvvm_installed *st = NULL;
  struct kvvm_installed_cert ic;
  bool due = false;
  KT_CHECK(kvvm_installed_load(dir, &st) == KVVM_OK);
  KT_CHECK(kvvm_installed_get(st, "u1", "/s", &ic) && strcmp(ic.version, "v1") == 0);
  kvvm_installed_park(st);
  KT_STREQ(kvvm_installed_hook_error(st, "u1", "/s", &due), "10-x exited 1");
  KT_CHECK(due && !kvvm_installed_hook_error(st, "u2", "/s", &due) && !due);
  kvvm_installed_set_error(st, "u2", "/s", "network down");
  kvvm_installed_park(st);
  KT_CHECK(kvvm_installed_get(st, "u2", "/s", &ic) && ic.last_error &&
           strcmp(ic.last_error, "network down") == 0);
  kvvm_installed_park(st);
  KT_CHECK(kvvm_installed_save(st) == KVVM_OK);
  kvvm_installed_free(st);
  KT_CHECK(kvvm_file_read(path, 1 << 20, &text, NULL) == KVVM_OK);
  json_t *back = json_loads(text ? text : "", 0, NULL), *certs = json_object_get(back, "certs");
  KT_CHECK(json_object_size(certs) == 2 && !json_object_get(certs, "junk"));
  KT_CHECK(json_array_size(json_object_get(json_object_get(certs, "u1 /s"), "x_future")) == 2);
  KT_STREQ(json_string_value(json_object_get(json_object_get(certs, "u2 /s"), "last_error")),
           "network down");
  KT_CHECK(json_integer_value(json_object_get(back, "seq")) == 3);
  json_decref(back);
  free(text);
  free(path);
  kt_rmtree(dir);
  free(dir);
}

int main(void)
{
  kvvm_log_set_stderr_level((enum kvvm_log_level)(KVVM_LOG_ERR + 1));
  /* No hooks folder, whatever this machine has in /etc/kvvm/hooks.d (test_hooks has one). */
  setenv("KVVM_HOOKS_DIR", "/nonexistent/kvvm-hooks.d", 1);
  fx = kt_tmpdir();
  if (!fx || fx_gen(fx) != 0) {
    fprintf(stderr, "cannot make certificates with openssl\n");
    return 1;
  }
  ba = fx_bundle(fx, "a");
  bb = fx_bundle(fx, "b");
  bc = fx_bundle(fx, "c");
  static const struct kt_case cases[] = {
      KT_CASE(mapping),          KT_CASE(layout_and_content), KT_CASE(unchanged_zero_writes),
      KT_CASE(renewal_and_retention), KT_CASE(key_exportable), KT_CASE(link_renamed),
      KT_CASE(planted),          KT_CASE(unsafe_folders),     KT_CASE(new_folders_exact),
      KT_CASE(fresh_file_exact),
      KT_CASE(installed_state),  KT_CASE(installed_parking), KT_CASE(sweep),
  };
  int rc = KT_RUN("store", cases);
  kvvm_bundle_free(ba);
  kvvm_bundle_free(bb);
  kvvm_bundle_free(bc);
  kt_rmtree(fx);
  free(fx);
  return rc;
}
