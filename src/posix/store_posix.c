/* Installing one certificate into a store folder (design.md, Install and renewal): the
 * versioned PEM and the .pfx written as temp files (O_EXCL|O_NOFOLLOW, 0600), owner, mode
 * and ACL set on the descriptor (a fileLayout's files likewise, in a temp folder); then a
 * temp symlink to the new version (and to the new folder). Their renames over the real
 * names wait for kvvm_store_commit, which flushes the data of the whole pass at once before
 * any rename (store_flush_posix.c): a crash at any instant leaves the old or the new
 * complete version behind the stable name. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/installed_int.h"
#include "kvvm/clock.h"
#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/paths.h"
#include "kvvm/mem.h"
#include "store/store_hooks_int.h"
#include "store/store_int.h"
#include "posix/posix_int.h"
#include "posix/acl_int.h"

/* One install: the folder, the names in it and what the record says. */
struct op {
  struct kvvm_store *s;
  const struct kvvm_cert_cfg *cc;
  const struct kvvm_cert_facts *facts;
  struct store_dirty *d;   /* the folder, open for the pass */
  int dfd;
  char *stable, *file, *pfx;  /* names in the folder */
  char *live, *folder;        /* fileLayout: <stable>.live and this version's folder */
  struct store_split sp;
  struct store_grants g;
  json_t *rec;
  struct kvvm_install_result *res;
};

/* What sits at name may be replaced only if it is absent or root's regular file: a planted
 * symlink or someone else's file is reported, never followed or overwritten. */
static enum kvvm_err check_target(int dfd, const char *dir, const char *name, char *why,
                                  size_t wl)
{
  struct stat st;
  const char *what = NULL;
  if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT)
      return KVVM_OK;
    snprintf(why, wl, "%s/%s: %s", dir, name, strerror(errno));
    return KVVM_E_IO;
  }
  if (S_ISLNK(st.st_mode))
    what = "a symbolic link kvvm did not make";
  else if (!S_ISREG(st.st_mode))
    what = "not a regular file";
  else if (st.st_uid != 0)
    what = "owned by another user";
  if (!what)
    return KVVM_OK;
  snprintf(why, wl, "%s/%s is %s; not followed or replaced (remove it to let kvvm install)",
           dir, name, what);
  return KVVM_E_STORE;
}

static enum kvvm_err fill(int fd, const char *dir, const struct store_grants *g, const void *data,
                          size_t len, char *why, size_t wl)
{
  struct stat st;
  if (kvvm_fd_write_all(fd, data, len) != 0 || fstat(fd, &st) != 0 ||
      ((st.st_uid != 0 || st.st_gid != 0) && fchown(fd, 0, 0) != 0)) {
    snprintf(why, wl, "%s: write: %s", dir, strerror(errno));
    return KVVM_E_IO;
  }
  /* The ACL step sets the mode too (0600, or its entries'): no chmod of its own here. */
  enum kvvm_err rc = kvvm_acl_set_file_st(fd, &st, g->p, g->n, why, wl);
  if (rc == KVVM_E_GRANT)  /* no ACLs here: install root-only; the grants step reports it */
    rc = kvvm_acl_set_file_st(fd, &st, NULL, 0, why, wl);
  return rc;
}

