/* Read grants of the POSIX store: the exact ACL of every file of a certificate, and --x
 * entries on the folders above it that would otherwise stop a grantee. Folder entries are
 * shared by every certificate below that folder, so installed.json counts who needs them:
 *   "folders": {"<path>": {"mask_added": 1, "trimmed": "G", "entries": [{"group": false,
 *               "id": 1001, "name": "app1", "by": ["<url> <store_dir>", ...]}]}}
 * and an entry goes (with the mask bits kvvm added) when the last certificate drops it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/installed_int.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "store/store_int.h"
#include "posix/acl_int.h"

struct fctx {
  struct kvvm_store *s;
  const char *key;
  const struct store_grants *g;
  enum kvvm_err rc;
  char *why;
  size_t whylen;
};

static void fail(struct fctx *c, enum kvvm_err rc, const char *path, const char *why)
{
  if (c->rc != KVVM_OK)
    return;  /* the first failure is the one reported */
  snprintf(c->why, c->whylen, "%s: %s", path, why);
  c->rc = rc;
}

static char *rec_key(const json_t *rec)
{
  return kvvm_xasprintf("%s %s", installed_str(rec, "url"), installed_str(rec, "store_dir"));
}

static bool has_principal(const struct store_grants *g, bool group, json_int_t id)
{
  for (size_t i = 0; g && i < g->n; i++)
    if (g->p[i].group == group && g->p[i].id == id)
      return true;
  return false;
}

static bool entry_is(const json_t *e, const struct kvvm_principal *p)
{
  return json_is_true(json_object_get(e, "group")) == p->group &&
         json_integer_value(json_object_get(e, "id")) == (json_int_t)p->id;
}

static int index_of(const json_t *arr, const char *s)
{
  size_t i;
  json_t *e;
  json_array_foreach(arr, i, e)
    if (json_string_value(e) && strcmp(json_string_value(e), s) == 0)
      return (int)i;
  return -1;
}

/* The entry kvvm recorded for p on the folder at path, or NULL. */
static json_t *find_entry(json_t *folder, const struct kvvm_principal *p)
{
  size_t i;
  json_t *e;
  json_array_foreach(json_object_get(folder, "entries"), i, e)
    if (entry_is(e, p))
      return e;
  return NULL;
}

static void add_one(struct fctx *c, int fd, const char *path, json_t *folders,
                    const struct kvvm_principal *p)
{
  char why[256], *trimmed = NULL;
  bool added;
  unsigned mask_added;
  json_t *e = find_entry(json_object_get(folders, path), p);
  if (e) {
    json_t *by = json_object_get(e, "by");
    if (index_of(by, c->key) < 0 && json_array_append_new(by, json_string(c->key)) == 0)
      installed_changed(c->s->inst);
    return;
  }
  enum kvvm_err rc = kvvm_acl_dir_add_traverse(fd, p, &added, &mask_added, &trimmed, why,
                                               sizeof why);
  if (rc != KVVM_OK) {
    fail(c, rc, path, why);
    return;
  }
  if (!added)
    return;
  KVVM_INFO("%s: let %s %s traverse (--x)", path, p->group ? "group" : "user", p->name);
  json_t *folder = installed_obj(c->s->inst, folders, path);
  json_t *entries = json_object_get(folder, "entries");
  if (!json_is_array(entries))
    json_object_set_new(folder, "entries", entries = json_array());
  json_array_append_new(entries, json_pack("{s:b, s:I, s:s, s:[s]}", "group", p->group, "id",
                                           (json_int_t)p->id, "name", p->name, "by", c->key));
  mask_added |= (unsigned)json_integer_value(json_object_get(folder, "mask_added"));
  json_object_set_new(folder, "mask_added", json_integer(mask_added));
  if (trimmed && *trimmed)
    json_object_set_new(folder, "trimmed", json_string(trimmed));
  free(trimmed);
  installed_changed(c->s->inst);
}

static enum kvvm_err add_cb(int fd, const char *path, void *ctx)
{
  struct fctx *c = ctx;
  json_t *folders = installed_obj(c->s->inst, installed_root(c->s->inst), "folders");
  for (size_t i = 0; i < c->g->n; i++)
    add_one(c, fd, path, folders, &c->g->p[i]);
  return KVVM_OK;  /* one folder's trouble must not keep the others from being fixed */
}

static void untraverse(const char *path, const json_t *e, unsigned mask_bits,
                       const char *trimmed)
{
  char why[512];
  int fd;
  bool group = json_is_true(json_object_get(e, "group"));
  unsigned id = (unsigned)json_integer_value(json_object_get(e, "id"));
  enum kvvm_err rc = store_dir_open(path, false, NULL, NULL, &fd, why, sizeof why);
  if (rc == KVVM_OK) {
    rc = kvvm_acl_dir_remove_traverse(fd, group, id, mask_bits, trimmed, why, sizeof why);
    close(fd);
  }
  if (rc == KVVM_OK)
    KVVM_INFO("%s: took back the traverse entry of %s %s", path, group ? "group" : "user",
              installed_str(e, "name"));
  else
    KVVM_WARN("%s: cannot take back the traverse entry of %s %u: %s", path,
              group ? "group" : "user", id, why);
}

