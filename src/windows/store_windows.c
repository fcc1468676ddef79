/* store.h on the Windows certificate store (crypt32). cc->store_dir names a system store,
 * "LocalMachine\\MY" or "<LocalMachine|CurrentUser>\\<name>" (settings_cert.c). This file
 * holds the store.h calls and the record in installed.json; store_import_windows.c puts a
 * version into the store. A version already in the store with its key (the same certificate
 * under a new version, or installed.json lost) is not imported again: that would leave its
 * key orphaned. The record lists every version kvvm put there ("versions": thumbprint, path,
 * key provider and container, the readers its key's DACL gives), oldest first. `accounts`
 * (each key's DACL) is store_grant_windows.c's, linkOnRenewal store_link_windows.c's. A new
 * version makes its renewal hooks due (store_hooks_due), as on Linux; KVVM_FILE and
 * KVVM_LINK are its Cert: path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/installed_int.h"
#include "store/store_hooks_int.h"
#include "kvvm/clock.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/paths.h"
#include "kvvm/store.h"
#include "windows/store_int.h"
#include "windows/win_int.h"

#define THUMB_BYTES 20

void store_win_say(const struct op *op, const char *what, DWORD code)
{
  char err[300];
  snprintf(op->res->why, sizeof op->res->why, "%s: %s: %s", op->cc->store_dir, what,
           kvvm_win_strerror(code, err, sizeof err));
}

/* store_dir as settings_cert.c makes it for KVVM_STORE_WINDOWS; anything else (settings
 * read for the files store) is refused rather than guessed at. */
enum kvvm_err store_win_where_parse(struct op *op)
{
  const char *dir = op->cc->store_dir, *slash = strchr(dir, '\\');
  size_t n = slash ? (size_t)(slash - dir) : 0;
  if (n == 12 && strncmp(dir, "LocalMachine", n) == 0)
    op->where = (struct store_win_where){CERT_SYSTEM_STORE_LOCAL_MACHINE, CRYPT_MACHINE_KEYSET, NULL};
  else if (n == 11 && strncmp(dir, "CurrentUser", n) == 0)
    op->where = (struct store_win_where){CERT_SYSTEM_STORE_CURRENT_USER, CRYPT_USER_KEYSET, NULL};
  if (n && slash[1])
    op->where.name = kvvm_win_wide(slash + 1);
  if (op->where.location && op->where.name)
    return KVVM_OK;
  snprintf(op->res->why, sizeof op->res->why, "\"%s\" is not a Windows certificate store "
           "(expected LocalMachine\\<name> or CurrentUser\\<name>)", dir);
  return KVVM_E_STORE;
}

HCERTSTORE store_win_open(const struct op *op, bool write)
{
  DWORD flags = op->where.location | (write ? 0 : CERT_STORE_READONLY_FLAG |
                                                  CERT_STORE_OPEN_EXISTING_FLAG);
  HCERTSTORE h = CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0, flags, op->where.name);
  if (!h && write)
    store_win_say(op, "cannot open the certificate store", GetLastError());
  return h;
}

static bool thumb_bytes(const char *hex, BYTE *out)
{
  for (int i = 0; i < THUMB_BYTES; i++) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1)
      return false;
    out[i] = (BYTE)v;
  }
  return strlen(hex) == 2 * THUMB_BYTES;
}

PCCERT_CONTEXT store_win_find(HCERTSTORE h, const char *thumb)
{
  BYTE hash[THUMB_BYTES];
  CRYPT_HASH_BLOB blob = {sizeof hash, hash};
  if (!h || !thumb || !thumb_bytes(thumb, hash))
    return NULL;
  return CertFindCertificateInStore(h, STORE_WIN_ENCODING, 0, CERT_FIND_SHA1_HASH, &blob, NULL);
}

bool store_win_has_key(PCCERT_CONTEXT c)
{
  DWORD n = 0;
  return c && CertGetCertificateContextProperty(c, CERT_KEY_PROV_INFO_PROP_ID, NULL, &n);
}

/* The certificate with this thumbprint and a key is in the system store, seen through a
 * handle of its own (not one that may hold what this process just added in memory). */
