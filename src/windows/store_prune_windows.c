/* Old versions in the Windows store, at commit (once the new version is in the store and
 * installed.json names it; the record is saved again after): for each certificate installed or kept in this
 * pass (one whose settings went away keeps its certificates, as on Linux), the versions its
 * record lists beyond the retention are removed as store_prune_plan_windows.c decides. One
 * version goes in steps that a crash may cut anywhere: the certificate deleted, committed
 * (wine writes a delete only then) and looked for through a fresh handle; then its key;
 * then its entry in "versions". The entry stays until both are gone, and a certificate or
 * key already gone is no error, so the next pass finishes what a crash left. What stays
 * beyond the retention, and why, is logged and noted in the record ("versions_note"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/installed_int.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "windows/store_int.h"
#include "windows/win_int.h"

struct store_win_touched {
  char *url, *dir;
};

/* What one commit learns once, when a record first has versions beyond the retention. */
struct pass {
  struct kvvm_store *s;
  bool asked, bindings_known;
  char bindings_why[400];
  struct store_win_binding *b;
  size_t nb;
  bool gathered;
  struct store_win_key_user *u;
  size_t nu;
};

/* A record's store as an op: where it is, and a result to say why into. */
struct target {
  struct kvvm_cert_cfg cc;
  struct kvvm_install_result res;
  struct op op;
};

static bool target_open(struct target *t, struct kvvm_store *s, const char *url,
                        const char *dir)
{
  memset(t, 0, sizeof *t);
  t->cc.url = kvvm_xstrdup(url);
  t->cc.store_dir = kvvm_xstrdup(dir);
  t->op = (struct op){.s = s, .cc = &t->cc, .res = &t->res};
  return store_win_where_parse(&t->op) == KVVM_OK;
}

static void target_close(struct target *t)
{
  free(t->cc.url);
  free(t->cc.store_dir);
  free(t->op.where.name);
}

void store_win_prune_note(struct kvvm_store *s, const char *url, const char *store_dir)
{
  for (size_t i = 0; i < s->ntouched; i++)
    if (strcmp(s->touched[i].url, url) == 0 && strcmp(s->touched[i].dir, store_dir) == 0)
      return;
  s->touched = kvvm_xrealloc(s->touched, (s->ntouched + 1) * sizeof *s->touched);
  s->touched[s->ntouched++] = (struct store_win_touched){kvvm_xstrdup(url),
                                                         kvvm_xstrdup(store_dir)};
}

void store_win_prune_free(struct kvvm_store *s)
{
  for (size_t i = 0; i < s->ntouched; i++) {
    free(s->touched[i].url);
    free(s->touched[i].dir);
  }
  free(s->touched);
  s->touched = NULL;
  s->ntouched = 0;
}

static char *thumb_of(PCCERT_CONTEXT c)
{
  BYTE h[20];
  DWORD n = sizeof h;
  char hex[41] = "";
  if (CertGetCertificateContextProperty(c, CERT_SHA1_HASH_PROP_ID, h, &n) && n == sizeof h)
    for (int i = 0; i < 20; i++)
      snprintf(hex + 2 * i, 3, "%02X", h[i]);
  return kvvm_xstrdup(hex);
}

/* Every certificate with a key in the store of t, as a key user. */
static void users_in(struct pass *p, struct target *t)
{
  HCERTSTORE h = store_win_open(&t->op, false);
  PCCERT_CONTEXT c = NULL;
  while (h && (c = CertEnumCertificatesInStore(h, c)) != NULL) {
    struct store_win_key k;
    if (store_win_key_of(c, &k) != KVVM_OK)
      continue;
    p->u = kvvm_xrealloc(p->u, (p->nu + 1) * sizeof *p->u);
    p->u[p->nu++] = (struct store_win_key_user){kvvm_xstrdup(t->cc.store_dir), thumb_of(c),
                                                k.provider, k.container};
  }
  if (h)
    CertCloseStore(h, 0);
}

