/* The Windows store backend (src/windows/store_windows.c) on a real crypt32: Windows, or wine
 * in a fresh WINEPREFIX (make check-windows builds it, tests/windows/store.sh runs it).
 *   test_store_win.exe DATADIR            the cases below; DATADIR holds v1.pem, v2.pem (RSA
 *                                         leaf + chain + key), chain.pfx (leaf, intermediate,
 *                                         root) with inter.sha1 and croot.sha1, ec.pem, and
 *                                         gets state\
 *   test_store_win.exe absent THUMB STORE...
 *                                         a second process: THUMB is in none of the
 *                                         LocalMachine stores named.
 *   test_store_win.exe find STORE THUMB NAME [key|exportable]
 *                                         a second process: THUMB is in LocalMachine\STORE
 *                                         with a friendly name containing NAME ("-": any or
 *                                         none); with "key", its
 *                                         key is in the machine keyset, matches, is not
 *                                         exportable; with "exportable", the same but its
 *                                         private key can be exported.
 * What wine cannot show is skipped with the reason printed, never passed. */
#include <process.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <windows.h>
#include <wincrypt.h>
#include <ncrypt.h>

#include <jansson.h>

#include "../unit/kt.h"
#include "store_kit.h"
#include "kvvm/certmat.h"
#include "kvvm/fileio.h"
#include "kvvm/hooks.h"
#include "kvvm/mem.h"
#include "kvvm/settings.h"
#include "kvvm/store.h"

#define URL "https://vault1.vault.azure.net/secrets/web"

static const char *datadir;
static char self[MAX_PATH];
static char thumb1[41], thumb2[41];

static bool under_wine(void)
{
  return GetProcAddress(GetModuleHandleA("ntdll.dll"), "wine_get_version") != NULL;
}

static char *path_in(const char *name) { return kvvm_path_join(datadir, name); }

/* name.pem (PEM) or name.pfx (PKCS#12, empty password). */
static struct kvvm_bundle *bundle(const char *name)
{
  char *path = path_in(name), *text = NULL, why[256] = "";
  size_t len = 0;
  struct kvvm_bundle *b = NULL;
  bool pfx = strstr(name, ".pfx") != NULL;
  if (kvvm_file_read(path, 1 << 20, &text, &len) != KVVM_OK ||
      (pfx ? kvvm_certmat_from_pkcs12((unsigned char *)text, len, "", &b, why, sizeof why)
           : kvvm_certmat_from_pem(text, len, &b, why, sizeof why)) != KVVM_OK)
    fprintf(stderr, "  %s: %s\n", path, why);
  free(text);
  free(path);
  return b;
}

/* A thumbprint openssl wrote to DATADIR/name (hex, then a newline). */
static bool thumb_file(const char *name, char out[41])
{
  char *path = path_in(name), *text = NULL;
  size_t len = 0;
  bool ok = kvvm_file_read(path, 1024, &text, &len) == KVVM_OK && len >= 40;
  if (ok)
    snprintf(out, 41, "%.40s", text);
  else
    fprintf(stderr, "  cannot read %s\n", path);
  free(text);
  free(path);
  return ok;
}

/* The settings as enable would read them on Windows: one certificate, extra in its object. */
static struct kvvm_config *config_for(const char *url, const char *extra)
{
  char sms[1024];
  snprintf(sms, sizeof sms, "{\"observedCertificates\":[{\"url\":\"%s\"%s}]}", url, extra);
  return kit_settings(sms);
}

static struct kvvm_config *config(const char *extra) { return config_for(URL, extra); }

static struct kvvm_store *open_store(void)
{
  char *state = path_in("state");
  struct kvvm_store_opts o = {.state_dir = state};
  struct kvvm_store *s = NULL;
  KT_CHECK(kvvm_store_open(&o, &s) == KVVM_OK);
  free(state);
  return s;
}

/* A second process of this executable: its exit status. key: NULL, "key" or "exportable". */
static int find_in(const char *store, const char *thumb, const char *name, const char *key)
{
  char quoted[80];  /* _spawnl joins the arguments with spaces, "kvvm new store" has some */
  snprintf(quoted, sizeof quoted, "\"%s\"", store);
  intptr_t rc = _spawnl(_P_WAIT, self, self, "find", quoted, thumb, name, key, NULL);
  return (int)rc;
}

static int absent_in(const char *thumb, const char *s1, const char *s2, const char *s3)
{
  return (int)_spawnl(_P_WAIT, self, self, "absent", thumb, s1, s2, s3, NULL);
}

static int find_in_child(const char *thumb, const char *name, bool key)
{
  return find_in("MY", thumb, name, key ? "key" : NULL);
}

