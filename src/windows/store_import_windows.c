/* Putting one version into a Windows system store: kvvm's own bundle (leaf checked against
 * the key, chain ordered) written as a PKCS#12 and imported by PFXImportCertStore into a
 * memory store with the key in the machine keyset (user keyset for CurrentUser), exportable
 * only with keyExportable; the leaf, found there by its SHA-1 thumbprint and given a friendly
 * name naming vault, secret and version, is added to the system store (replacing the same
 * certificate if it is there), committed, and found again by thumbprint through a fresh
 * handle. keyExportable is applied at import: a certificate already in the store keeps its
 * key as it was imported (importing it again would leave the first key orphaned).
 * The chain is store_chain_windows.c's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "windows/store_int.h"
#include "windows/win_int.h"

#include <ncrypt.h>

static enum kvvm_err set_friendly_name(struct op *op, PCCERT_CONTEXT c, const char *version)
{
  char *name = kvvm_xasprintf("%s/%s/%s (kvvm)", op->cc->vault_name, op->cc->secret_name,
                              version);
  wchar_t *w = kvvm_win_wide(name);
  CRYPT_DATA_BLOB blob = {w ? (DWORD)((wcslen(w) + 1) * sizeof *w) : 0, (BYTE *)w};
  enum kvvm_err rc = KVVM_OK;
  if (!w || !CertSetCertificateContextProperty(c, CERT_FRIENDLY_NAME_PROP_ID, 0, &blob)) {
    store_win_say(op, "cannot set the friendly name", w ? GetLastError() : ERROR_NO_UNICODE_TRANSLATION);
    rc = KVVM_E_IO;
  }
  free(w);
  free(name);
  return rc;
}

static char *utf8_or_empty(const wchar_t *w)
{
  char *u = w ? kvvm_win_utf8(w) : NULL;
  return u ? u : kvvm_xstrdup("");
}

enum kvvm_err store_win_key_of(PCCERT_CONTEXT c, struct store_win_key *out)
{
  DWORD n = 0;
  memset(out, 0, sizeof *out);
  if (!c || !CertGetCertificateContextProperty(c, CERT_KEY_PROV_INFO_PROP_ID, NULL, &n))
    return KVVM_E_CERT;
  CRYPT_KEY_PROV_INFO *info = kvvm_xmalloc(n);
  enum kvvm_err rc = KVVM_E_CERT;
  if (CertGetCertificateContextProperty(c, CERT_KEY_PROV_INFO_PROP_ID, info, &n)) {
    out->provider = utf8_or_empty(info->pwszProvName);
    out->container = utf8_or_empty(info->pwszContainerName);
    out->prov_type = info->dwProvType;
    out->cng = info->dwProvType == 0;
    /* CRYPT_MACHINE_KEYSET and NCRYPT_MACHINE_KEY_FLAG are the same bit (0x20). */
    out->machine = (info->dwFlags & CRYPT_MACHINE_KEYSET) != 0;
    rc = KVVM_OK;
  }
  free(info);
  return rc;
}

void store_win_key_clear(struct store_win_key *k)
{
  if (!k)
    return;
  free(k->provider);
  free(k->container);
  memset(k, 0, sizeof *k);
}

static enum kvvm_err delete_capi(const wchar_t *prov, const wchar_t *cont,
                                 const struct store_win_key *k)
{
  HCRYPTPROV h;
  if (CryptAcquireContextW(&h, cont, prov, k->prov_type, CRYPT_DELETEKEYSET |
                           (k->machine ? CRYPT_MACHINE_KEYSET : 0)))
    return KVVM_OK;
  if (GetLastError() == (DWORD)NTE_BAD_KEYSET)
    return KVVM_E_NOENT;
  KVVM_WARN("cannot delete the key container %s of %s: error 0x%lx", k->container,
            k->provider, GetLastError());
  return KVVM_E_IO;
}

static enum kvvm_err delete_cng(const wchar_t *prov, const wchar_t *cont,
                                const struct store_win_key *k)
{
  NCRYPT_PROV_HANDLE ksp = 0;
  NCRYPT_KEY_HANDLE key = 0;
  SECURITY_STATUS st = NCryptOpenStorageProvider(&ksp, prov, 0);
  if (st == ERROR_SUCCESS)
    st = NCryptOpenKey(ksp, &key, cont, 0, k->machine ? NCRYPT_MACHINE_KEY_FLAG : 0);
  if (st == ERROR_SUCCESS)
    st = NCryptDeleteKey(key, 0);   /* frees key, whatever the answer */
  if (ksp)
    NCryptFreeObject(ksp);
  if (st == ERROR_SUCCESS)
    return KVVM_OK;
  if (st == NTE_BAD_KEYSET)
    return KVVM_E_NOENT;
  KVVM_WARN("cannot delete the key %s of %s: error 0x%lx", k->container, k->provider,
            (unsigned long)st);
  return KVVM_E_IO;
}

enum kvvm_err store_win_key_delete(const struct store_win_key *k)
{
  wchar_t *prov = kvvm_win_wide(k->provider), *cont = kvvm_win_wide(k->container);
  enum kvvm_err rc = !prov || !cont ? KVVM_E_INTERNAL : k->cng ? delete_cng(prov, cont, k)
                                                               : delete_capi(prov, cont, k);
  free(prov);
  free(cont);
  return rc;
}

/* An import that did not make it into the system store leaves no key behind. */
static void drop_key(PCCERT_CONTEXT c)
{
  struct store_win_key k;
  if (store_win_key_of(c, &k) == KVVM_OK)
    store_win_key_delete(&k);
  store_win_key_clear(&k);
}

