/* store.h on the Windows certificate store (crypt32). cc->store_dir names a system store,
 * "LocalMachine\MY" or "<LocalMachine|CurrentUser>\<name>" (settings_cert.c). Installing a
 * version: kvvm's own bundle (leaf checked against the key, chain ordered) written as a
 * PKCS#12, imported by PFXImportCertStore into a memory store with the key in the machine
 * keyset (user keyset for CurrentUser), exportable only with keyExportable; the leaf, found
 * there by its SHA-1 thumbprint and given a friendly name naming vault, secret and version, is
 * added to the system store (replacing the same certificate if it is there), committed, found
 * again by thumbprint through a fresh handle, and only then recorded in installed.json. A
 * previous version is never touched: it stays until the next issue's removal of old versions.
 * keyExportable is applied at import: a certificate already in the store keeps its key as it
 * was imported (importing it again would leave the first key orphaned).
 *
 * Not applied yet on Windows, and said so in the certificate's outcome (KVVM_E_GRANT: the
 * certificate is installed, the request is not met): `accounts` (no key permission is
 * granted, so only Administrators and SYSTEM can use the key: the safe direction). No
 * renewal link is set and no hooks run: both the next issue's.
 *
 * The chain: intermediates go to the CA store of the same location, a root to no store
 * (logged once per install, not in the outcome: sync.c shows res->why only for a result
 * that is not KVVM_OK, so a note there would need a status of its own). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/installed_int.h"
#include "kvvm/clock.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/paths.h"
#include "kvvm/store.h"
#include "windows/win_int.h"

#include <wincrypt.h>
#include <ncrypt.h>

#define ENCODING (X509_ASN_ENCODING | PKCS_7_ASN_ENCODING)
#define THUMB_BYTES 20

struct kvvm_store {
  struct kvvm_installed *inst;
};

/* A system store named by a store_dir: where it lives and its name there. */
struct sysstore {
  DWORD location;  /* CERT_SYSTEM_STORE_LOCAL_MACHINE or _CURRENT_USER */
  DWORD keyset;    /* CRYPT_MACHINE_KEYSET or CRYPT_USER_KEYSET, to match */
  wchar_t *name;
};

/* One install or keep: the certificate, its record and where the answer goes. */
struct op {
  struct kvvm_store *s;
  const struct kvvm_cert_cfg *cc;
  struct sysstore where;
  json_t *rec;
  struct kvvm_install_result *res;
};

static void say(struct op *op, const char *what, DWORD code)
{
  char err[300];
  snprintf(op->res->why, sizeof op->res->why, "%s: %s: %s", op->cc->store_dir, what,
           kvvm_win_strerror(code, err, sizeof err));
}

/* store_dir as settings_cert.c makes it for KVVM_STORE_WINDOWS; anything else (settings
 * read for the files store) is refused rather than guessed at. */
static enum kvvm_err parse_where(struct op *op)
{
  const char *dir = op->cc->store_dir, *slash = strchr(dir, '\\');
  size_t n = slash ? (size_t)(slash - dir) : 0;
  if (n == 12 && strncmp(dir, "LocalMachine", n) == 0)
    op->where = (struct sysstore){CERT_SYSTEM_STORE_LOCAL_MACHINE, CRYPT_MACHINE_KEYSET, NULL};
  else if (n == 11 && strncmp(dir, "CurrentUser", n) == 0)
    op->where = (struct sysstore){CERT_SYSTEM_STORE_CURRENT_USER, CRYPT_USER_KEYSET, NULL};
  if (n && slash[1])
    op->where.name = kvvm_win_wide(slash + 1);
  if (op->where.location && op->where.name)
    return KVVM_OK;
  snprintf(op->res->why, sizeof op->res->why, "\"%s\" is not a Windows certificate store "
           "(expected LocalMachine\\<name> or CurrentUser\\<name>)", dir);
  return KVVM_E_STORE;
}