static FILETIME state_mtime(void)
{
  WIN32_FILE_ATTRIBUTE_DATA a = {0};
  char *p = path_in("state\\installed.json");
  GetFileAttributesExA(p, GetFileExInfoStandard, &a);
  free(p);
  return a.ftLastWriteTime;
}

static void install_v1(void)
{
  struct kvvm_config *cfg = config("");
  struct kvvm_bundle *b = bundle("v1.pem");
  struct kvvm_store *s = open_store();
  struct kvvm_install_result res;
  if (!cfg || !b)
    goto out;
  KT_STREQ(cfg->certs[0].store_dir, "LocalMachine\\MY");
  snprintf(thumb1, sizeof thumb1, "%s", kvvm_bundle_facts(b)->thumbprint);
  KT_CHECK(kvvm_store_install(s, &cfg->certs[0], b, "v1", &res) == KVVM_OK);
  KT_CHECK(res.changed && res.first && !res.prev_version);
  char *want = kvvm_xasprintf("Cert:\\LocalMachine\\MY\\%s", thumb1);
  KT_STREQ(res.file, want);
  free(want);
  kvvm_install_result_clear(&res);
  KT_CHECK(kvvm_store_commit(s) == KVVM_OK);
  struct kvvm_installed_cert rec;
  KT_CHECK(kvvm_installed_get(kvvm_store_installed(s), URL, "LocalMachine\\MY", &rec));
  KT_STREQ(rec.version, "v1");
  KT_STREQ(rec.thumbprint, thumb1);
  KT_CHECK(rec.not_after == kvvm_bundle_facts(b)->not_after && !rec.last_error);
  KT_CHECK(find_in_child(thumb1, "vault1/web/v1", true) == 0);
out:
  kvvm_store_close(s);
  kvvm_bundle_free(b);
  kvvm_config_free(cfg);
}

/* A new process (a new store object) keeps v1 without decoding or writing anything; the same
 * version installed again writes nothing either. */
static void keep_without_writes(void)
{
  struct kvvm_config *cfg = config("");
  struct kvvm_bundle *b = bundle("v1.pem");
  struct kvvm_store *s = open_store();
  struct kvvm_install_result res;
  enum kvvm_err rc = KVVM_E_INTERNAL;
  FILETIME before = state_mtime();
  if (!cfg || !b)
    goto out;
  Sleep(20);
  KT_CHECK(kvvm_store_keep(s, &cfg->certs[0], "v1", &res, &rc) && rc == KVVM_OK);
  KT_CHECK(!res.changed && res.prev_version && strcmp(res.prev_version, "v1") == 0);
  kvvm_install_result_clear(&res);
  KT_CHECK(!kvvm_store_keep(s, &cfg->certs[0], "v2", &res, &rc));
  KT_CHECK(kvvm_store_install(s, &cfg->certs[0], b, "v1", &res) == KVVM_OK && !res.changed);
  kvvm_install_result_clear(&res);
  KT_CHECK(kvvm_store_commit(s) == KVVM_OK);
  FILETIME after = state_mtime();
  KT_CHECK(CompareFileTime(&before, &after) == 0);
out:
  kvvm_store_close(s);
  kvvm_bundle_free(b);
  kvvm_config_free(cfg);
}

/* The record of URL in LocalMachine\MY as installed.json holds it (a new reference). */
static json_t *record_of(void)
{
  char *path = path_in("state\\installed.json");
  json_t *rec = kit_record(path, URL, "LocalMachine\\MY");
  free(path);
  return rec;
}

/* Version i of the record: its thumbprint and key provider are what the store holds. */
static bool version_is(const json_t *versions, size_t i, const char *version, const char *thumb)
{
  const json_t *v = json_array_get(versions, i);
  const char *prov = json_string_value(json_object_get(v, "key_provider"));
  return v && strcmp(json_string_value(json_object_get(v, "version")), version) == 0 &&
         strcmp(json_string_value(json_object_get(v, "thumbprint")), thumb) == 0 &&
         strncmp(json_string_value(json_object_get(v, "path")), "Cert:\\LocalMachine\\MY\\",
                 21) == 0 && prov && prov[0] && json_string_value(json_object_get(v,
                 "key_container"));
}

/* v2 goes in beside v1: v1 is still there afterwards (never removed before the add), and the
 * record lists both, oldest first, with their keys. */
