/* linkOnRenewal on Windows: when a new version is in a system store, each certificate there
 * whose DNS names (subjectAltName, read from the certificate itself) are all among the new
 * one's gets CERT_RENEWAL_PROP_ID = the new one's SHA-1 hash, as Microsoft's extension does,
 * so Schannel (IIS, HTTP.sys bindings) follows the renewal. Unlike it, a predecessor is not
 * linked when someone who can use its key cannot use the new key: the binding would follow
 * the link to a key its service account cannot open and fail with SEC_E_UNKNOWN_CREDENTIALS.
 * A predecessor's readers come from its record entry when kvvm installed it, else from its
 * key's DACL; one whose DACL cannot be read is not linked. The record's "note" says what was
 * linked and what not and why; a certificate left unlinked keeps working with its own key,
 * so that is a warning, not the certificate's error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "store/installed_int.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "windows/store_int.h"
#include "windows/win_int.h"

#define SHA1_LEN 20

struct link_pass {
  struct op *op;
  PCCERT_CONTEXT fresh;
  BYTE hash[SHA1_LEN];
  char **dns;          /* the new certificate's DNS names */
  char **readers;      /* who can use the new key, SYSTEM and Administrators aside */
  char *linked, *not_linked;
};

/* The DNS names of c's subjectAltName, NULL-terminated (empty when it has none). */
static char **dns_names(PCCERT_CONTEXT c)
{
  PCERT_EXTENSION ext = CertFindExtension(szOID_SUBJECT_ALT_NAME2, c->pCertInfo->cExtension,
                                          c->pCertInfo->rgExtension);
  CERT_ALT_NAME_INFO *info = NULL;
  DWORD n = 0;
  if (!ext || !CryptDecodeObjectEx(X509_ASN_ENCODING, X509_ALTERNATE_NAME, ext->Value.pbData,
                                   ext->Value.cbData, CRYPT_DECODE_ALLOC_FLAG, NULL, &info, &n))
    return kvvm_xcalloc(1, sizeof(char *));
  char **out = kvvm_xcalloc(info->cAltEntry + 1, sizeof *out);
  size_t k = 0;
  for (DWORD i = 0; i < info->cAltEntry; i++)
    if (info->rgAltEntry[i].dwAltNameChoice == CERT_ALT_NAME_DNS_NAME &&
        (out[k] = kvvm_win_utf8(info->rgAltEntry[i].pwszDNSName)))
      k++;
  LocalFree(info);
  return out;
}

/* Every name of a is in b (DNS names compare without case); false when a has none. */
static bool contained(char *const *a, char *const *b)
{
  if (!a[0])
    return false;
  for (; *a; a++) {
    char *const *p = b;
    while (*p && strcasecmp(*p, *a) != 0)
      p++;
    if (!*p)
      return false;
  }
  return true;
}

static void hex(const BYTE *h, char out[2 * SHA1_LEN + 1])
{
  for (int i = 0; i < SHA1_LEN; i++)
    snprintf(out + 2 * i, 3, "%02X", h[i]);
}

static bool sha1_of(PCCERT_CONTEXT c, BYTE out[SHA1_LEN])
{
  DWORD n = SHA1_LEN;
  return CertGetCertificateContextProperty(c, CERT_SHA1_HASH_PROP_ID, out, &n) && n == SHA1_LEN;
}

static bool links_to(PCCERT_CONTEXT c, const BYTE hash[SHA1_LEN])
{
  BYTE have[SHA1_LEN];
  DWORD n = SHA1_LEN;
  return CertGetCertificateContextProperty(c, CERT_RENEWAL_PROP_ID, have, &n) &&
         n == SHA1_LEN && memcmp(have, hash, SHA1_LEN) == 0;
}

/* The "readers" the record lists for the version with this thumbprint, or NULL. */
static char **recorded_readers(const struct op *op, const char *thumb)
{
  json_t *e, *r;
  size_t i, j;
  json_array_foreach(json_object_get(op->rec, "versions"), i, e) {
    const char *t = installed_str(e, "thumbprint");
    if (!t || strcasecmp(t, thumb) != 0 || !json_is_array(r = json_object_get(e, "readers")))
      continue;
    char **out = kvvm_xcalloc(json_array_size(r) + 1, sizeof *out);
    json_t *s;
    json_array_foreach(r, j, s)
      out[j] = kvvm_xstrdup(json_is_string(s) ? json_string_value(s) : "");
    return out;
  }
  return NULL;
}

/* Who can use c's key: its record entry's readers, else its key's DACL; NULL and why. */
static char **readers_of(const struct op *op, PCCERT_CONTEXT c, const char *thumb, char *why,
                         size_t n)
{
  char **r = recorded_readers(op, thumb), err[256];
  struct store_win_key k;
  DWORD code = 0;
  if (r)
    return r;
  if (store_win_key_of(c, &k) != KVVM_OK) {
    snprintf(why, n, "it names no private key whose permissions could be compared");
    return NULL;
  }
  k.machine = k.machine || op->where.keyset == CRYPT_MACHINE_KEYSET;
  if (store_win_acl_read(&k, NULL, &r, &code) != KVVM_OK)
    snprintf(why, n, "the permissions of its key %s cannot be read (%s)", k.container,
             code ? kvvm_win_strerror(code, err, sizeof err) : "no DACL: anyone can use it");
  store_win_key_clear(&k);
  return r;
}