static HCERTSTORE open_system(struct op *op, bool write)
{
  DWORD flags = op->where.location | (write ? 0 : CERT_STORE_READONLY_FLAG |
                                                  CERT_STORE_OPEN_EXISTING_FLAG);
  HCERTSTORE h = CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0, flags, op->where.name);
  if (!h && write)
    say(op, "cannot open the certificate store", GetLastError());
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

static PCCERT_CONTEXT find_thumb(HCERTSTORE h, const char *thumb)
{
  BYTE hash[THUMB_BYTES];
  CRYPT_HASH_BLOB blob = {sizeof hash, hash};
  if (!h || !thumb || !thumb_bytes(thumb, hash))
    return NULL;
  return CertFindCertificateInStore(h, ENCODING, 0, CERT_FIND_SHA1_HASH, &blob, NULL);
}

static bool has_key(PCCERT_CONTEXT c)
{
  DWORD n = 0;
  return c && CertGetCertificateContextProperty(c, CERT_KEY_PROV_INFO_PROP_ID, NULL, &n);
}

/* The certificate with this thumbprint and a key is in the system store, seen through a
 * handle of its own (not one that may hold what this process just added in memory). */
static bool in_store(struct op *op, const char *thumb)
{
  HCERTSTORE h = open_system(op, false);
  PCCERT_CONTEXT c = find_thumb(h, thumb);
  bool ok = has_key(c);
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

static enum kvvm_err set_friendly_name(struct op *op, PCCERT_CONTEXT c, const char *version)
{
  char *name = kvvm_xasprintf("%s/%s/%s (kvvm)", op->cc->vault_name, op->cc->secret_name,
                              version);
  wchar_t *w = kvvm_win_wide(name);
  CRYPT_DATA_BLOB blob = {w ? (DWORD)((wcslen(w) + 1) * sizeof *w) : 0, (BYTE *)w};
  enum kvvm_err rc = KVVM_OK;
  if (!w || !CertSetCertificateContextProperty(c, CERT_FRIENDLY_NAME_PROP_ID, 0, &blob)) {
    say(op, "cannot set the friendly name", w ? GetLastError() : ERROR_NO_UNICODE_TRANSLATION);
    rc = KVVM_E_IO;
  }
  free(w);
  free(name);
  return rc;
}

/* An import that did not make it into the system store leaves no key behind. */
static void drop_key(PCCERT_CONTEXT c)
{
  DWORD n = 0;
  if (!c || !CertGetCertificateContextProperty(c, CERT_KEY_PROV_INFO_PROP_ID, NULL, &n))
    return;
  CRYPT_KEY_PROV_INFO *info = kvvm_xmalloc(n);
  if (CertGetCertificateContextProperty(c, CERT_KEY_PROV_INFO_PROP_ID, info, &n)) {
    HCRYPTPROV prov;
    NCRYPT_PROV_HANDLE ksp = 0;
    NCRYPT_KEY_HANDLE key = 0;
    if (info->dwProvType)
      CryptAcquireContextW(&prov, info->pwszContainerName, info->pwszProvName,
                           info->dwProvType, CRYPT_DELETEKEYSET |
                           (info->dwFlags & CRYPT_MACHINE_KEYSET));
    else if (NCryptOpenStorageProvider(&ksp, info->pwszProvName, 0) == ERROR_SUCCESS &&
             NCryptOpenKey(ksp, &key, info->pwszContainerName, 0,
                           info->dwFlags & NCRYPT_MACHINE_KEY_FLAG) == ERROR_SUCCESS)
      NCryptDeleteKey(key, 0);   /* frees key */
    if (ksp)
      NCryptFreeObject(ksp);
  }
  free(info);
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
  say(op, "Windows refused to import the certificate and key (PFXImportCertStore)", code);
  return KVVM_E_CERT;
}

/* Into the system store and committed. crypt32 writes an add at once on Windows; wine
 * writes some changes only on CERT_STORE_CTRL_COMMIT, which Windows accepts as a no-op, so
 * its answer is not trusted either way: the look-up through a fresh handle decides. */
static enum kvvm_err add(struct op *op, PCCERT_CONTEXT leaf, const char *thumb)
{
  HCERTSTORE sys = open_system(op, true);
  if (!sys)
    return KVVM_E_IO;
  enum kvvm_err rc = KVVM_OK;
  if (!CertAddCertificateContextToStore(sys, leaf, CERT_STORE_ADD_REPLACE_EXISTING, NULL)) {
    say(op, "cannot add the certificate", GetLastError());
    rc = KVVM_E_IO;
  }
  CertControlStore(sys, 0, CERT_STORE_CTRL_COMMIT, NULL);
  CertCloseStore(sys, 0);
  if (rc == KVVM_OK && !in_store(op, thumb)) {
    snprintf(op->res->why, sizeof op->res->why, "%s: the certificate %s was added but is not "
             "found there with its key", op->cc->store_dir, thumb);
    rc = KVVM_E_IO;
  }
  return rc;
}

/* Signed by its own key: a root, whose trust is the machine's to decide, not a secret's. */
static bool self_signed(PCCERT_CONTEXT c)
{
  DWORD failed = CERT_STORE_SIGNATURE_FLAG;  /* cleared when the signature verifies */
  return CertCompareCertificateName(X509_ASN_ENCODING, &c->pCertInfo->Subject,
                                    &c->pCertInfo->Issuer) &&
         CertVerifySubjectCertificateContext(c, c, &failed) && !failed;
}

static void tell_root(struct op *op, PCCERT_CONTEXT c)
{
  wchar_t name[256] = L"";
  CertGetNameStringW(c, CERT_NAME_SIMPLE_DISPLAY_TYPE, 0, NULL, name, 256);
  char *u = kvvm_win_utf8(name);
  KVVM_INFO("%s: the root certificate \"%s\" in the secret is not added to any store: which "
            "roots the machine trusts is not a secret's to change", op->cc->url, u ? u : "?");
  free(u);
}

/* One intermediate into the location's CA store (opened on first use), as Microsoft's
 * extension does; one already there is left as it is. */
static enum kvvm_err add_intermediate(struct op *op, HCERTSTORE *ca, PCCERT_CONTEXT c)
{
  if (!*ca)
    *ca = CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0, op->where.location, L"CA");
  if (*ca && CertAddCertificateContextToStore(*ca, c, CERT_STORE_ADD_USE_EXISTING, NULL))
    return KVVM_OK;
  say(op, *ca ? "cannot add an intermediate certificate to the CA store"
              : "cannot open the CA store", GetLastError());
  return KVVM_E_IO;
}