/* The key users of every store that a record names (each store once). */
static void gather_users(struct pass *p)
{
  json_t *rec;
  const char *key;
  size_t ndirs = 0;
  const char **dirs = kvvm_xcalloc(json_object_size(installed_certs(p->s->inst)) + 1,
                                   sizeof *dirs);
  json_object_foreach(installed_certs(p->s->inst), key, rec) {
    const char *dir = installed_str(rec, "store_dir");
    bool seen = !dir;
    for (size_t i = 0; i < ndirs && !seen; i++)
      seen = strcmp(dirs[i], dir) == 0;
    struct target t;
    if (!seen && target_open(&t, p->s, installed_str(rec, "url"), dir))
      users_in(p, &t);
    if (!seen) {
      target_close(&t);
      dirs[ndirs++] = dir;
    }
  }
  free(dirs);
  p->gathered = true;
}

static void pass_learn(struct pass *p)
{
  if (!p->asked) {
    p->bindings_known = store_win_http_bindings(&p->b, &p->nb, p->bindings_why,
                                                sizeof p->bindings_why);
    if (!p->bindings_known)
      KVVM_WARN("%s: no old certificate version is removed until they can be read",
                p->bindings_why);
    p->asked = true;
  }
  if (!p->gathered)
    gather_users(p);
}

static void pass_free(struct pass *p)
{
  store_win_bindings_free(p->b, p->nb);
  for (size_t i = 0; i < p->nu; i++) {
    free(p->u[i].store_dir);
    free(p->u[i].thumbprint);
    free(p->u[i].key_provider);
    free(p->u[i].key_container);
  }
  free(p->u);
}

/* Through a handle of its own: is the certificate still there? */
static bool present(const struct op *op, const char *thumb)
{
  HCERTSTORE h = store_win_open(op, false);
  PCCERT_CONTEXT c = store_win_find(h, thumb);
  bool found = c != NULL;
  CertFreeCertificateContext(c);
  if (h)
    CertCloseStore(h, 0);
  return found;
}

/* Deleted, committed, and seen gone; one already gone is fine. */
static enum kvvm_err remove_cert(struct op *op, const char *thumb)
{
  HCERTSTORE h = store_win_open(op, true);
  if (!h) {
    KVVM_WARN("%s: old version %s not removed: %s", op->cc->url, thumb, op->res->why);
    return KVVM_E_IO;
  }
  PCCERT_CONTEXT c = store_win_find(h, thumb);
  DWORD code = c && !CertDeleteCertificateFromStore(c) ? GetLastError() : 0;
  CertControlStore(h, 0, CERT_STORE_CTRL_COMMIT, NULL);
  CertCloseStore(h, 0);
  if (code || present(op, thumb)) {
    char err[300];
    KVVM_WARN("%s: old version %s not removed from %s: %s", op->cc->url, thumb,
              op->cc->store_dir, code ? kvvm_win_strerror(code, err, sizeof err)
                                      : "still there after the delete");
    return KVVM_E_IO;
  }
  return KVVM_OK;
}

/* The CAPI provider type of a provider name (what CryptAcquireContext wants with it). */
static DWORD prov_type_of(const char *provider)
{
  wchar_t *want = kvvm_win_wide(provider);
  DWORD type = 0, t, n;
  for (DWORD i = 0; want && !type && (n = 0, CryptEnumProvidersW(i, NULL, 0, &t, NULL, &n));
       i++) {
    wchar_t *name = kvvm_xmalloc(n);
    if (CryptEnumProvidersW(i, NULL, 0, &t, name, &n) && _wcsicmp(name, want) == 0)
      type = t;
    free(name);
  }
  free(want);
  return type;
}

/* The key a version's entry names, deleted; one already gone is fine. */
static enum kvvm_err remove_key(const struct op *op, const json_t *e)
{
  struct store_win_key k = {kvvm_xstrdup(installed_str(e, "key_provider")),
                            kvvm_xstrdup(installed_str(e, "key_container")),
                            json_is_true(json_object_get(e, "key_cng")), 0,
                            op->where.keyset == CRYPT_MACHINE_KEYSET};
  enum kvvm_err rc = KVVM_OK;
  if (!k.cng && !(k.prov_type = prov_type_of(k.provider))) {
    KVVM_WARN("%s: the key container %s is not removed: Windows has no provider \"%s\"",
              op->cc->url, k.container, k.provider);
    rc = KVVM_E_IO;
  }
  if (rc == KVVM_OK)
    rc = store_win_key_delete(&k);
  store_win_key_clear(&k);
  return rc == KVVM_E_NOENT ? KVVM_OK : rc;
}