static void second_version_beside_the_first(void)
{
  struct kvvm_config *cfg = config("");
  struct kvvm_bundle *b = bundle("v2.pem");
  struct kvvm_store *s = open_store();
  struct kvvm_install_result res;
  if (!cfg || !b)
    goto out;
  snprintf(thumb2, sizeof thumb2, "%s", kvvm_bundle_facts(b)->thumbprint);
  KT_CHECK(kvvm_store_install(s, &cfg->certs[0], b, "v2", &res) == KVVM_OK);
  KT_CHECK(res.changed && !res.first);
  KT_STREQ(res.prev_version, "v1");
  KT_STREQ(res.prev_thumbprint, thumb1);
  kvvm_install_result_clear(&res);
  KT_CHECK(kvvm_store_commit(s) == KVVM_OK);
  KT_CHECK(find_in_child(thumb2, "vault1/web/v2", true) == 0);
  /* wine keeps one key container per keyset, so v1's key is now v2's: only the certificate
   * can be checked there. */
  KT_CHECK(find_in_child(thumb1, "vault1/web/v1", !under_wine()) == 0);
  if (under_wine())
    KT_SKIP("v1's key after v2: wine shares one key container per keyset");
  json_t *rec = record_of();
  json_t *versions = json_object_get(rec, "versions");
  KT_CHECK(json_array_size(versions) == 2);
  KT_CHECK(version_is(versions, 0, "v1", thumb1));
  KT_CHECK(version_is(versions, 1, "v2", thumb2));
  const char *c1 = json_string_value(json_object_get(json_array_get(versions, 0),
                                                     "key_container"));
  const char *c2 = json_string_value(json_object_get(json_array_get(versions, 1),
                                                     "key_container"));
  if (under_wine())
    KT_SKIP("each version's key in a container of its own: wine puts every import in one");
  else
    KT_CHECK(c1 && c2 && strcmp(c1, c2) != 0);
  json_decref(rec);
out:
  kvvm_store_close(s);
  kvvm_bundle_free(b);
  kvvm_config_free(cfg);
}

/* accounts naming no account here: installed, the outcome names it (the key grants no one
 * but SYSTEM and Administrators); keyExportable is applied, so the outcome says nothing of
 * it. The readers of accounts that resolve: test_keyacl_win.c. */
static void unresolved_account_is_said(void)
{
  struct kvvm_config *cfg = config(",\"accounts\":[\"IIS APPPOOL\\\\kvvm-none\"],"
                                   "\"keyExportable\":true");
  struct kvvm_bundle *b = bundle("v2.pem");
  struct kvvm_store *s = open_store();
  struct kvvm_install_result res;
  enum kvvm_err rc = KVVM_OK;
  if (!cfg || !b)
    goto out;
  KT_CHECK(kvvm_store_install(s, &cfg->certs[0], b, "v2", &res) == KVVM_E_GRANT);
  KT_CONTAINS(res.why, "accounts: \"IIS APPPOOL\\kvvm-none\" is not an account or group on "
              "this machine (LookupAccountName: ");
  KT_CONTAINS(res.why, "it is granted nothing");
  KT_CHECK(strstr(res.why, "keyExportable") == NULL);
  kvvm_install_result_clear(&res);
  KT_CHECK(kvvm_store_keep(s, &cfg->certs[0], "v2", &res, &rc) && rc == KVVM_E_GRANT);
  kvvm_install_result_clear(&res);
  struct kvvm_installed_cert rec;
  KT_CHECK(kvvm_installed_get(kvvm_store_installed(s), URL, "LocalMachine\\MY", &rec) &&
           rec.last_error && strstr(rec.last_error, "kvvm-none"));
out:
  kvvm_store_close(s);
  kvvm_bundle_free(b);
  kvvm_config_free(cfg);
}

/* One install into a store of its own: the key read back by a second process can be
 * exported (PRIVATEKEYBLOB) exactly when keyExportable asked for it. Under wine each import
 * replaces the one shared key container, so each check follows its own install. */
static void exportable_as(const char *store, bool exportable, const char *pem)
{
  char extra[160];
  snprintf(extra, sizeof extra, ",\"certificateStoreName\":\"%s\",\"keyExportable\":%s", store,
           exportable ? "true" : "false");
  struct kvvm_config *cfg = config(extra);
  struct kvvm_bundle *b = bundle(pem);
  struct kvvm_store *s = open_store();
  struct kvvm_install_result res;
  if (cfg && b) {
    KT_CHECK(kvvm_store_install(s, &cfg->certs[0], b, "x1", &res) == KVVM_OK);
    KT_STREQ(res.why, "");
    kvvm_install_result_clear(&res);
    KT_CHECK(kvvm_store_commit(s) == KVVM_OK);
    KT_CHECK(find_in(store, kvvm_bundle_facts(b)->thumbprint, "vault1/web/x1",
                     exportable ? "exportable" : "key") == 0);
  }
  kvvm_store_close(s);
  kvvm_bundle_free(b);
  kvvm_config_free(cfg);
}

static void key_exportable(void)
{
  exportable_as("kvvm-test-noexport", false, "v1.pem");
  exportable_as("kvvm-test-export", true, "v2.pem");
}

/* root -> intermediate -> leaf in one PFX: the leaf (with its key) in MY, the intermediate in
 * CA, the root in no store at all; the outcome says nothing (a root left out is logged). */