/* Drop key from the folder's entries that keep does not hold; untraverse those nobody needs. */
static void drop_in_folder(struct kvvm_store *s, const char *path, json_t *folder,
                           const char *key, const struct store_grants *keep)
{
  json_t *entries = json_object_get(folder, "entries");
  unsigned mask = (unsigned)json_integer_value(json_object_get(folder, "mask_added"));
  for (size_t i = json_array_size(entries); i-- > 0;) {
    json_t *e = json_array_get(entries, i), *by = json_object_get(e, "by");
    int k = index_of(by, key);
    if (k < 0 || has_principal(keep, json_is_true(json_object_get(e, "group")),
                               json_integer_value(json_object_get(e, "id"))))
      continue;
    json_array_remove(by, (size_t)k);
    installed_changed(s->inst);
    if (json_array_size(by))
      continue;
    bool last = json_array_size(entries) == 1;
    untraverse(path, e, last ? mask : 0, last ? installed_str(folder, "trimmed") : NULL);
    json_array_remove(entries, i);
  }
}

void store_grants_drop_folders(struct kvvm_store *s, const char *key,
                               const struct store_grants *keep)
{
  json_t *folders = json_object_get(installed_root(s->inst), "folders"), *folder;
  const char *path;
  void *tmp;
  json_object_foreach_safe(folders, tmp, path, folder) {
    drop_in_folder(s, path, folder, key, keep);
    if (!json_array_size(json_object_get(folder, "entries"))) {
      json_object_del(folders, path);
      installed_changed(s->inst);
    }
  }
}

static void grant_file(struct fctx *c, int dfd, const char *dir, const char *name)
{
  char why[256];
  struct stat st;
  int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return;  /* gone (a version removed by hand): nothing to grant */
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != 0)
    fail(c, KVVM_E_STORE, name, "not root's regular file; its permissions are left alone");
  else if (kvvm_acl_set_file(fd, c->g->p, c->g->n, why, sizeof why) != KVVM_OK)
    fail(c, KVVM_E_GRANT, name, why);
  else
    KVVM_DEBUG("%s/%s: read granted to [%s]", dir, name, c->g->key);
  close(fd);
}

static void grant_files(struct fctx *c, const json_t *rec, int dfd, const char *dir)
{
  size_t i, dl = strlen(dir);
  json_t *e;
  const char *pfx = installed_str(rec, "pfx");
  json_array_foreach(json_object_get(rec, "versions"), i, e)
    if (json_string_value(e) && store_name_ok(json_string_value(e)))
      grant_file(c, dfd, dir, json_string_value(e));
  if (pfx && strncmp(pfx, dir, dl) == 0 && pfx[dl] == '/' && store_name_ok(pfx + dl + 1))
    grant_file(c, dfd, dir, pfx + dl + 1);
  json_array_foreach(json_object_get(rec, "files_dirs"), i, e) {
    char why[256];
    enum kvvm_err rc = KVVM_OK;
    if (json_string_value(e) && store_name_ok(json_string_value(e)))
      rc = store_split_grant(dfd, dir, json_string_value(e), c->g, why, sizeof why);
    if (rc != KVVM_OK)
      fail(c, rc, json_string_value(e), why);
  }
}

enum kvvm_err store_grants_apply(struct kvvm_store *s, json_t *rec, int dfd, const char *dir,
                                 const struct store_grants *g, char *why, size_t whylen)
{
  const char *had = installed_str(rec, "grants");
  if (had && strcmp(had, g->key) == 0)
    return KVVM_OK;
  char *key = rec_key(rec), bad[512];
  struct fctx c = {s, key, g, KVVM_OK, why, whylen};
  int fd = -1;
  grant_files(&c, rec, dfd, dir);
  if (g->n) {
    enum kvvm_err rc = store_dir_open(dir, false, add_cb, &c, &fd, bad, sizeof bad);
    if (rc != KVVM_OK)
      fail(&c, rc, dir, bad);
    if (fd >= 0)
      close(fd);
  }
  store_grants_drop_folders(s, key, g);
  if (c.rc == KVVM_OK) {
    if (had || g->n)   /* a first install without grants has nothing to say */
      KVVM_INFO("%s: read grants now [%s] (were [%s])", installed_str(rec, "url"), g->key,
                had ? had : "");
    installed_set_str(s->inst, rec, "grants", g->key);  /* frees had */
  }
  free(key);
  return c.rc;
}