/* One version beyond the retention removed; false: its entry stays (said). */
static bool remove_version(struct pass *p, struct op *op, const json_t *e,
                           const struct store_win_prune_step *st)
{
  const char *thumb = installed_str(e, "thumbprint"), *ver = installed_str(e, "version");
  if (remove_cert(op, thumb) != KVVM_OK || (st->delete_key && remove_key(op, e) != KVVM_OK))
    return false;
  if (st->key_user)
    KVVM_INFO("%s: old version %s (%s): key kept: also used by Cert:\\%s\\%s", op->cc->url,
              ver ? ver : "?", thumb, st->key_user->store_dir, st->key_user->thumbprint);
  KVVM_INFO("%s: removed old version %s (%s) from %s%s, beyond the %u retained versions",
            op->cc->url, ver ? ver : "?", thumb, op->cc->store_dir,
            st->delete_key ? " with its key" : "", p->s->retain);
  return true;
}

/* note += what stays beyond the retention and why. */
static void tell(struct pass *p, const struct op *op, const json_t *e,
                 const struct store_win_prune_step *st, char *note, size_t n)
{
  size_t used = strlen(note);
  const char *thumb = installed_str(e, "thumbprint");
  if (st->what == STORE_WIN_KEEP_BOUND) {
    snprintf(note + used, n - used, "%sold version %s kept: the HTTP.sys SSL binding %s uses "
             "it", used ? "; " : "", thumb, st->binding);
    KVVM_INFO("%s: old version %s kept beyond the %u retained versions: the HTTP.sys SSL "
              "binding %s uses it", op->cc->url, thumb, p->s->retain, st->binding);
  } else if (st->what == STORE_WIN_POSTPONE && !strstr(note, "postponed")) {
    snprintf(note + used, n - used, "%sremoval of old versions postponed: %s", used ? "; " : "",
             p->bindings_why);
  }
}

static void prune_versions(struct pass *p, struct op *op, json_t *rec)
{
  json_t *vers = json_object_get(rec, "versions"), *left = json_array(), *e;
  size_t n = json_array_size(vers), i;
  struct store_win_prune_ver *v = kvvm_xcalloc(n, sizeof *v);
  struct store_win_prune_step *step = kvvm_xcalloc(n, sizeof *step);
  char note[1024] = "";
  json_array_foreach(vers, i, e)
    v[i] = (struct store_win_prune_ver){installed_str(e, "thumbprint"),
                                        installed_str(e, "key_provider"),
                                        installed_str(e, "key_container")};
  struct store_win_prune_in in = {op->cc->store_dir, installed_str(rec, "thumbprint"),
                                  p->s->retain, v, n, p->bindings_known, p->b, p->nb, p->u,
                                  p->nu};
  store_win_prune_plan(&in, step);
  json_array_foreach(vers, i, e) {
    if (step[i].what != STORE_WIN_REMOVE || !remove_version(p, op, e, &step[i]))
      json_array_append(left, e);
    tell(p, op, e, &step[i], note, sizeof note);
  }
  free(v);
  free(step);
  installed_set(p->s->inst, rec, "versions", left);
  installed_set_str(p->s->inst, rec, "versions_note", note[0] ? note : NULL);
}

static void prune_record(struct pass *p, const struct store_win_touched *t)
{
  json_t *rec = installed_cert(p->s->inst, t->url, t->dir, false);
  struct target tg;
  if (json_array_size(json_object_get(rec, "versions")) <= p->s->retain) {
    if (rec)
      installed_set_str(p->s->inst, rec, "versions_note", NULL);
    return;
  }
  if (target_open(&tg, p->s, t->url, t->dir)) {
    pass_learn(p);
    /* Learning parsed every record: take this one again. */
    prune_versions(p, &tg.op, installed_cert(p->s->inst, t->url, t->dir, false));
  }
  target_close(&tg);
}

void store_win_prune_pass(struct kvvm_store *s)
{
  struct pass p = {.s = s};
  for (size_t i = 0; i < s->ntouched; i++)
    prune_record(&p, &s->touched[i]);
  pass_free(&p);
  store_win_prune_free(s);
}