bool store_win_in_store(const struct op *op, const char *thumb)
{
  HCERTSTORE h = store_win_open(op, false);
  PCCERT_CONTEXT c = store_win_find(h, thumb);
  bool ok = store_win_has_key(c);
  CertFreeCertificateContext(c);
  if (h)
    CertCloseStore(h, 0);
  return ok;
}

/* PowerShell's name for it, so a user can Get-Item what the status names. */
static char *cert_path(const struct kvvm_cert_cfg *cc, const char *thumb)
{
  return kvvm_xasprintf("Cert:\\%s\\%s", cc->store_dir, thumb);
}

static bool same(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* One version as the record lists it: enough to find, keep or remove it and its key
 * later without asking the store. */
static json_t *version_entry(const struct op *op, const char *version, const char *thumb)
{
  json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:I}", "version", version,
                        "thumbprint", thumb, "path", op->res->file, "key_provider",
                        op->key.provider, "key_container", op->key.container, "key_cng",
                        op->key.cng, "installed_at", (json_int_t)kvvm_clock_now());
  if (op->dacl_set)   /* else store_win_acl_follow gives the key its DACL */
    json_object_set_new(e, "readers", store_win_acl_json(op->readers));
  return e;
}

/* versions with this thumbprint's entry (re)placed last: the newest is the last. */
static json_t *with_version(const json_t *versions, json_t *entry)
{
  json_t *out = json_array(), *e;
  size_t i;
  const char *thumb = installed_str(entry, "thumbprint");
  json_array_foreach(versions, i, e)
    if (json_is_object(e) && !same(installed_str(e, "thumbprint"), thumb))
      json_array_append(out, e);
  json_array_append_new(out, entry);
  return out;
}

static void record(struct op *op, const struct kvvm_cert_facts *f, const char *version)
{
  struct kvvm_installed *st = op->s->inst;
  json_t *rec = installed_cert(st, op->cc->url, op->cc->store_dir, true);
  json_t *sans = json_array();
  for (char *const *p = f->sans; *p; p++)
    json_array_append_new(sans, json_string(*p));
  store_hooks_due(st, rec, op->cc, op->res, f->sans);
  installed_set_str(st, rec, "version", version);
  installed_set_str(st, rec, "thumbprint", f->thumbprint);
  installed_set_str(st, rec, "file", op->res->file);
  installed_set_str(st, rec, "link", op->res->link);
  installed_set_str(st, rec, "key_provider", op->key.provider);
  installed_set(st, rec, "installed_at", json_integer((json_int_t)kvvm_clock_now()));
  installed_set(st, rec, "not_after", json_integer((json_int_t)f->not_after));
  installed_set(st, rec, "sans", sans);
  installed_set(st, rec, "note", NULL);  /* each version's own: the root, renewal links */
  installed_set(st, rec, "versions", with_version(json_object_get(rec, "versions"),
                                                  version_entry(op, version, f->thumbprint)));
  op->rec = rec;
}

static void names(struct op *op, const char *thumb)
{
  op->res->file = cert_path(op->cc, thumb);
  op->res->link = kvvm_xstrdup(op->res->file);
  op->res->prev_version = kvvm_xstrdup(installed_str(op->rec, "version"));
  op->res->prev_thumbprint = kvvm_xstrdup(installed_str(op->rec, "thumbprint"));
  op->res->first = op->res->prev_version == NULL;
}

/* The recorded version (and, with a bundle, thumbprint) is in the store with its key. */
static bool current(struct op *op, const char *version, const char *thumb)
{
  const char *rec_thumb = installed_str(op->rec, "thumbprint");
  return same(installed_str(op->rec, "version"), version) &&
         (!thumb || same(rec_thumb, thumb)) && store_win_in_store(op, rec_thumb);
}

/* The version into the store unless it is there, then the record. */
static enum kvvm_err install(struct op *op, const struct kvvm_bundle *b, const char *version)
{
  const struct kvvm_cert_facts *f = kvvm_bundle_facts(b);
  names(op, f->thumbprint);
  if (current(op, version, f->thumbprint))
    return KVVM_OK;
  enum kvvm_err rc = store_win_put(op, b, version);
  if (rc != KVVM_OK)
    return rc;
  record(op, f, version);
  op->res->changed = true;
  KVVM_INFO("installed %s version %s (%s) as %s", op->cc->url, version, f->thumbprint,
            op->res->file);
  return KVVM_OK;
}