static void chain_to_ca(void)
{
  struct kvvm_config *cfg = config_for("https://vault1.vault.azure.net/secrets/chain", "");
  struct kvvm_bundle *b = bundle("chain.pfx");
  struct kvvm_store *s = open_store();
  struct kvvm_install_result res;
  char inter[41], root[41];
  if (!cfg || !b || !thumb_file("inter.sha1", inter) || !thumb_file("croot.sha1", root)) {
    KT_CHECK(!"the chain test's data");
    goto out;
  }
  KT_CHECK(kvvm_bundle_chain_len(b) == 2);
  KT_CHECK(kvvm_store_install(s, &cfg->certs[0], b, "c1", &res) == KVVM_OK);
  KT_STREQ(res.why, "");
  kvvm_install_result_clear(&res);
  struct kvvm_installed_cert rec;  /* the status says it, through the record's note */
  KT_CHECK(kvvm_installed_get(kvvm_store_installed(s), cfg->certs[0].url, "LocalMachine\\MY",
                              &rec));
  KT_STREQ(rec.note, "the root \"kvvm test chain root\" in the secret was not added to any "
           "store: which roots this machine trusts is not a secret's to change");
  KT_CHECK(kvvm_store_commit(s) == KVVM_OK);
  KT_CHECK(find_in("MY", kvvm_bundle_facts(b)->thumbprint, "vault1/chain/c1", "key") == 0);
  KT_CHECK(find_in("CA", inter, "-", NULL) == 0);
  KT_CHECK(absent_in(inter, "MY", "Root", NULL) == 0);
  KT_CHECK(absent_in(root, "Root", "CA", "MY") == 0);
out:
  kvvm_store_close(s);
  kvvm_bundle_free(b);
  kvvm_config_free(cfg);
}

/* Settings read for the files store name a folder: refused, nothing installed. */
static void folder_is_not_a_store(void)
{
  struct kvvm_bundle *b = bundle("v1.pem");
  struct kvvm_store *s = open_store();
  char url[] = "https://vault1.vault.azure.net/secrets/other", vault[] = "vault1",
       secret[] = "other", dir[] = "/var/lib/waagent/Microsoft.Azure.KeyVault.Store";
  struct kvvm_cert_cfg cc = {.url = url, .vault_name = vault, .secret_name = secret,
                             .store_dir = dir};
  struct kvvm_install_result res;
  if (b) {
    KT_CHECK(kvvm_store_install(s, &cc, b, "v1", &res) == KVVM_E_STORE);
    KT_CONTAINS(res.why, "is not a Windows certificate store");
    kvvm_install_result_clear(&res);
  }
  kvvm_store_close(s);
  kvvm_bundle_free(b);
}

static PCCERT_CONTEXT lookup(const char *store, const char *thumb);

/* Wine gives the user keyset the same one container as the machine's, and the key checks of
 * later cases tell the keysets apart by it: the CurrentUser cases' key goes when they end. */
static void drop_user_key(const char *thumb)
{
  PCCERT_CONTEXT c = lookup("CurrentUser\\MY", thumb);
  DWORD n = 0;
  CRYPT_KEY_PROV_INFO *info = NULL;
  HCRYPTPROV prov;
  if (c && CertGetCertificateContextProperty(c, CERT_KEY_PROV_INFO_PROP_ID, NULL, &n) &&
      (info = malloc(n)) &&
      CertGetCertificateContextProperty(c, CERT_KEY_PROV_INFO_PROP_ID, info, &n))
    KT_CHECK(CryptAcquireContextW(&prov, info->pwszContainerName, info->pwszProvName,
                                  info->dwProvType, CRYPT_DELETEKEYSET));
  free(info);
  CertFreeCertificateContext(c);
}

/* Each location and name a settings file can give lands in that store and no other: found
 * there from another process, with its key; a new name is created; "My" is MY. */