/* The bundle's chain (not its unrelated certificates), taken from the bundle rather than
 * from the PKCS#12 import, which drops self-signed certificates under wine: intermediates
 * to CA, a root nowhere. Before the leaf, so an application that picks the leaf up finds
 * its chain. */
static enum kvvm_err add_chain(struct op *op, const struct kvvm_bundle *b)
{
  HCERTSTORE ca = NULL;
  enum kvvm_err rc = KVVM_OK;
  for (size_t i = 1; rc == KVVM_OK && i <= kvvm_bundle_chain_len(b); i++) {
    size_t len = 0;
    const unsigned char *der = kvvm_bundle_cert_der(b, i, &len);
    PCCERT_CONTEXT c = CertCreateCertificateContext(X509_ASN_ENCODING, der, (DWORD)len);
    if (!c) {
      say(op, "Windows cannot read a certificate of the chain", GetLastError());
      rc = KVVM_E_CERT;
    } else if (self_signed(c)) {
      tell_root(op, c);
    } else {
      rc = add_intermediate(op, &ca, c);
    }
    CertFreeCertificateContext(c);
  }
  if (ca) {
    CertControlStore(ca, 0, CERT_STORE_CTRL_COMMIT, NULL);
    CertCloseStore(ca, 0);
  }
  return rc;
}