/* text before the record's note (renewal links), "; " between. */
static void add_note(struct op *op, const char *text)
{
  const char *was = installed_str(op->rec, "note");
  char *note = was ? kvvm_xasprintf("%s; %s", text, was) : kvvm_xstrdup(text);
  installed_set_str(op->s->inst, op->rec, "note", note);
  free(note);
}

enum kvvm_err kvvm_store_install(struct kvvm_store *s, const struct kvvm_cert_cfg *cc,
                                 const struct kvvm_bundle *b, const char *version,
                                 struct kvvm_install_result *res)
{
  struct op op = {.s = s, .cc = cc, .res = res};
  memset(res, 0, sizeof *res);
  op.rec = installed_cert(s->inst, cc->url, cc->store_dir, false);
  enum kvvm_err rc = store_win_where_parse(&op);
  if (rc == KVVM_OK && !version) {
    snprintf(res->why, sizeof res->why, "no version to install");
    rc = KVVM_E_INTERNAL;
  }
  if (rc == KVVM_OK)
    store_win_acl_want(&op);
  if (rc == KVVM_OK)
    rc = install(&op, b, version);
  if (rc == KVVM_OK)
    rc = store_win_acl_follow(&op);
  if ((rc == KVVM_OK || rc == KVVM_E_GRANT) && res->changed &&
      !same(res->prev_thumbprint, kvvm_bundle_facts(b)->thumbprint))
    store_win_link(&op, kvvm_bundle_facts(b)->thumbprint);
  if ((rc == KVVM_OK || rc == KVVM_E_GRANT) && res->changed && op.root_note)
    add_note(&op, op.root_note);
  if (rc != KVVM_OK && !res->why[0])
    snprintf(res->why, sizeof res->why, "%s", kvvm_err_str(rc));
  if (rc != KVVM_OK && rc != KVVM_E_GRANT)
    KVVM_ERR("%s: %s", cc->url, res->why);
  else if (rc == KVVM_E_GRANT)
    KVVM_WARN("%s: %s", cc->url, res->why);
  kvvm_installed_set_error(s->inst, cc->url, cc->store_dir, rc == KVVM_OK ? NULL : res->why);
  if (rc == KVVM_OK || rc == KVVM_E_GRANT)
    store_win_prune_note(s, cc->url, cc->store_dir);
  free(op.where.name);
  free(op.root_note);
  store_win_key_clear(&op.key);
  store_win_acl_clear(&op);
  return rc;
}

bool kvvm_store_keep(struct kvvm_store *s, const struct kvvm_cert_cfg *cc, const char *version,
                     struct kvvm_install_result *res, enum kvvm_err *rc)
{
  struct op op = {.s = s, .cc = cc, .res = res};
  memset(res, 0, sizeof *res);
  op.rec = installed_cert(s->inst, cc->url, cc->store_dir, false);
  bool kept = op.rec && store_win_where_parse(&op) == KVVM_OK && current(&op, version, NULL);
  if (kept) {
    names(&op, installed_str(op.rec, "thumbprint"));
    store_win_acl_want(&op);
    *rc = store_win_acl_follow(&op);
    kvvm_installed_set_error(s->inst, cc->url, cc->store_dir, *rc == KVVM_OK ? NULL : res->why);
    if (*rc != KVVM_OK)
      KVVM_WARN("%s: %s", cc->url, res->why);
    store_win_prune_note(s, cc->url, cc->store_dir);
  }
  free(op.where.name);
  store_win_acl_clear(&op);
  return kept;
}

enum kvvm_err kvvm_store_open(const struct kvvm_store_opts *opts, struct kvvm_store **out)
{
  struct kvvm_store *s = kvvm_xcalloc(1, sizeof *s);
  s->retain = opts && opts->retain ? opts->retain : KVVM_STORE_RETAIN_DEFAULT;
  kvvm_installed_load(opts && opts->state_dir ? opts->state_dir : kvvm_paths_state_dir(),
                      &s->inst);
  *out = s;
  return KVVM_OK;
}

void kvvm_store_close(struct kvvm_store *s)
{
  if (!s)
    return;
  store_win_prune_free(s);
  kvvm_installed_free(s->inst);
  free(s);
}