static void every_location_and_name(void)
{
  static const struct {
    const char *extra, *store, *path;
  } where[] = {  /* keys: other cases check them (wine shares one container per keyset) */
      {",\"certificateStoreLocation\":\"CurrentUser\"", "CurrentUser\\MY",
       "Cert:\\CurrentUser\\MY\\"},
      {",\"certificateStoreName\":\"TrustedPeople\"", "TrustedPeople",
       "Cert:\\LocalMachine\\TrustedPeople\\"},
      {",\"certificateStoreName\":\"WebHosting\"", "WebHosting",
       "Cert:\\LocalMachine\\WebHosting\\"},
      {",\"certificateStoreName\":\"kvvm new store\"", "kvvm new store",
       "Cert:\\LocalMachine\\kvvm new store\\"},
      {",\"certificateStoreName\":\"My\",\"certificateStoreLocation\":\"CurrentUser\"",
       "CurrentUser\\MY", "Cert:\\CurrentUser\\MY\\"},
  };
  struct kvvm_bundle *b = bundle("loc.pem");
  const char *thumb = b ? kvvm_bundle_facts(b)->thumbprint : NULL;
  KT_CHECK(thumb && absent_in(thumb, "MY", "TrustedPeople", "kvvm new store") == 0);
  for (size_t i = 0; thumb && i < sizeof where / sizeof where[0]; i++) {
    struct kvvm_config *cfg = config_for("https://vault1.vault.azure.net/secrets/loc",
                                         where[i].extra);
    struct kvvm_store *s = open_store();
    struct kvvm_install_result res;
    KT_CHECK(cfg && kvvm_store_install(s, &cfg->certs[0], b, "l1", &res) == KVVM_OK);
    KT_CHECK(res.file && strncmp(res.file, where[i].path, strlen(where[i].path)) == 0);
    KT_CHECK(i < 4 ? res.changed : !res.changed);  /* the last is the first again */
    kvvm_install_result_clear(&res);
    KT_CHECK(kvvm_store_commit(s) == KVVM_OK);
    kvvm_store_close(s);
    kvvm_config_free(cfg);
    KT_CHECK(find_in(where[i].store, thumb, "vault1/loc/l1", NULL) == 0);
  }
  KT_CHECK(thumb && absent_in(thumb, "MY", "CA", "Root") == 0);
  if (thumb && under_wine())
    drop_user_key(thumb);
  kvvm_bundle_free(b);
}

/* v3 of the sa secret: a Server Authentication leaf (name.pem) in LocalMachine\MY. */
static enum kvvm_err install_sa(const char *name, const char *version, char *why, size_t n)
{
  struct kvvm_config *cfg = config_for("https://vault1.vault.azure.net/secrets/sa", "");
  struct kvvm_bundle *b = bundle(name);
  struct kvvm_store *s = open_store();
  struct kvvm_install_result res = {0};
  enum kvvm_err rc = cfg && b ? kvvm_store_install(s, &cfg->certs[0], b, version, &res)
                              : KVVM_E_INTERNAL;
  snprintf(why, n, "%s", res.why);
  if (rc == KVVM_OK)
    KT_CHECK(kvvm_store_commit(s) == KVVM_OK);
  kvvm_install_result_clear(&res);
  kvvm_store_close(s);
  kvvm_bundle_free(b);
  kvvm_config_free(cfg);
  return rc;
}

/* DATADIR/name (one PEM certificate) into LocalMachine\Root, as an administrator would. */
static bool trust(const char *name)
{
  char *path = path_in(name), *pem = NULL;
  size_t len = 0;
  BYTE der[4096];
  DWORD n = sizeof der;
  HCERTSTORE root = CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0,
                                  CERT_SYSTEM_STORE_LOCAL_MACHINE, L"Root");
  bool ok = root && kvvm_file_read(path, 1 << 16, &pem, &len) == KVVM_OK &&
            CryptStringToBinaryA(pem, (DWORD)len, CRYPT_STRING_BASE64HEADER, der, &n, NULL,
                                 NULL) &&
            CertAddEncodedCertificateToStore(root, X509_ASN_ENCODING, der, n,
                                             CERT_STORE_ADD_USE_EXISTING, NULL);
  if (root) {
    CertControlStore(root, 0, CERT_STORE_CTRL_COMMIT, NULL);
    CertCloseStore(root, 0);
  }
  free(pem);
  free(path);
  return ok;
}

/* A Server Authentication leaf whose intermediate is nowhere is refused with the missing
 * issuer named and nothing written; with the chain in the secret it goes in (the root, not
 * trusted here, goes nowhere). A second leaf of that intermediate without its chain: its
 * intermediate is in the machine's CA store now, but the root is nowhere, so it is refused
 * naming the root; once the root is trusted here it goes in. */
static void server_auth_chain(void)
{
  char why[512], sa1[41], sa2[41], inter[41];
  if (!thumb_file("sa1.sha1", sa1) || !thumb_file("sa2.sha1", sa2) ||
      !thumb_file("sainter.sha1", inter)) {
    KT_CHECK(!"the server authentication test's data");
    return;
  }
  KT_CHECK(install_sa("sa1-alone.pem", "s1", why, sizeof why) == KVVM_E_CERT);
  KT_CONTAINS(why, "the certificate is for Server Authentication but its chain does not build "
              "on this machine: the issuer \"kvvm test sa intermediate\" of "
              "\"sa1.example.com\" is neither in the secret nor in this machine's "
              "certificate stores; not installed");
  KT_CHECK(absent_in(sa1, "MY", "CA", "Root") == 0);
  KT_CHECK(absent_in(inter, "MY", "CA", "Root") == 0);
  KT_CHECK(install_sa("sa1-chain.pem", "s2", why, sizeof why) == KVVM_OK);
  KT_CHECK(find_in("MY", sa1, "vault1/sa/s2", NULL) == 0);
  KT_CHECK(find_in("CA", inter, "-", NULL) == 0);
  KT_CHECK(install_sa("sa2-alone.pem", "s3", why, sizeof why) == KVVM_E_CERT);
  KT_CONTAINS(why, "the issuer \"kvvm test chain root\" of \"kvvm test sa intermediate\" is "
              "neither in the secret nor in this machine's certificate stores");
  KT_CHECK(absent_in(sa2, "MY", "CA", "Root") == 0);
  KT_CHECK(trust("croot.crt"));
  KT_CHECK(install_sa("sa2-alone.pem", "s3", why, sizeof why) == KVVM_OK);
  KT_CHECK(find_in("MY", sa2, "vault1/sa/s3", NULL) == 0);
}