static bool observed(const struct kvvm_config *cfg, const json_t *rec)
{
  for (size_t i = 0; i < cfg->n_certs; i++)
    if (strcmp(cfg->certs[i].url, installed_str(rec, "url")) == 0 &&
        strcmp(cfg->certs[i].store_dir, installed_str(rec, "store_dir")) == 0)
      return true;
  return false;
}

/* Give rec exactly g's grants; failures become the record's last_error. */
static enum kvvm_err reconcile_one(struct kvvm_store *s, json_t *rec, const char *dir,
                                   const struct store_grants *g, enum kvvm_err resolved,
                                   const char *unresolved)
{
  char why[512] = "";
  int dfd;
  enum kvvm_err rc = store_dir_open(dir, false, NULL, NULL, &dfd, why, sizeof why);
  if (rc == KVVM_OK) {
    rc = store_grants_apply(s, rec, dfd, dir, g, why, sizeof why);
    close(dfd);
  } else if (!g->n) {
    char *key = rec_key(rec);  /* the folder is gone: what was granted above it still goes */
    store_grants_drop_folders(s, key, NULL);
    free(key);
  }
  if (resolved != KVVM_OK) {
    rc = resolved;
    snprintf(why, sizeof why, "%s", unresolved);
  }
  if (rc != KVVM_OK)
    installed_set_str(s->inst, rec, "last_error", why);
  return rc;
}

static bool key_observed(const struct kvvm_config *cfg, const char *key)
{
  for (size_t i = 0; i < cfg->n_certs; i++) {
    size_t n = strlen(cfg->certs[i].url);
    if (strncmp(key, cfg->certs[i].url, n) == 0 && key[n] == ' ' &&
        strcmp(key + n + 1, cfg->certs[i].store_dir) == 0)
      return true;
  }
  return false;
}

/* Folder entries held for certificates the settings no longer name and that have no record
 * (installed.json lost, the entries known again from folder-acls.json): taken back too. */
static void drop_unobserved_users(struct kvvm_store *s, const struct kvvm_config *cfg)
{
  json_t *folders = json_object_get(installed_root(s->inst), "folders"), *folder, *e, *k;
  json_t *gone = json_array();
  const char *path;
  size_t i, j;
  json_object_foreach(folders, path, folder)
    json_array_foreach(json_object_get(folder, "entries"), i, e)
      json_array_foreach(json_object_get(e, "by"), j, k)
        if (json_string_value(k) && !key_observed(cfg, json_string_value(k)) &&
            index_of(gone, json_string_value(k)) < 0)
          json_array_append(gone, k);
  json_array_foreach(gone, i, k) {
    KVVM_INFO("%s is no longer observed: taking back the traverse entries kept for it",
              json_string_value(k));
    store_grants_drop_folders(s, json_string_value(k), NULL);
  }
  json_decref(gone);
}

enum kvvm_err kvvm_store_reconcile_grants(struct kvvm_store *s, const struct kvvm_config *cfg)
{
  enum kvvm_err rc = KVVM_OK;
  char unresolved[512];
  for (size_t i = 0; i < cfg->n_certs; i++) {
    const struct kvvm_cert_cfg *cc = &cfg->certs[i];
    json_t *rec = installed_cert(s->inst, cc->url, cc->store_dir, false);
    if (!rec || !installed_str(rec, "version"))
      continue;  /* not installed yet: the install grants */
    struct store_grants g = {0};
    enum kvvm_err res = kvvm_acl_resolve(cc, &g.p, &g.n, unresolved, sizeof unresolved);
    g.key = kvvm_principals_str(g.p, g.n);
    if (reconcile_one(s, rec, cc->store_dir, &g, res, unresolved) != KVVM_OK)
      rc = KVVM_E_GRANT;
    kvvm_principals_free(g.p, g.n);
    free(g.key);
  }
  json_t *rec;
  const char *key;
  char empty[] = "";
  struct store_grants none = {NULL, 0, empty};
  json_object_foreach(json_object_get(installed_root(s->inst), "certs"), key, rec) {
    rec = installed_unpark_if(s->inst, key, rec, "\"grants\":");
    const char *had = rec ? installed_str(rec, "grants") : NULL;
    if (!had || !*had || !installed_str(rec, "url") || !installed_str(rec, "store_dir") ||
        observed(cfg, rec))
      continue;
    KVVM_INFO("%s is no longer observed: taking back its read grants [%s]",
              installed_str(rec, "url"), had);
    if (reconcile_one(s, rec, installed_str(rec, "store_dir"), &none, KVVM_OK, "") != KVVM_OK)
      rc = KVVM_E_GRANT;
  }
  drop_unobserved_users(s, cfg);
  kvvm_installed_park(s->inst);   /* before the pass that follows holds its connections */
  return rc;
}