/* import -> the leaf by thumbprint -> friendly name -> add; the key goes again on failure. */
static enum kvvm_err put(struct op *op, const struct kvvm_bundle *b, const char *version)
{
  const char *thumb = kvvm_bundle_facts(b)->thumbprint;
  HCERTSTORE tmp = NULL;
  PCCERT_CONTEXT leaf = NULL;
  enum kvvm_err rc = import(op, b, &tmp);
  if (rc == KVVM_OK && !has_key(leaf = find_thumb(tmp, thumb))) {
    snprintf(op->res->why, sizeof op->res->why, "the imported PKCS#12 has no certificate %s "
             "with its key", thumb);
    rc = KVVM_E_INTERNAL;
  }
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

static void record(struct op *op, const struct kvvm_cert_facts *f, const char *version)
{
  struct kvvm_installed *st = op->s->inst;
  json_t *rec = installed_cert(st, op->cc->url, op->cc->store_dir, true);
  json_t *sans = json_array(), *versions = json_object_get(rec, "versions"), *e;
  size_t i;
  bool seen = false;
  for (char *const *p = f->sans; *p; p++)
    json_array_append_new(sans, json_string(*p));
  installed_set_str(st, rec, "version", version);
  installed_set_str(st, rec, "thumbprint", f->thumbprint);
  installed_set_str(st, rec, "file", op->res->file);
  installed_set_str(st, rec, "link", op->res->link);
  installed_set(st, rec, "installed_at", json_integer((json_int_t)kvvm_clock_now()));
  installed_set(st, rec, "not_after", json_integer((json_int_t)f->not_after));
  installed_set(st, rec, "sans", sans);
  /* Every version kvvm put in the store stays there and is listed, for the removal of old
   * versions (the next issue) to find. */
  versions = json_is_array(versions) ? json_deep_copy(versions) : json_array();
  json_array_foreach(versions, i, e)
    seen = seen || (json_string_value(e) && !strcmp(json_string_value(e), op->res->file));
  if (!seen)
    json_array_append_new(versions, json_string(op->res->file));
  installed_set(st, rec, "versions", versions);
  op->rec = rec;
}

/* What the settings ask for that this backend does not do yet; KVVM_E_GRANT (installed,
 * not as asked) with the words, else KVVM_OK. */
static enum kvvm_err not_applied(const struct kvvm_cert_cfg *cc, char *why, size_t n)
{
  size_t used = 0;
  for (char **a = cc->accounts; a && *a; a++)
    used += (size_t)snprintf(why + used, used < n ? n - used : 0, "%s%s",
                             a == cc->accounts ? "accounts (" : ", ", *a);
  if (used)
    used += (size_t)snprintf(why + used, used < n ? n - used : 0, ") not granted read access "
                             "to the key: key permissions are not applied yet on Windows, so "
                             "only Administrators and SYSTEM can use it (the safe direction)");
  return used ? KVVM_E_GRANT : KVVM_OK;
}

static void names(struct op *op, const char *thumb)
{
  op->res->file = cert_path(op->cc, thumb);
  op->res->link = kvvm_xstrdup(op->res->file);
  op->res->prev_version = kvvm_xstrdup(installed_str(op->rec, "version"));
  op->res->prev_thumbprint = kvvm_xstrdup(installed_str(op->rec, "thumbprint"));
  op->res->first = op->res->prev_version == NULL;
}

static bool same(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* The recorded version (and, with a bundle, thumbprint) is in the store with its key. */
static bool current(struct op *op, const char *version, const char *thumb)
{
  const char *rec_thumb = installed_str(op->rec, "thumbprint");
  return same(installed_str(op->rec, "version"), version) &&
         (!thumb || same(rec_thumb, thumb)) && in_store(op, rec_thumb);
}

/* The chain, then the version's certificate and key into the store unless they are there,
 * then the record. A certificate already in the store with its key (the same certificate
 * under a new version, or installed.json lost) is not imported again: that would leave its
 * key orphaned. */
static enum kvvm_err install(struct op *op, const struct kvvm_bundle *b, const char *version)
{
  const struct kvvm_cert_facts *f = kvvm_bundle_facts(b);
  names(op, f->thumbprint);
  if (current(op, version, f->thumbprint))
    return KVVM_OK;
  enum kvvm_err rc = add_chain(op, b);
  if (rc == KVVM_OK && !in_store(op, f->thumbprint))
    rc = put(op, b, version);
  if (rc != KVVM_OK)
    return rc;
  record(op, f, version);
  op->res->changed = true;
  KVVM_INFO("installed %s version %s (%s) as %s", op->cc->url, version, f->thumbprint,
            op->res->file);
  return KVVM_OK;
}

enum kvvm_err kvvm_store_install(struct kvvm_store *s, const struct kvvm_cert_cfg *cc,
                                 const struct kvvm_bundle *b, const char *version,
                                 struct kvvm_install_result *res)
{
  struct op op = {.s = s, .cc = cc, .res = res};
  memset(res, 0, sizeof *res);
  op.rec = installed_cert(s->inst, cc->url, cc->store_dir, false);
  enum kvvm_err rc = parse_where(&op);
  if (rc == KVVM_OK && !version) {
    snprintf(res->why, sizeof res->why, "no version to install");
    rc = KVVM_E_INTERNAL;
  }
  if (rc == KVVM_OK)
    rc = install(&op, b, version);
  if (rc == KVVM_OK)
    rc = not_applied(cc, res->why, sizeof res->why);
  if (rc != KVVM_OK && !res->why[0])
    snprintf(res->why, sizeof res->why, "%s", kvvm_err_str(rc));
  if (rc != KVVM_OK && rc != KVVM_E_GRANT)
    KVVM_ERR("%s: %s", cc->url, res->why);
  else if (rc == KVVM_E_GRANT)
    KVVM_WARN("%s: %s", cc->url, res->why);
  kvvm_installed_set_error(s->inst, cc->url, cc->store_dir, rc == KVVM_OK ? NULL : res->why);
  free(op.where.name);
  return rc;
}

bool kvvm_store_keep(struct kvvm_store *s, const struct kvvm_cert_cfg *cc, const char *version,
                     struct kvvm_install_result *res, enum kvvm_err *rc)
{
  struct op op = {.s = s, .cc = cc, .res = res};
  memset(res, 0, sizeof *res);
  op.rec = installed_cert(s->inst, cc->url, cc->store_dir, false);
  bool kept = op.rec && parse_where(&op) == KVVM_OK && current(&op, version, NULL);
  free(op.where.name);
  if (!kept)
    return false;
  names(&op, installed_str(op.rec, "thumbprint"));
  *rc = not_applied(cc, res->why, sizeof res->why);
  kvvm_installed_set_error(s->inst, cc->url, cc->store_dir, *rc == KVVM_OK ? NULL : res->why);
  return true;
}

enum kvvm_err kvvm_store_open(const struct kvvm_store_opts *opts, struct kvvm_store **out)
{
  struct kvvm_store *s = kvvm_xcalloc(1, sizeof *s);
  kvvm_installed_load(opts && opts->state_dir ? opts->state_dir : kvvm_paths_state_dir(),
                      &s->inst);
  *out = s;
  return KVVM_OK;
}

void kvvm_store_close(struct kvvm_store *s)
{
  if (!s)
    return;
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

/* Nothing is granted on Windows yet, so there is nothing to take back; each installed
 * certificate's record says again what its settings ask for that is not applied. */
enum kvvm_err kvvm_store_reconcile_grants(struct kvvm_store *s, const struct kvvm_config *cfg)
{
  enum kvvm_err rc = KVVM_OK;
  for (size_t i = 0; i < cfg->n_certs; i++) {
    const struct kvvm_cert_cfg *cc = &cfg->certs[i];
    struct kvvm_installed_cert rec;
    char why[512];
    if (!kvvm_installed_get(s->inst, cc->url, cc->store_dir, &rec) || !rec.version)
      continue;
    enum kvvm_err r = not_applied(cc, why, sizeof why);
    kvvm_installed_set_error(s->inst, cc->url, cc->store_dir, r == KVVM_OK ? NULL : why);
    rc = r == KVVM_OK ? rc : r;
  }
  return rc;
}

/* Each add was committed to the system store as it was made; what is left is the record. */
enum kvvm_err kvvm_store_commit(struct kvvm_store *s) { return kvvm_installed_save(s->inst); }