struct kvvm_installed *kvvm_store_installed(struct kvvm_store *s) { return s->inst; }

/* A certificate store holds no temp files: an add is one crypt32 call. The state folder's
 * temp files are the fileio layer's to sweep. */
int kvvm_store_sweep(struct kvvm_store *s, const struct kvvm_config *cfg)
{
  (void)s;
  (void)cfg;
  return 0;
}

/* Each installed certificate's kept versions get the DACL its settings now ask for. */
static enum kvvm_err reconcile_one(struct kvvm_store *s, const struct kvvm_cert_cfg *cc)
{
  struct kvvm_install_result res;
  struct op op = {.s = s, .cc = cc, .res = &res};
  memset(&res, 0, sizeof res);
  op.rec = installed_cert(s->inst, cc->url, cc->store_dir, false);
  if (!op.rec || !installed_str(op.rec, "version") || store_win_where_parse(&op) != KVVM_OK) {
    free(op.where.name);
    return KVVM_OK;
  }
  store_win_acl_want(&op);
  enum kvvm_err rc = store_win_acl_follow(&op);
  kvvm_installed_set_error(s->inst, cc->url, cc->store_dir, rc == KVVM_OK ? NULL : res.why);
  if (rc != KVVM_OK)
    KVVM_WARN("%s: %s", cc->url, res.why);
  free(op.where.name);
  store_win_acl_clear(&op);
  return rc;
}

static bool observed(const struct kvvm_config *cfg, const json_t *rec)
{
  for (size_t i = 0; i < cfg->n_certs; i++)
    if (same(cfg->certs[i].url, installed_str(rec, "url")) &&
        same(cfg->certs[i].store_dir, installed_str(rec, "store_dir")))
      return true;
  return false;
}

/* Some version's key is readable by more than SYSTEM and Administrators. */
static bool has_grants(const json_t *rec)
{
  json_t *e;
  size_t i;
  json_array_foreach(json_object_get(rec, "versions"), i, e)
    if (json_array_size(json_object_get(e, "readers")) > 0)
      return true;
  return false;
}

/* A certificate the settings no longer name keeps its versions in the store (as on Linux)
 * but not its readers: its keys go back to SYSTEM and Administrators. */
static enum kvvm_err take_back(struct kvvm_store *s, const json_t *rec)
{
  char *url = kvvm_xstrdup(installed_str(rec, "url"));
  char *dir = kvvm_xstrdup(installed_str(rec, "store_dir"));
  struct kvvm_cert_cfg none = {.url = url, .store_dir = dir};
  KVVM_INFO("%s is no longer observed: taking back who can use its keys (%s)", url,
            installed_str(rec, "readers"));
  enum kvvm_err rc = reconcile_one(s, &none);
  free(dir);
  free(url);
  return rc;
}

enum kvvm_err kvvm_store_reconcile_grants(struct kvvm_store *s, const struct kvvm_config *cfg)
{
  enum kvvm_err rc = KVVM_OK;
  json_t *rec;
  const char *key;
  for (size_t i = 0; i < cfg->n_certs; i++)
    if (reconcile_one(s, &cfg->certs[i]) != KVVM_OK)
      rc = KVVM_E_GRANT;
  json_object_foreach(json_object_get(installed_root(s->inst), "certs"), key, rec) {
    rec = installed_unpark_if(s->inst, key, rec, "\"readers\":[\"");
    if (rec && installed_str(rec, "url") && installed_str(rec, "store_dir") &&
        !observed(cfg, rec) && has_grants(rec) && take_back(s, rec) != KVVM_OK)
      rc = KVVM_E_GRANT;
  }
  return rc;
}

/* Each add was committed to the system store as it was made; what is left: the record,
 * then the versions beyond the retention (store_prune_windows.c) and the record again. Old
 * versions go only once the new one is recorded, so a crash at any point leaves the record
 * naming a version that is complete, with the one before it still there. */
enum kvvm_err kvvm_store_commit(struct kvvm_store *s)
{
  enum kvvm_err rc = kvvm_installed_save(s->inst);
  if (rc != KVVM_OK) {
    store_win_prune_free(s);
    return rc;
  }
  store_win_prune_pass(s);
  return kvvm_installed_save(s->inst);
}