/* The bundle as a PKCS#12 imported into a memory store; the key lands in the keyset,
 * exportable (CRYPT_EXPORTABLE) only when the settings ask for it. Material Windows refuses
 * is KVVM_E_CERT: waiting does not change what this Windows accepts. */
static enum kvvm_err import(struct op *op, const struct kvvm_bundle *b, HCERTSTORE *out)
{
  unsigned char *p12 = NULL;
  size_t len = 0;
  enum kvvm_err rc = kvvm_bundle_to_pkcs12(b, &p12, &len);
  if (rc != KVVM_OK) {
    snprintf(op->res->why, sizeof op->res->why, "cannot write the PKCS#12 to import: %s",
             kvvm_err_str(rc));
    return rc;
  }
  CRYPT_DATA_BLOB blob = {(DWORD)len, p12};
  *out = PFXImportCertStore(&blob, L"", op->where.keyset |
                            (op->cc->key_exportable ? CRYPT_EXPORTABLE : 0));
  DWORD code = GetLastError();
  kvvm_free_secret(p12, len);
  if (*out)
    return KVVM_OK;
  store_win_say(op, "Windows refused to import the certificate and key (PFXImportCertStore)", code);
  return KVVM_E_CERT;
}

/* Into the system store and committed. crypt32 writes an add at once on Windows; wine
 * writes some changes only on CERT_STORE_CTRL_COMMIT, which Windows accepts as a no-op, so
 * its answer is not trusted either way: the look-up through a fresh handle decides. */
static enum kvvm_err add(struct op *op, PCCERT_CONTEXT leaf, const char *thumb)
{
  HCERTSTORE sys = store_win_open(op, true);
  if (!sys)
    return KVVM_E_IO;
  enum kvvm_err rc = KVVM_OK;
  if (!CertAddCertificateContextToStore(sys, leaf, CERT_STORE_ADD_REPLACE_EXISTING, NULL)) {
    store_win_say(op, "cannot add the certificate", GetLastError());
    rc = KVVM_E_IO;
  }
  CertControlStore(sys, 0, CERT_STORE_CTRL_COMMIT, NULL);
  CertCloseStore(sys, 0);
  if (rc == KVVM_OK && !store_win_in_store(op, thumb)) {
    snprintf(op->res->why, sizeof op->res->why, "%s: the certificate %s was added but is not "
             "found there with its key", op->cc->store_dir, thumb);
    rc = KVVM_E_IO;
  }
  return rc;
}

/* accounts: the imported key gets its DACL before its certificate is in the system store,
 * so the store never holds one whose key more can read than the settings say. */
static enum kvvm_err set_dacl(struct op *op, PCCERT_CONTEXT leaf)
{
  struct store_win_key k;
  enum kvvm_err rc = store_win_key_of(leaf, &k);
  /* The keyset is the one imported into; wine leaves the flag out of the key info. */
  k.machine = k.machine || op->where.keyset == CRYPT_MACHINE_KEYSET;
  if (rc == KVVM_OK && store_win_acl_set(&k, op->sddl, op->res->why,
                                         sizeof op->res->why) != KVVM_OK)
    rc = KVVM_E_IO;
  op->dacl_set = rc == KVVM_OK;
  store_win_key_clear(&k);
  return rc;
}

/* import -> the leaf by thumbprint -> DACL -> friendly name -> add; the key goes again on
 * failure. */
static enum kvvm_err put(struct op *op, const struct kvvm_bundle *b, const char *version)
{
  const char *thumb = kvvm_bundle_facts(b)->thumbprint;
  HCERTSTORE tmp = NULL;
  PCCERT_CONTEXT leaf = NULL;
  enum kvvm_err rc = import(op, b, &tmp);
  if (rc == KVVM_OK && !store_win_has_key(leaf = store_win_find(tmp, thumb))) {
    snprintf(op->res->why, sizeof op->res->why, "the imported PKCS#12 has no certificate %s "
             "with its key", thumb);
    rc = KVVM_E_INTERNAL;
  }
  if (rc == KVVM_OK)
    rc = set_dacl(op, leaf);
  if (rc == KVVM_OK)
    rc = set_friendly_name(op, leaf, version);
  if (rc == KVVM_OK)
    rc = add(op, leaf, thumb);
  if (rc != KVVM_OK)
    drop_key(leaf);
  CertFreeCertificateContext(leaf);
  if (tmp)
    CertCloseStore(tmp, 0);
  return rc;
}


/* The key the system store's certificate names, through a handle of its own. */
static enum kvvm_err key_in_store(struct op *op, const char *thumb)
{
  HCERTSTORE h = store_win_open(op, false);
  PCCERT_CONTEXT c = store_win_find(h, thumb);
  store_win_key_clear(&op->key);
  enum kvvm_err rc = store_win_key_of(c, &op->key);
  /* The keyset is the one imported into; wine leaves the flag out of the key info. */
  op->key.machine = op->key.machine || op->where.keyset == CRYPT_MACHINE_KEYSET;
  CertFreeCertificateContext(c);
  if (h)
    CertCloseStore(h, 0);
  if (rc != KVVM_OK)
    snprintf(op->res->why, sizeof op->res->why, "%s: the certificate %s names no private key",
             op->cc->store_dir, thumb);
  return rc;
}

enum kvvm_err store_win_put(struct op *op, const struct kvvm_bundle *b, const char *version)
{
  const char *thumb = kvvm_bundle_facts(b)->thumbprint;
  enum kvvm_err rc = store_win_chain(op, b);
  if (rc == KVVM_OK && !store_win_in_store(op, thumb))
    rc = put(op, b, version);
  if (rc == KVVM_OK)
    rc = key_in_store(op, thumb);
  return rc;
}