/* NULL when every reader of pred can use the new key; else why not (a new string). */
static char *reader_left_out(char *const *pred, char *const *fresh)
{
  for (char *const *p = pred; p && *p; p++)
    if (!store_win_acl_has(fresh, *p)) {
      char *name = store_win_acl_name(*p);
      char *why = kvvm_xasprintf("%s can use its key but not the new one's (a binding that "
                                 "followed the link would fail with "
                                 "SEC_E_UNKNOWN_CREDENTIALS)", name);
      free(name);
      return why;
    }
  return NULL;
}

static void add_to(char **list, const char *item)
{
  char *s = *list ? kvvm_xasprintf("%s; %s", *list, item) : kvvm_xstrdup(item);
  free(*list);
  *list = s;
}

static void not_linked(struct link_pass *lp, const char *thumb, const char *why)
{
  char *item = kvvm_xasprintf("%s (%s)", thumb, why);
  KVVM_WARN("%s: linkOnRenewal: %s is not linked to the new version: %s", lp->op->cc->url,
            thumb, why);
  add_to(&lp->not_linked, item);
  free(item);
}

static void link_one(struct link_pass *lp, PCCERT_CONTEXT c, const char *thumb)
{
  CRYPT_DATA_BLOB blob = {SHA1_LEN, lp->hash};
  char err[256], why[300] = "";
  char **pred = readers_of(lp->op, c, thumb, why, sizeof why);
  char *left_out = pred ? reader_left_out(pred, lp->readers) : NULL;
  if (!pred || left_out) {
    not_linked(lp, thumb, pred ? left_out : why);
  } else if (!CertSetCertificateContextProperty(c, CERT_RENEWAL_PROP_ID, 0, &blob)) {
    snprintf(why, sizeof why, "CertSetCertificateContextProperty: %s",
             kvvm_win_strerror(GetLastError(), err, sizeof err));
    not_linked(lp, thumb, why);
  } else {
    KVVM_INFO("%s: linkOnRenewal: %s now renews to the new version", lp->op->cc->url, thumb);
    add_to(&lp->linked, thumb);
  }
  free(left_out);
  store_win_acl_free(pred);
}

/* c is a predecessor: not the new certificate, not linked to it yet, its names in it. */
static void consider(struct link_pass *lp, PCCERT_CONTEXT c)
{
  BYTE hash[SHA1_LEN];
  char thumb[2 * SHA1_LEN + 1];
  if (!sha1_of(c, hash) || memcmp(hash, lp->hash, SHA1_LEN) == 0 || links_to(c, lp->hash))
    return;
  char **names = dns_names(c);
  hex(hash, thumb);
  if (contained(names, lp->dns))
    link_one(lp, c, thumb);
  store_win_acl_free(names);
}

static void write_note(struct link_pass *lp)
{
  char *note = NULL;
  if (lp->linked || lp->not_linked)
    note = kvvm_xasprintf("linkOnRenewal: %s%s%s%s", lp->linked ? "linked to this version: "
                          : "", lp->linked ? lp->linked : "", lp->linked && lp->not_linked ?
                          "; " : "", lp->not_linked ? "not linked: " : "");
  if (note && lp->not_linked) {
    char *t = kvvm_xasprintf("%s%s", note, lp->not_linked);
    free(note);
    note = t;
  }
  installed_set_str(lp->op->s->inst, lp->op->rec, "note", note);
  free(note);
}

void store_win_link(struct op *op, const char *thumb)
{
  struct link_pass lp = {.op = op};
  HCERTSTORE h = op->cc->link_on_renewal ? store_win_open(op, true) : NULL;
  lp.fresh = store_win_find(h, thumb);
  lp.readers = recorded_readers(op, thumb);
  if (lp.fresh && lp.readers && sha1_of(lp.fresh, lp.hash)) {
    lp.dns = dns_names(lp.fresh);
    for (PCCERT_CONTEXT c = NULL; (c = CertEnumCertificatesInStore(h, c)) != NULL;)
      consider(&lp, c);
    /* wine writes a property only on a forced commit; Windows wrote it already. */
    CertControlStore(h, CERT_STORE_CTRL_COMMIT_FORCE_FLAG, CERT_STORE_CTRL_COMMIT, NULL);
  }
  if (lp.fresh && !lp.readers)   /* follow failed: which readers it will have is unknown */
    installed_set_str(op->s->inst, op->rec, "note", "linkOnRenewal: nothing linked to this "
                      "version: the permissions of its key are not set yet");
  else
    write_note(&lp);
  CertFreeCertificateContext(lp.fresh);
  if (h)
    CertCloseStore(h, 0);
  store_win_acl_free(lp.dns);
  store_win_acl_free(lp.readers);
  free(lp.linked);
  free(lp.not_linked);
}