enum kvvm_err store_file_put(const struct store_put_to *to, const char *name, const void *data,
                             size_t len, char *why, size_t wl)
{
  int dfd = to->dfd;
  const char *dir = to->dir;
  enum kvvm_err rc = check_target(dfd, dir, name, why, wl);
  char *tmp = NULL;
  int fd = -1;
  for (int i = 0; rc == KVVM_OK && fd < 0 && i < 8; i++) {
    free(tmp);
    tmp = store_temp_name();
    fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST)
      break;
  }
  if (rc == KVVM_OK && fd < 0) {
    snprintf(why, wl, "%s: cannot create a temp file: %s", dir, strerror(errno));
    rc = KVVM_E_IO;
  }
  if (rc == KVVM_OK)
    rc = fill(fd, dir, to->g, data, len, why, wl);
  if (rc == KVVM_OK && to->sync && store_fsync(fd) != 0) {
    snprintf(why, wl, "%s: fsync: %s", dir, strerror(errno));
    rc = KVVM_E_IO;
  }
  if (fd >= 0 && close(fd) != 0 && rc == KVVM_OK)
    rc = KVVM_E_IO;
  if (rc == KVVM_OK && to->queue)
    store_queue_file(to->queue, tmp, name);
  else if (rc == KVVM_OK && renameat(dfd, tmp, dfd, name) != 0) {
    snprintf(why, wl, "%s/%s: rename: %s", dir, name, strerror(errno));
    rc = KVVM_E_IO;
  }
  if (rc != KVVM_OK && fd >= 0)
    unlinkat(dfd, tmp, 0);
  free(tmp);
  return rc;
}

/* Temp file, content, owner, mode, ACL; its rename over name queued for the commit. */
static enum kvvm_err put_file(struct op *op, const char *name, const void *data, size_t len)
{
  struct store_put_to to = {op->dfd, op->cc->store_dir, &op->g, op->d, false};
  return store_file_put(&to, name, data, len, op->res->why, sizeof op->res->why);
}

static bool eq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

static char *read_link(int dfd, const char *name)
{
  char buf[4096];
  ssize_t n = readlinkat(dfd, name, buf, sizeof buf - 1);
  if (n < 0)
    return NULL;
  buf[n] = '\0';
  return kvvm_xstrdup(buf);
}

/* A link kvvm (or Microsoft's Linux extension) made: it names a version of this
 * certificate in this folder (live: a fileLayout folder, <stable>.<layout>.<version>). */
static bool our_link(const struct op *op, const char *target, bool live)
{
  const char *slash = strrchr(target, '/'), *base = slash ? slash + 1 : target;
  size_t dl = strlen(op->cc->store_dir);
  char *prefix = live ? kvvm_xasprintf("%s.", op->stable) :
                        kvvm_xasprintf("%s.%s.", op->cc->vault_name, op->cc->secret_name);
  bool ok = strncasecmp(base, prefix, strlen(prefix)) == 0 &&
            (!slash || ((size_t)(slash - target) == dl &&
                        strncmp(target, op->cc->store_dir, dl) == 0));
  free(prefix);
  return ok;
}