/* A version installed makes its hooks due; run, a hook gets the event, the thumbprint and
 * the store, as an IIS rebind script needs them. Wine keeps no file owner: main sets the
 * testing aid that stands in for the owner check (the rule is test_hooks_win.c's). */
static void hooks_get_thumbprint_and_store(void)
{
  struct kvvm_config *cfg = config_for("https://vault1.vault.azure.net/secrets/hooked", "");
  struct kvvm_bundle *b = bundle("loc.pem");
  struct kvvm_store *s = open_store();
  struct kvvm_install_result res;
  char *hooks = path_in("hooks"), *hook = kvvm_path_join(hooks, "10-note.cmd");
  char *out = path_in("hook-out.txt"), *script = NULL, *got = NULL, want[200];
  size_t len = 0;
  script = kvvm_xasprintf("@echo %%KVVM_HOOK_EVENT%% %%KVVM_THUMBPRINT%% %%KVVM_STORE_DIR%% "
                          "%%KVVM_STORE_NAME%% %%KVVM_LINK%%>> \"%s\"\r\n", out);
  KT_CHECK(cfg && b && kvvm_dir_ensure(hooks, 0700) == KVVM_OK &&
           kvvm_file_write_atomic(hook, script, strlen(script), 0700) == KVVM_OK);
  if (!cfg || !b)
    goto out;
  KT_CHECK(kvvm_store_install(s, &cfg->certs[0], b, "h1", &res) == KVVM_OK && res.changed);
  kvvm_install_result_clear(&res);
  KT_CHECK(kvvm_store_commit(s) == KVVM_OK);
  /* Only this version's hooks are due: the earlier cases' installs found the folder empty. */
  struct kvvm_hooks_opts o = {.dir = hooks, .timeout_s = 20};
  KT_CHECK(kvvm_hooks_run_due(kvvm_store_installed(s), &o) == KVVM_OK);
  const char *thumb = kvvm_bundle_facts(b)->thumbprint;
  snprintf(want, sizeof want, "install %s LocalMachine\\MY MY Cert:\\LocalMachine\\MY\\%s\r\n",
           thumb, thumb);
  KT_CHECK(kvvm_file_read(out, 1 << 16, &got, &len) == KVVM_OK);
  KT_CONTAINS(got, want);
  KT_CONTAINS(got, "pass ");
out:
  free(got);
  free(script);
  free(out);
  free(hook);
  free(hooks);
  kvvm_store_close(s);
  kvvm_bundle_free(b);
  kvvm_config_free(cfg);
}

static void ec_key(void)
{
  if (under_wine()) {
    KT_SKIP("ec_key: wine's PFXImportCertStore refuses EC keys");
    return;
  }
  struct kvvm_config *cfg = config(",\"certificateStoreName\":\"kvvm-test-ec\"");
  struct kvvm_bundle *b = bundle("ec.pem");
  struct kvvm_store *s = open_store();
  struct kvvm_install_result res;
  if (cfg && b) {
    KT_CHECK(kvvm_store_install(s, &cfg->certs[0], b, "ec1", &res) == KVVM_OK);
    kvvm_install_result_clear(&res);
  }
  kvvm_store_close(s);
  kvvm_bundle_free(b);
  kvvm_config_free(cfg);
}

/* ---- the second process ---- */

static bool friendly_name_has(PCCERT_CONTEXT c, const char *want)
{
  wchar_t name[256];
  DWORD n = sizeof name;
  char utf8[512];
  if (!CertGetCertificateContextProperty(c, CERT_FRIENDLY_NAME_PROP_ID, name, &n))
    return false;
  WideCharToMultiByte(CP_UTF8, 0, name, -1, utf8, sizeof utf8, NULL, NULL);
  return strstr(utf8, want) != NULL;
}

