/* `accounts` per certificate on Windows: every version kvvm keeps of it has a key whose DACL
 * gives exactly SYSTEM and Administrators full control and the named accounts read
 * (store_acl_windows.c builds and applies it). A new version's key gets it at import, before
 * the certificate is added (store_import_windows.c), so the store never holds a certificate
 * whose key more can read than the settings say; the versions already there get it on every
 * pass whose settings differ from what their record entry says their key has ("readers"),
 * so a change of `accounts` reaches every kept version, grants taken back too, and an
 * unchanged pass asks Windows nothing but the names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/installed_int.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "windows/store_int.h"

void store_win_acl_want(struct op *op)
{
  op->grant = store_win_acl_resolve(op->cc->accounts, &op->readers, op->grant_why,
                                    sizeof op->grant_why);
  op->sddl = store_win_acl_sddl(op->readers);
}

void store_win_acl_clear(struct op *op)
{
  store_win_acl_free(op->readers);
  free(op->sddl);
  op->readers = NULL;
  op->sddl = NULL;
}

json_t *store_win_acl_json(char *const *sids)
{
  json_t *a = json_array();
  for (char *const *p = sids; p && *p; p++)
    json_array_append_new(a, json_string(*p));
  return a;
}

/* The entry records that its key has exactly these readers. */
static bool has_readers(const json_t *entry, char *const *sids)
{
  json_t *want = store_win_acl_json(sids);
  bool same = json_equal(json_object_get(entry, "readers"), want);
  json_decref(want);
  return same;
}

/* "; " between the reasons gathered in res->why. */
static void say_more(struct op *op, const char *what)
{
  size_t used = strlen(op->res->why);
  snprintf(op->res->why + used, sizeof op->res->why - used, "%s%s", used ? "; " : "", what);
}

/* The key of the version with this thumbprint in the store, as the store's certificate
 * names it; false when that version is no longer there (nothing to keep). */
static bool key_of_version(struct op *op, const char *thumb, struct store_win_key *k)
{
  HCERTSTORE h = store_win_open(op, false);
  PCCERT_CONTEXT c = store_win_find(h, thumb);
  bool ok = store_win_key_of(c, k) == KVVM_OK;
  /* The keyset is the store location's; wine leaves the flag out of the key info. */
  k->machine = k->machine || op->where.keyset == CRYPT_MACHINE_KEYSET;
  CertFreeCertificateContext(c);
  if (h)
    CertCloseStore(h, 0);
  return ok;
}

static enum kvvm_err follow_one(struct op *op, json_t *entry)
{
  struct store_win_key k;
  char why[400];
  const char *thumb = installed_str(entry, "thumbprint");
  if (!thumb || !key_of_version(op, thumb, &k)) {
    store_win_key_clear(&k);
    return KVVM_OK;
  }
  enum kvvm_err rc = store_win_acl_set(&k, op->sddl, why, sizeof why);
  if (rc == KVVM_OK) {
    char *words = store_win_acl_display(op->readers);
    installed_set(op->s->inst, entry, "readers", store_win_acl_json(op->readers));
    KVVM_INFO("%s: the key of %s can now be used by %s", op->cc->url, thumb, words);
    free(words);
  } else {
    char *msg = kvvm_xasprintf("version %s (%s): %s", installed_str(entry, "version"), thumb,
                               why);
    say_more(op, msg);
    free(msg);
  }
  store_win_key_clear(&k);
  return rc;
}

/* The record's "readers" in words, from the current (last) version's entry. */
static void show_readers(struct op *op, bool changed)
{
  json_t *versions = json_object_get(op->rec, "versions");
  json_t *last = json_array_get(versions, json_array_size(versions) - 1);
  if (!last || (!changed && json_object_get(op->rec, "readers")) ||
      !has_readers(last, op->readers))
    return;
  char *words = store_win_acl_display(op->readers);
  installed_set_str(op->s->inst, op->rec, "readers", words);
  free(words);
}

enum kvvm_err store_win_acl_follow(struct op *op)
{
  json_t *versions = json_object_get(op->rec, "versions"), *e;
  enum kvvm_err rc = op->grant;
  bool changed = false;
  size_t i;
  op->res->why[0] = '\0';
  if (op->grant != KVVM_OK)
    say_more(op, op->grant_why);
  json_array_foreach(versions, i, e) {
    if (!json_is_object(e) || has_readers(e, op->readers))
      continue;
    if (follow_one(op, e) == KVVM_OK)
      changed = true;
    else
      rc = KVVM_E_GRANT;
  }
  show_readers(op, changed);
  return rc;
}