/* What sits at name may be swapped: nothing, or a link kvvm made (*old: its target). */
static enum kvvm_err link_ours(struct op *op, const char *name, bool live, char **old)
{
  struct stat st;
  *old = NULL;
  if (fstatat(op->dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return KVVM_OK;
  *old = S_ISLNK(st.st_mode) ? read_link(op->dfd, name) : NULL;
  if (*old && our_link(op, *old, live))
    return KVVM_OK;
  snprintf(op->res->why, sizeof op->res->why, "%s/%s is %s%s kvvm did not make; not followed "
           "or replaced (remove it to let kvvm install)", op->cc->store_dir, name,
           *old ? "a symbolic link to " : "a file", *old ? *old : "");
  return KVVM_E_STORE;
}

/* Point name (the stable name, or with live the fileLayout link) at target: a temp
 * symlink, renamed over it by the commit. */
static enum kvvm_err swap_link(struct op *op, const char *name, const char *target, bool live)
{
  char *old = NULL, *tmp = NULL;
  enum kvvm_err rc = link_ours(op, name, live, &old);
  if (rc != KVVM_OK || eq(old, target))
    goto out;
  tmp = store_temp_name();
  if (symlinkat(target, op->dfd, tmp) == 0) {
    store_queue_link(op->d, tmp, name);
  } else {
    snprintf(op->res->why, sizeof op->res->why, "%s/%s: cannot swap the link: %s",
             op->cc->store_dir, name, strerror(errno));
    rc = KVVM_E_IO;
  }
out:
  free(old);
  free(tmp);
  return rc;
}

/* The base name of a recorded path when it lies in this folder, else NULL. */
static const char *in_dir(const struct op *op, const char *path)
{
  size_t dl = strlen(op->cc->store_dir);
  if (!path || strncmp(path, op->cc->store_dir, dl) != 0 || path[dl] != '/' ||
      strchr(path + dl + 1, '/'))
    return NULL;
  return path + dl + 1;
}

/* After a settings change: the old stable name (customSymbolicLinkName changed) and the
 * .pfx (keyExportable now false) go, once the commit has the new link in place. */
static void remove_stale(struct op *op)
{
  struct stat st;
  const char *link = in_dir(op, installed_str(op->rec, "link"));
  const char *pfx = in_dir(op, installed_str(op->rec, "pfx"));
  char *target = link && strcmp(link, op->stable) ? read_link(op->dfd, link) : NULL;
  if (target && our_link(op, target, false))
    store_queue_stale(op->d, link, "the old stable name");
  free(target);
  if (pfx && (!op->cc->key_exportable || strcmp(pfx, op->pfx)) &&
      fstatat(op->dfd, pfx, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
      st.st_uid == 0)
    store_queue_stale(op->d, pfx, "keyExportable is off");
}

static bool root_file(int dfd, const char *name, json_int_t size)
{
  struct stat st;
  return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
         st.st_uid == 0 && (size < 0 || st.st_size == size);
}

/* The fileLayout part of current(): the record names this layout's link and folder, the
 * link names the folder, and every file is in it (a deleted one makes the pass rewrite). */
static bool split_current(struct op *op)
{
  const json_t *r = op->rec;
  if (!op->live)
    return installed_str(r, "files_link") == NULL;
  char *folder = kvvm_path_join(op->cc->store_dir, op->folder);
  char *target = read_link(op->dfd, op->live);
  bool ok = eq(installed_str(r, "files_link"), op->res->files) &&
            eq(installed_str(r, "files_dir"), folder) && eq(target, op->folder) &&
            store_split_present(&op->sp, op->folder);
  free(target);
  free(folder);
  return ok;
}

static void remove_later(struct op *op, const char *name)
{
  struct store_dirty *d = op->d;
  d->remove = kvvm_xrealloc(d->remove, (d->nremove + 1) * sizeof *d->remove);
  d->remove[d->nremove++] = kvvm_xstrdup(name);
}

/* fileLayout off or changed: the old link goes with the commit once the new links are in
 * place, when it is not the new one, and the old layout's folders after it (like old
 * versions). */
static void remove_stale_split(struct op *op)
{
  const char *was = installed_str(op->rec, "layout");
  const char *live = in_dir(op, installed_str(op->rec, "files_link"));
  const char *now = op->live ? kvvm_file_layout_word(op->cc->layout) : NULL;
  json_t *dirs = json_object_get(op->rec, "files_dirs"), *e;
  size_t i;
  if (!was || (eq(was, now) && eq(live, op->live)))
    return;
  char *target = live && !eq(live, op->live) ? read_link(op->dfd, live) : NULL;
  bool ours = false;
  json_array_foreach(dirs, i, e)
    ours = ours || eq(json_string_value(e), target);
  if (ours)
    store_queue_stale(op->d, live, now ? "fileLayout changed" : "fileLayout is off");
  free(target);
  if (eq(was, now))
    return;
  json_array_foreach(dirs, i, e)
    if (json_string_value(e) && store_name_ok(json_string_value(e)))
      remove_later(op, json_string_value(e));
  installed_set(op->s->inst, op->rec, "files_dirs", NULL);
}

/* Already in place: the record names this version and thumbprint at these paths, and the
 * folder agrees (the link points at the file, which is root's and of the recorded size). */
static bool current(struct op *op, const char *version)
{
  const json_t *r = op->rec;
  /* Without the bundle (kvvm_store_keep) the version stands for the content: a Key Vault
   * secret version never changes. */
  if (!r || !eq(installed_str(r, "version"), version) ||
      (op->facts && !eq(installed_str(r, "thumbprint"), op->facts->thumbprint)) ||
      !eq(installed_str(r, "link"), op->res->link) ||
      !eq(installed_str(r, "file"), op->res->file) ||
      (op->cc->key_exportable ? !eq(installed_str(r, "pfx"), op->res->pfx) :
                                installed_str(r, "pfx") != NULL) ||
      !split_current(op))
    return false;
  char *target = read_link(op->dfd, op->stable);
  bool ok = eq(target, op->file) &&
            root_file(op->dfd, op->file, json_integer_value(json_object_get(r, "size"))) &&
            (!op->cc->key_exportable || root_file(op->dfd, op->pfx, -1));
  free(target);
  return ok;
}

/* The retained versions (key: "versions" the PEM files, "files_dirs" the fileLayout
 * folders), oldest first, with name last; those beyond the retention are handed to the
 * commit, which removes them after the folder's fsync. */
static void retain(struct op *op, json_t *rec, const char *key, const char *name)
{
  json_t *old = json_object_get(rec, key), *v = json_array();
  size_t i;
  json_t *e;
  json_array_foreach(old, i, e)
    if (json_is_string(e) && strcmp(json_string_value(e), name) != 0)
      json_array_append(v, e);
  json_array_append_new(v, json_string(name));
  while (json_array_size(v) > op->s->retain) {
    remove_later(op, json_string_value(json_array_get(v, 0)));
    json_array_remove(v, 0);
  }
  installed_set(op->s->inst, rec, key, v);
}

/* The fileLayout's part of the record: the link, the folder, each file's path through the
 * link (for the hooks), the retained folders. */
static void record_split(struct op *op, json_t *rec)
{
  struct kvvm_installed *st = op->s->inst;
  char *names[STORE_SPLIT_MAX], *folder;
  unsigned parts[STORE_SPLIT_MAX];
  const char *vars[STORE_SPLIT_MAX];
  if (!op->live) {
    installed_set(st, rec, "layout", NULL);
    installed_set(st, rec, "files_link", NULL);
    installed_set(st, rec, "files_dir", NULL);
    installed_set(st, rec, "files", NULL);
    return;
  }
  size_t n = store_split_files(&op->sp, names, parts, vars);
  json_t *files = json_object();
  for (size_t i = 0; i < n; i++) {
    json_object_set_new(files, vars[i], json_sprintf("%s/%s", op->res->files, names[i]));
    free(names[i]);
  }
  folder = kvvm_path_join(op->cc->store_dir, op->folder);
  installed_set_str(st, rec, "layout", kvvm_file_layout_word(op->cc->layout));
  installed_set_str(st, rec, "files_link", op->res->files);
  installed_set_str(st, rec, "files_dir", folder);
  installed_set(st, rec, "files", files);
  retain(op, rec, "files_dirs", op->folder);
  free(folder);
}

/* The chain check's words for the record (NULL when the chain builds, the leaf is not for
 * Server Authentication, or there is no trust store to check with: said once per process). */
static char *chain_note(const struct op *op, const struct kvvm_bundle *b)
{
  static bool told;
  char note[1024];
  const char *trust = kvvm_paths_trust_file();
  enum kvvm_err rc = kvvm_certmat_chain_gap(b, trust, note, sizeof note);
  if (rc == KVVM_E_NOENT && !told) {
    told = true;
    KVVM_INFO("no trust store %s%s: the chains of Server Authentication certificates are not "
              "checked (install ca-certificates)", trust ? "readable at " : "found",
              trust ? trust : "");
  } else if (rc == KVVM_OK && note[0]) {
    KVVM_WARN("%s: %s", op->cc->url, note);
  }
  return rc == KVVM_OK && note[0] ? kvvm_xstrdup(note) : NULL;
}

static void record(struct op *op, const char *version, size_t size, const char *note)
{
  struct kvvm_installed *st = op->s->inst;
  json_t *rec = installed_cert(st, op->cc->url, op->cc->store_dir, true);
  json_t *sans = json_array();
  for (char *const *p = op->facts->sans; *p; p++)
    json_array_append_new(sans, json_string(*p));
  store_hooks_due(st, rec, op->cc, op->res, op->facts->sans);
  installed_set_str(st, rec, "version", version);
  installed_set_str(st, rec, "thumbprint", op->facts->thumbprint);
  installed_set_str(st, rec, "file", op->res->file);
  installed_set_str(st, rec, "link", op->res->link);
  installed_set_str(st, rec, "pfx", op->res->pfx);
  installed_set(st, rec, "size", json_integer((json_int_t)size));
  installed_set(st, rec, "installed_at", json_integer((json_int_t)kvvm_clock_now()));
  installed_set(st, rec, "not_after", json_integer((json_int_t)op->facts->not_after));
  installed_set(st, rec, "sans", sans);
  installed_set_str(st, rec, "note", note);
  retain(op, rec, "versions", op->file);
  record_split(op, rec);
  op->rec = rec;
}

/* The new version's files and link, then the record. */
static enum kvvm_err put(struct op *op, const struct kvvm_bundle *b, const char *version)
{
  char *pem = NULL;
  unsigned char *p12 = NULL;
  size_t pem_len = 0, p12_len = 0;
  char *live_was = NULL;
  /* A link kvvm did not make at <stable>.live stops the install before anything is written. */
  enum kvvm_err rc = op->live ? link_ours(op, op->live, true, &live_was) : KVVM_OK;
  free(live_was);
  if (rc == KVVM_OK)
    rc = kvvm_bundle_to_pem(b, &pem, &pem_len);
  if (rc == KVVM_OK)
    rc = put_file(op, op->file, pem, pem_len);
  if (rc == KVVM_OK && op->cc->key_exportable &&
      (rc = kvvm_bundle_to_pkcs12(b, &p12, &p12_len)) == KVVM_OK)
    rc = put_file(op, op->pfx, p12, p12_len);
  if (rc == KVVM_OK && op->live)
    rc = store_split_write(&op->sp, b, op->folder, op->res->why, sizeof op->res->why);
  if (rc == KVVM_OK)
    rc = swap_link(op, op->stable, op->file, false);
  if (rc == KVVM_OK && op->live)
    rc = swap_link(op, op->live, op->folder, true);
  if (rc == KVVM_OK && op->rec) {
    remove_stale(op);
    remove_stale_split(op);
  }
  if (rc == KVVM_OK) {
    char *note = chain_note(op, b);
    record(op, version, pem_len, note);
    free(note);
  }
  if (rc == KVVM_OK)
    KVVM_INFO("installed %s version %s (%s) as %s", op->cc->url, version, op->facts->thumbprint,
              op->res->link);
  else if (!op->res->why[0])
    snprintf(op->res->why, sizeof op->res->why, "%s", kvvm_err_str(rc));
  kvvm_free_secret(pem, pem_len);
  kvvm_free_secret(p12, p12_len);
  return rc;
}

static void names(struct op *op, const char *version)
{
  const struct kvvm_cert_cfg *cc = op->cc;
  op->file = kvvm_xasprintf("%s.%s.%s", cc->vault_name, cc->secret_name, version);
  op->stable = cc->link_name ? kvvm_xstrdup(cc->link_name) :
                               kvvm_xasprintf("%s.%s", cc->vault_name, cc->secret_name);
  op->pfx = kvvm_xasprintf("%s.pfx", op->stable);
  op->res->file = kvvm_path_join(cc->store_dir, op->file);
  op->res->link = kvvm_path_join(cc->store_dir, op->stable);
  op->res->pfx = cc->key_exportable ? kvvm_path_join(cc->store_dir, op->pfx) : NULL;
  if (cc->layout != KVVM_LAYOUT_NONE) {
    op->live = kvvm_xasprintf("%s.live", op->stable);
    op->folder = kvvm_xasprintf("%s.%s.%s", op->stable, kvvm_file_layout_word(cc->layout),
                                version);
    op->res->files = kvvm_path_join(cc->store_dir, op->live);
  }
  op->res->prev_version = kvvm_xstrdup(installed_str(op->rec, "version"));
  op->res->prev_thumbprint = kvvm_xstrdup(installed_str(op->rec, "thumbprint"));
  op->res->first = op->res->prev_version == NULL;
}

/* Grants: what could not be resolved is this certificate's error even when the install
 * and the other grants went through. */
static enum kvvm_err grant(struct op *op, enum kvvm_err resolved, const char *unresolved)
{
  char why[sizeof op->res->why] = "";
  enum kvvm_err rc = store_grants_apply(op->s, op->rec, op->dfd, op->cc->store_dir, &op->g, why,
                                        sizeof why);
  if (resolved != KVVM_OK) {
    snprintf(op->res->why, sizeof op->res->why, "%s", unresolved);
    return resolved;
  }
  if (rc != KVVM_OK)
    snprintf(op->res->why, sizeof op->res->why, "%s", why);
  return rc;
}

/* kvvm_store_install, or with b NULL only when the version is already in place (*kept says
 * which; nothing is written or recorded when it is not). */
static enum kvvm_err install_op(struct kvvm_store *s, const struct kvvm_cert_cfg *cc,
                                const struct kvvm_bundle *b, const char *version,
                                struct kvvm_install_result *res, bool *kept)
{
  char unresolved[sizeof res->why];
  struct op op = {.s = s, .cc = cc, .facts = b ? kvvm_bundle_facts(b) : NULL, .dfd = -1,
                  .res = res};
  enum kvvm_err rc, resolved;
  memset(res, 0, sizeof *res);
  *kept = true;
  op.rec = installed_cert(s->inst, cc->url, cc->store_dir, false);
  if (!version || !store_name_ok(version)) {
    snprintf(res->why, sizeof res->why, "version \"%s\" is not a plain file name",
             version ? version : "");
    rc = KVVM_E_STORE;
    goto out;
  }
  names(&op, version);
  resolved = kvvm_acl_resolve(cc, &op.g.p, &op.g.n, unresolved, sizeof unresolved);
  op.g.key = kvvm_principals_str(op.g.p, op.g.n);
  rc = store_pass_dir(s, cc->store_dir, &op.d, res->why, sizeof res->why);
  op.dfd = op.d ? op.d->dfd : -1;
  op.sp = (struct store_split){op.dfd, cc->store_dir, op.stable, cc->layout, &op.g, op.d};
  if (rc == KVVM_OK && !current(&op, version)) {
    *kept = b != NULL;
    if (!b)
      goto done;
    rc = put(&op, b, version);
    res->changed = rc == KVVM_OK;
  }
  if (rc == KVVM_OK)
    rc = grant(&op, resolved, unresolved);
out:
  if (rc != KVVM_OK)
    KVVM_ERR("%s: %s", cc->url, res->why);
  kvvm_installed_set_error(s->inst, cc->url, cc->store_dir, rc == KVVM_OK ? NULL : res->why);
done:
  free(op.file);
  free(op.stable);
  free(op.pfx);
  free(op.live);
  free(op.folder);
  kvvm_principals_free(op.g.p, op.g.n);
  free(op.g.key);
  return rc;
}

enum kvvm_err kvvm_store_install(struct kvvm_store *s, const struct kvvm_cert_cfg *cc,
                                 const struct kvvm_bundle *b, const char *version,
                                 struct kvvm_install_result *res)
{
  bool kept;
  return install_op(s, cc, b, version, res, &kept);
}

bool kvvm_store_keep(struct kvvm_store *s, const struct kvvm_cert_cfg *cc, const char *version,
                     struct kvvm_install_result *res, enum kvvm_err *rc)
{
  bool kept;
  *rc = install_op(s, cc, NULL, version, res, &kept);
  if (!kept)
    kvvm_install_result_clear(res);
  return kept;
}