/* Wine records key spec 3 (both bits); Windows one of AT_KEYEXCHANGE, AT_SIGNATURE. */
static bool get_key(HCRYPTPROV prov, DWORD spec, HCRYPTKEY *key)
{
  if (spec == AT_KEYEXCHANGE || spec == AT_SIGNATURE || !under_wine())
    return CryptGetUserKey(prov, spec, key);
  printf("  the key spec wine records: %lu\n", spec);
  KT_SKIP("the key spec of the key info: wine records both bits");
  return CryptGetUserKey(prov, AT_KEYEXCHANGE, key) || CryptGetUserKey(prov, AT_SIGNATURE, key);
}

/* The CAPI key: opened in the machine keyset by the container the certificate names, its
 * public half equal to the certificate's, its private half exportable as asked. */
static bool capi_key_ok(PCCERT_CONTEXT c, const CRYPT_KEY_PROV_INFO *info, bool exportable)
{
  HCRYPTPROV prov = 0;
  HCRYPTKEY key = 0, pub = 0;
  BYTE a[2048], b[2048];
  DWORD na = sizeof a, nb = sizeof b, nx = 0;
  int step = 0;
  bool ok = ++step && CryptAcquireContextW(&prov, info->pwszContainerName, info->pwszProvName,
                                           info->dwProvType, CRYPT_MACHINE_KEYSET) &&
            ++step && get_key(prov, info->dwKeySpec, &key) &&
            ++step && CryptExportKey(key, 0, PUBLICKEYBLOB, 0, a, &na) &&
            ++step && CryptImportPublicKeyInfo(prov, X509_ASN_ENCODING,
                                               &c->pCertInfo->SubjectPublicKeyInfo, &pub) &&
            ++step && CryptExportKey(pub, 0, PUBLICKEYBLOB, 0, b, &nb) &&
            ++step && na == nb && !memcmp(a, b, na);
  if (!ok)
    fprintf(stderr, "  the machine key: step %d failed (0x%lx; container %ls, spec %lu)\n",
            step, GetLastError(), info->pwszContainerName, info->dwKeySpec);
  if (ok && CryptExportKey(key, 0, PRIVATEKEYBLOB, 0, NULL, &nx) != exportable) {
    fprintf(stderr, "  the private key is %sexportable (0x%lx)\n", exportable ? "not " : "",
            GetLastError());
    ok = false;
  }
  if (pub)
    CryptDestroyKey(pub);
  if (key)
    CryptDestroyKey(key);
  if (prov)
    CryptReleaseContext(prov, 0);
  return ok;
}

/* The CNG key (Windows decides CAPI or CNG): a machine key whose export policy allows
 * export exactly when asked. */
static bool cng_key_ok(const CRYPT_KEY_PROV_INFO *info, bool exportable)
{
  NCRYPT_PROV_HANDLE ksp = 0;
  NCRYPT_KEY_HANDLE key = 0;
  DWORD policy = ~0u, n = 0;
  bool ok = NCryptOpenStorageProvider(&ksp, info->pwszProvName, 0) == ERROR_SUCCESS &&
            NCryptOpenKey(ksp, &key, info->pwszContainerName, 0, NCRYPT_MACHINE_KEY_FLAG) ==
                ERROR_SUCCESS &&
            NCryptGetProperty(key, NCRYPT_EXPORT_POLICY_PROPERTY, (PBYTE)&policy,
                              sizeof policy, &n, 0) == ERROR_SUCCESS &&
            !(policy & (NCRYPT_ALLOW_EXPORT_FLAG | NCRYPT_ALLOW_PLAINTEXT_EXPORT_FLAG)) ==
                !exportable;
  if (key)
    NCryptFreeObject(key);
  if (ksp)
    NCryptFreeObject(ksp);
  return ok;
}

static bool user_key_exists(const CRYPT_KEY_PROV_INFO *info)
{
  HCRYPTPROV prov = 0;
  if (!CryptAcquireContextW(&prov, info->pwszContainerName, info->pwszProvName,
                            info->dwProvType, 0))
    return false;
  CryptReleaseContext(prov, 0);
  return true;
}

static bool key_ok(PCCERT_CONTEXT c, bool exportable)
{
  DWORD n = 0;
  bool ok = false;
  if (!CertGetCertificateContextProperty(c, CERT_KEY_PROV_INFO_PROP_ID, NULL, &n))
    return false;
  CRYPT_KEY_PROV_INFO *info = malloc(n);
  if (info && CertGetCertificateContextProperty(c, CERT_KEY_PROV_INFO_PROP_ID, info, &n)) {
    /* Windows records the keyset in the key's info; wine leaves the flags 0, so there the
     * machine keyset is shown by opening the container in it (and not in the user's). */
    bool machine = info->dwFlags & CRYPT_MACHINE_KEYSET;
    if (!machine && under_wine()) {
      KT_SKIP("the keyset flag of the key info: wine does not record it");
      machine = !user_key_exists(info);
    }
    if (!machine)
      fprintf(stderr, "  the key is not in the machine keyset (flags 0x%lx)\n", info->dwFlags);
    ok = machine && (info->dwProvType ? capi_key_ok(c, info, exportable)
                                      : cng_key_ok(info, exportable));
  }
  free(info);
  return ok;
}

/* THUMB in STORE ("CurrentUser\\X" or a LocalMachine name) through a handle of this
 * process, or NULL. The context keeps the store alive after its handle is closed. */
static PCCERT_CONTEXT lookup(const char *store, const char *thumb)
{
  wchar_t wstore[64];
  BYTE hash[20];
  CRYPT_HASH_BLOB blob = {sizeof hash, hash};
  DWORD where = CERT_SYSTEM_STORE_LOCAL_MACHINE;
  for (int i = 0; i < 20; i++) {
    unsigned v = 0;
    sscanf(thumb + 2 * i, "%2x", &v);
    hash[i] = (BYTE)v;
  }
  if (strncmp(store, "CurrentUser\\", 12) == 0) {
    where = CERT_SYSTEM_STORE_CURRENT_USER;
    store += 12;
  }
  MultiByteToWideChar(CP_UTF8, 0, store, -1, wstore, 64);
  HCERTSTORE h = CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0, where |
                               CERT_STORE_OPEN_EXISTING_FLAG | CERT_STORE_READONLY_FLAG, wstore);
  PCCERT_CONTEXT c = h ? CertFindCertificateInStore(h, X509_ASN_ENCODING, 0,
                                                    CERT_FIND_SHA1_HASH, &blob, NULL) : NULL;
  if (h)
    CertCloseStore(h, 0);
  return c;
}

/* key: NULL (the certificate only), "key" or "exportable". */
static int find_main(const char *store, const char *thumb, const char *name, const char *key)
{
  PCCERT_CONTEXT c = lookup(store, thumb);
  int rc = !c ? 2 : strcmp(name, "-") && !friendly_name_has(c, name) ? 3 :
           key && !key_ok(c, strcmp(key, "exportable") == 0) ? 4 : 0;
  if (rc)
    fprintf(stderr, "  find %s: %s%s\n", thumb, rc == 2 ? "not in LocalMachine\\" : "",
            rc == 2 ? store : rc == 3 ? "friendly name differs" : "key check failed");
  CertFreeCertificateContext(c);
  return rc;
}

/* 0 when thumb is in none of the LocalMachine stores named. */
static int absent_main(const char *thumb, char **stores, int n)
{
  int rc = 0;
  for (int i = 0; i < n; i++) {
    PCCERT_CONTEXT c = lookup(stores[i], thumb);
    if (c) {
      fprintf(stderr, "  %s is in LocalMachine\\%s\n", thumb, stores[i]);
      rc = 5;
    }
    CertFreeCertificateContext(c);
  }
  return rc;
}

int main(int argc, char **argv)
{
  static const struct kt_case cases[] = {
      {"install_v1", install_v1},
      {"keep_without_writes", keep_without_writes},
      {"second_version_beside_the_first", second_version_beside_the_first},
      {"unresolved_account_is_said", unresolved_account_is_said},
      {"key_exportable", key_exportable},
      {"chain_to_ca", chain_to_ca},
      {"folder_is_not_a_store", folder_is_not_a_store},
      {"every_location_and_name", every_location_and_name},
      {"server_auth_chain", server_auth_chain},
      {"hooks_get_thumbprint_and_store", hooks_get_thumbprint_and_store},
      {"ec_key", ec_key},
  };
  if (argc >= 4 && strcmp(argv[1], "absent") == 0)
    return absent_main(argv[2], argv + 3, argc - 3);
  if (argc >= 5 && strcmp(argv[1], "find") == 0)
    return find_main(argv[2], argv[3], argv[4], argc > 5 ? argv[5] : NULL);
  if (argc != 2) {
    fprintf(stderr, "usage: test_store_win DATADIR | find STORE THUMB NAME "
            "[key|exportable] | absent THUMB STORE...\n");
    return 2;
  }
  datadir = argv[1];
  /* The store looks in this folder for a hook before it makes an install's hooks due:
   * empty until hooks_get_thumbprint_and_store puts a hook in it. */
  char *hooks = path_in("hooks");
  SetEnvironmentVariableA("KVVM_HOOKS_DIR", hooks);
  free(hooks);
  GetModuleFileNameA(NULL, self, sizeof self);
  if (under_wine()) {
    printf("under wine: CNG and EC keys cannot be shown here (docs windows.md)\n");
    _putenv("KVVM_WINE_NO_FILE_OWNER=1");  /* getenv reads the C library's copy */
  }
  return kt_main("store_win", cases, sizeof(cases) / sizeof(cases[0]));
}
