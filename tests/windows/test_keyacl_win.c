/* accounts (the private key's DACL: src/windows/store_acl_windows.c, store_grant_windows.c)
 * and linkOnRenewal (store_link_windows.c) on a real crypt32: Windows, or wine in a fresh
 * WINEPREFIX (tests/windows/keyacl.sh makes the data and runs it).
 *   test_keyacl_win.exe DATADIR       the cases below; DATADIR holds site1..3.pem and
 *                                     other, wide, nokey, ok .der, and gets state\
 *   test_keyacl_win.exe renewal THUMB WANT
 *                                     a second process: THUMB in LocalMachine\MY renews to
 *                                     WANT (CERT_RENEWAL_PROP_ID), or to nothing for "-".
 * What wine cannot show is skipped with the reason printed, never passed. */
#include <process.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <windows.h>
#include <wincrypt.h>
#include <sddl.h>

#include <jansson.h>

#include "../unit/kt.h"
#include "store_kit.h"
#include "kvvm/certmat.h"
#include "kvvm/fileio.h"
#include "kvvm/mem.h"
#include "kvvm/settings.h"
#include "kvvm/store.h"
#include "windows/store_int.h"

#define URL "https://vault1.vault.azure.net/secrets/site"
#define NS_ONLY "[\"Network Service\"]"

static const char *datadir;
static char self[MAX_PATH];
static char thumb[4][41];   /* site1..site3 */
static wchar_t my[] = L"MY";
static char foreign_ok[41], foreign_wide[41], foreign_nokey[41], foreign_other[41];

static bool under_wine(void)
{
  return GetProcAddress(GetModuleHandleA("ntdll.dll"), "wine_get_version") != NULL;
}

static char *path_in(const char *name) { return kvvm_path_join(datadir, name); }

static bool read_data(const char *name, char **text, size_t *len)
{
  char *path = path_in(name);
  bool ok = kvvm_file_read(path, 1 << 20, text, len) == KVVM_OK;
  if (!ok)
    fprintf(stderr, "  cannot read %s\n", path);
  free(path);
  return ok;
}

static struct kvvm_bundle *bundle(const char *name)
{
  char *text = NULL, why[256] = "";
  size_t len = 0;
  struct kvvm_bundle *b = NULL;
  if (read_data(name, &text, &len) &&
      kvvm_certmat_from_pem(text, len, &b, why, sizeof why) != KVVM_OK)
    fprintf(stderr, "  %s: %s\n", name, why);
  free(text);
  return b;
}

/* One certificate in LocalMachine\MY with these accounts (a JSON array or "") and the
 * top-level linkOnRenewal. */
/* The version's note when nothing was linked: only that the secret's root went nowhere. */
#define ROOT_NOTE "the root \"kvvm acl root\" in the secret was not added to any store: " \
                  "which roots this machine trusts is not a secret's to change"

static struct kvvm_config *config_url(const char *url, const char *accounts, bool link)
{
  char sms[1024];
  snprintf(sms, sizeof sms, "{\"linkOnRenewal\":%s,\"observedCertificates\":[{\"url\":"
           "\"%s\"%s%s}]}", link ? "true" : "false", url, *accounts ? ",\"accounts\":" : "",
           accounts);
  return kit_settings(sms);
}

static struct kvvm_config *config(const char *accounts, bool link)
{
  return config_url(URL, accounts, link);
}

static struct kvvm_store *open_store(void)
{
  char *state = path_in("state");
  /* Every version stays, so the links between them can be read back; the removal of old
   * versions is test_store_prune_win's. */
  struct kvvm_store_opts o = {.state_dir = state, .retain = 10};
  struct kvvm_store *s = NULL;
  KT_CHECK(kvvm_store_open(&o, &s) == KVVM_OK);
  free(state);
  return s;
}

/* ---- names -> SIDs ---- */

/* A list as the library takes it (char *const *), copied from literals; free with
 * store_win_acl_free. */
static char **list(const char *const *in)
{
  size_t n = 0;
  while (in[n])
    n++;
  char **out = kvvm_xcalloc(n + 1, sizeof *out);
  for (size_t i = 0; i < n; i++)
    out[i] = kvvm_xstrdup(in[i]);
  return out;
}

/* accounts (NULL-terminated) resolve to want (SIDs joined by ","), with no error. */
static void resolves_to(const char *const *accounts, const char *want)
{
  char **sids = NULL, why[512], got[512] = "", **acc = list(accounts);
  KT_CHECK(store_win_acl_resolve(acc, &sids, why, sizeof why) == KVVM_OK);
  store_win_acl_free(acc);
  KT_STREQ(why, "");
  for (char **p = sids; p && *p; p++)
    snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", p == sids ? "" : ",", *p);
  KT_STREQ(got, want);
  store_win_acl_free(sids);
}

static void well_known_names(void)
{
  resolves_to((const char *[]){"SYSTEM", "Administrators", "LocalSystem", NULL}, "");
  resolves_to((const char *[]){"Network Service", NULL}, "S-1-5-20");
  resolves_to((const char *[]){"NT AUTHORITY\\NETWORK SERVICE", "networkservice", "S-1-5-20",
                               "NETWORK SERVICE", NULL}, "S-1-5-20");
  resolves_to((const char *[]){"Users", "Local Service", "NT AUTHORITY\\Local Service",
                               "LocalService", "Network Service", NULL},
              "S-1-5-19,S-1-5-20,S-1-5-32-545");
  resolves_to((const char *[]){"IIS_IUSRS", "BUILTIN\\Administrators", NULL}, "S-1-5-32-568");
}

/* Names the table does not hold go to LookupAccountNameW: a group, this process's own
 * account (a local account), a SID written out. */
static void looked_up_names(void)
{
  resolves_to((const char *[]){"Authenticated Users", NULL}, "S-1-5-11");
  resolves_to((const char *[]){"s-1-5-21-1-2-3-1001", NULL}, "S-1-5-21-1-2-3-1001");
  wchar_t user[256];
  DWORD n = 256;
  HANDLE tok = NULL;
  BYTE buf[512];
  wchar_t *sid = NULL;
  char name[256], want[256];
  KT_CHECK(GetUserNameW(user, &n) && OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &tok) &&
           GetTokenInformation(tok, TokenUser, buf, sizeof buf, &n) &&
           ConvertSidToStringSidW(((TOKEN_USER *)buf)->User.Sid, &sid));
  if (sid) {
    WideCharToMultiByte(CP_UTF8, 0, user, -1, name, sizeof name, NULL, NULL);
    WideCharToMultiByte(CP_UTF8, 0, sid, -1, want, sizeof want, NULL, NULL);
    resolves_to((const char *[]){name, NULL}, want);
    LocalFree(sid);
  }
  if (tok)
    CloseHandle(tok);
}

/* A name that does not resolve grants nothing and is named; the others are granted. */
static void bad_names(void)
{
  char **acc = list((const char *[]){"kvvm-no-such-account", "Network Service", "S-1-5-x",
                                      NULL});
  char **sids = NULL, why[512];
  KT_CHECK(store_win_acl_resolve(acc, &sids, why, sizeof why) == KVVM_E_GRANT);
  store_win_acl_free(acc);
  KT_CHECK(sids && sids[0] && strcmp(sids[0], "S-1-5-20") == 0 && !sids[1]);
  KT_CONTAINS(why, "accounts: \"kvvm-no-such-account\" is not an account or group on this "
              "machine (LookupAccountName: ");
  KT_CONTAINS(why, "); it is granted nothing; accounts: \"S-1-5-x\" is not a valid SID "
              "(S-1-5-...); it is granted nothing");
  store_win_acl_free(sids);
}

static void virtual_accounts(void)
{
  char **acc = list((const char *[]){"IIS APPPOOL\\DefaultAppPool", NULL});
  char **sids = NULL, why[512];
  enum kvvm_err rc = store_win_acl_resolve(acc, &sids, why, sizeof why);
  store_win_acl_free(acc);
  if (rc != KVVM_OK) {
    KT_CONTAINS(why, "\"IIS APPPOOL\\DefaultAppPool\" is not an account or group");
    KT_SKIP(under_wine() ? "IIS APPPOOL virtual accounts: wine's LookupAccountNameW knows "
            "none" : "IIS APPPOOL virtual accounts: IIS is not installed here");
  } else {
    KT_CHECK(sids[0] && strncmp(sids[0], "S-1-5-82-", 9) == 0);
  }
  store_win_acl_free(sids);
}

/* ---- the DACL as SDDL ---- */

static void sddl_is(const char *const *sids, const char *want)
{
  char **l = list(sids), *got = store_win_acl_sddl(l);
  KT_STREQ(got, want);
  free(got);
  store_win_acl_free(l);
}

static void sddl_builder(void)
{
  sddl_is((const char *[]){NULL}, "D:P(A;;GA;;;SY)(A;;GA;;;BA)");
  sddl_is((const char *[]){"S-1-5-20", NULL}, "D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GR;;;S-1-5-20)");
  sddl_is((const char *[]){"S-1-5-19", "S-1-5-20", "S-1-5-21-1-2-3-1001", NULL},
          "D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GR;;;S-1-5-19)(A;;GR;;;S-1-5-20)"
          "(A;;GR;;;S-1-5-21-1-2-3-1001)");
  /* duplicates and full-control accounts, through the resolver */
  char **acc = list((const char *[]){"Network Service", "SYSTEM", "NetworkService", "Users",
                                      NULL});
  char **sids = NULL, why[256];
  KT_CHECK(store_win_acl_resolve(acc, &sids, why, sizeof why) == KVVM_OK);
  store_win_acl_free(acc);
  sddl_is((const char *const *)sids,
          "D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GR;;;S-1-5-20)(A;;GR;;;S-1-5-32-545)");
  store_win_acl_free(sids);
  char *c = store_win_acl_canonical("D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GR;;;S-1-5-20)");
  KT_STREQ(c, "D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GR;;;NS)");
  free(c);
  char **ns = list((const char *[]){"S-1-5-20", NULL}), *d = store_win_acl_display(ns);
  KT_STREQ(d, "SYSTEM, Administrators, NT AUTHORITY\\NETWORK SERVICE (S-1-5-20)");
  free(d);
  store_win_acl_free(ns);
}

/* ---- installs ---- */

static enum kvvm_err install(const char *pem, const char *version, const char *accounts,
                             bool link, struct kvvm_store *s, char *thumb_out, char *why,
                             size_t n)
{
  struct kvvm_config *cfg = config(accounts, link);
  struct kvvm_bundle *b = bundle(pem);
  struct kvvm_install_result res;
  enum kvvm_err rc = KVVM_E_INTERNAL;
  if (cfg && b) {
    snprintf(thumb_out, 41, "%s", kvvm_bundle_facts(b)->thumbprint);
    rc = kvvm_store_install(s, &cfg->certs[0], b, version, &res);
    snprintf(why, n, "%s", res.why);
    kvvm_install_result_clear(&res);
    KT_CHECK(kvvm_store_commit(s) == KVVM_OK);
  }
  kvvm_bundle_free(b);
  kvvm_config_free(cfg);
  return rc;
}

/* The key of THUMB in LocalMachine\MY: its DACL as SDDL, or NULL. */
static char *dacl_of(const char *t)
{
  struct op op = {.where = {CERT_SYSTEM_STORE_LOCAL_MACHINE, CRYPT_MACHINE_KEYSET, my}};
  HCERTSTORE h = store_win_open(&op, false);
  PCCERT_CONTEXT c = store_win_find(h, t);
  struct store_win_key k;
  char *sddl = NULL;
  DWORD code = 0;
  if (store_win_key_of(c, &k) == KVVM_OK) {
    k.machine = true;
    if (store_win_acl_read(&k, &sddl, NULL, &code) != KVVM_OK)
      fprintf(stderr, "  cannot read the DACL of %s: 0x%lx\n", t, code);
  }
  store_win_key_clear(&k);
  CertFreeCertificateContext(c);
  if (h)
    CertCloseStore(h, 0);
  return sddl;
}

/* The record of URL as installed.json holds it (a new reference). */
static json_t *record_of(void)
{
  char *path = path_in("state\\installed.json");
  json_t *rec = kit_record(path, URL, "LocalMachine\\MY");
  free(path);
  return rec;
}

/* The first DACL set in this prefix (wine sets one once per key container): the key of a
 * first install gives SYSTEM and Administrators full control, NETWORK SERVICE read. */
static void first_install_dacl(void)
{
  struct kvvm_store *s = open_store();
  char why[512];
  KT_CHECK(install("site1.pem", "v1", NS_ONLY, true, s, thumb[1], why, sizeof why) == KVVM_OK);
  KT_STREQ(why, "");
  char *got = dacl_of(thumb[1]);
  if (under_wine()) {
    KT_STREQ(got, "D:(A;;GA;;;SY)(A;;GA;;;BA)(A;;GR;;;NS)");
    KT_SKIP("the DACL's protected flag (P): wine drops it when it stores a key's DACL");
  } else {
    KT_STREQ(got, "D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GR;;;NS)");
  }
  free(got);
  json_t *rec = record_of();
  json_t *readers = json_object_get(json_array_get(json_object_get(rec, "versions"), 0),
                                    "readers");
  KT_CHECK(json_array_size(readers) == 1 &&
           strcmp(json_string_value(json_array_get(readers, 0)), "S-1-5-20") == 0);
  KT_STREQ(json_string_value(json_object_get(rec, "readers")),
           "SYSTEM, Administrators, NT AUTHORITY\\NETWORK SERVICE (S-1-5-20)");
  KT_STREQ(json_string_value(json_object_get(rec, "note")), ROOT_NOTE);  /* no link note */
  json_decref(rec);
  kvvm_store_close(s);
}

/* ---- linkOnRenewal ---- */

/* A key container of its own in the machine keyset whose DACL is sddl (the first and only
 * DACL set on it, which wine allows). */
static bool container_with(const wchar_t *name, const wchar_t *sddl)
{
  HCRYPTPROV prov = 0;
  HCRYPTKEY key = 0;
  PSECURITY_DESCRIPTOR sd = NULL;
  bool ok = CryptAcquireContextW(&prov, name, MS_ENHANCED_PROV_W, PROV_RSA_FULL,
                                 CRYPT_MACHINE_KEYSET | CRYPT_NEWKEYSET) &&
            CryptGenKey(prov, AT_KEYEXCHANGE, 0, &key) &&
            ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1, &sd,
                                                                 NULL) &&
            CryptSetProvParam(prov, PP_KEYSET_SEC_DESCR, sd, DACL_SECURITY_INFORMATION);
  if (!ok)
    fprintf(stderr, "  container %ls: 0x%lx\n", name, GetLastError());
  if (sd)
    LocalFree(sd);
  if (key)
    CryptDestroyKey(key);
  if (prov)
    CryptReleaseContext(prov, 0);
  return ok;
}

/* name.der added to LocalMachine\MY as a certificate kvvm did not install, naming the key
 * container (NULL: no key); its thumbprint to out. */
static bool foreign(const char *name, const wchar_t *container, char out[41])
{
  char *der = NULL, file[64];
  size_t len = 0;
  PCCERT_CONTEXT c = NULL;
  wchar_t cont[64] = L"", prov[] = MS_ENHANCED_PROV_W;
  CRYPT_KEY_PROV_INFO info = {cont, prov, PROV_RSA_FULL, CRYPT_MACHINE_KEYSET, 0, NULL,
                              AT_KEYEXCHANGE};
  if (container)
    wcsncpy(cont, container, 63);
  BYTE hash[20];
  DWORD n = sizeof hash;
  snprintf(file, sizeof file, "%s.der", name);
  HCERTSTORE h = CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0,
                               CERT_SYSTEM_STORE_LOCAL_MACHINE, L"MY");
  bool ok = h && read_data(file, &der, &len) &&
            CertAddEncodedCertificateToStore(h, X509_ASN_ENCODING, (BYTE *)der, (DWORD)len,
                                             CERT_STORE_ADD_REPLACE_EXISTING, &c) &&
            (!container || CertSetCertificateContextProperty(c, CERT_KEY_PROV_INFO_PROP_ID, 0,
                                                             &info)) &&
            CertGetCertificateContextProperty(c, CERT_SHA1_HASH_PROP_ID, hash, &n);
  for (int i = 0; ok && i < 20; i++)
    snprintf(out + 2 * i, 3, "%02X", hash[i]);
  if (h)
    CertControlStore(h, CERT_STORE_CTRL_COMMIT_FORCE_FLAG, CERT_STORE_CTRL_COMMIT, NULL);
  CertFreeCertificateContext(c);
  if (h)
    CertCloseStore(h, 0);
  free(der);
  return ok;
}

static int renews_to(const char *t, const char *want)
{
  return (int)_spawnl(_P_WAIT, self, self, "renewal", t, want, NULL);
}

/* site2 names web and www: site1 (kvvm's, readers from its record) and ok (foreign, readers
 * from its key's DACL: NETWORK SERVICE) link to it; wide (LOCAL SERVICE reads its key, not
 * site2's) and nokey (no key to compare) do not, and the note says why; other (a name
 * site2 lacks) is no predecessor. */
static void renewal_links(void)
{
  struct kvvm_store *s = open_store();
  char why[512];
  KT_CHECK(container_with(L"kvvm-test-wide", L"D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GR;;;NS)"
                          L"(A;;GR;;;LS)"));
  KT_CHECK(container_with(L"kvvm-test-ok", L"D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GR;;;NS)"));
  KT_CHECK(foreign("wide", L"kvvm-test-wide", foreign_wide));
  KT_CHECK(foreign("ok", L"kvvm-test-ok", foreign_ok));
  KT_CHECK(foreign("nokey", NULL, foreign_nokey));
  KT_CHECK(foreign("other", NULL, foreign_other));
  KT_CHECK(install("site2.pem", "v2", NS_ONLY, true, s, thumb[2], why, sizeof why) == KVVM_OK);
  KT_STREQ(why, "");
  json_t *rec = record_of();
  const char *note = json_string_value(json_object_get(rec, "note"));
  printf("  note: %s\n", note ? note : "(none)");
  KT_CONTAINS(note, "linkOnRenewal: linked to this version: ");
  KT_CONTAINS(note, thumb[1]);
  KT_CONTAINS(note, foreign_ok);
  char *wide = kvvm_xasprintf("%s (NT AUTHORITY\\LOCAL SERVICE (S-1-5-19) can use its key but "
                              "not the new one's (a binding that followed the link would fail "
                              "with SEC_E_UNKNOWN_CREDENTIALS))", foreign_wide);
  char *nokey = kvvm_xasprintf("%s (it names no private key whose permissions could be "
                               "compared)", foreign_nokey);
  KT_CONTAINS(note, wide);
  KT_CONTAINS(note, nokey);
  KT_CHECK(note && !strstr(note, foreign_other));
  free(wide);
  free(nokey);
  json_decref(rec);
  struct kvvm_installed_cert view;   /* what kvvm status shows */
  KT_CHECK(kvvm_installed_get(kvvm_store_installed(s), URL, "LocalMachine\\MY", &view) &&
           view.note && strstr(view.note, "not linked: ") && view.readers &&
           strcmp(view.readers, "SYSTEM, Administrators, NT AUTHORITY\\NETWORK SERVICE "
                  "(S-1-5-20)") == 0 && !view.last_error);
  kvvm_store_close(s);
  KT_CHECK(renews_to(thumb[1], thumb[2]) == 0);
  KT_CHECK(renews_to(foreign_ok, thumb[2]) == 0);
  KT_CHECK(renews_to(foreign_wide, "-") == 0);
  KT_CHECK(renews_to(foreign_nokey, "-") == 0);
  KT_CHECK(renews_to(foreign_other, "-") == 0);
}

/* Without linkOnRenewal a new version links nothing and the record's note goes. */
static void no_link_without_setting(void)
{
  struct kvvm_store *s = open_store();
  char why[512];
  KT_CHECK(install("site3.pem", "v3", NS_ONLY, false, s, thumb[3], why, sizeof why) ==
           KVVM_OK);
  KT_STREQ(why, "");
  kvvm_store_close(s);
  json_t *rec = record_of();
  KT_STREQ(json_string_value(json_object_get(rec, "note")), ROOT_NOTE);  /* no link note */
  json_decref(rec);
  KT_CHECK(renews_to(thumb[2], "-") == 0);
  KT_CHECK(renews_to(thumb[1], thumb[2]) == 0);
}

/* A name that does not resolve: the certificate's error names it, the key keeps the DACL of
 * the names that do. */
static void unresolved_is_said(void)
{
  struct kvvm_config *cfg = config("[\"Network Service\",\"IIS APPPOOL\\\\kvvm-none\"]", false);
  struct kvvm_store *s = open_store();
  struct kvvm_install_result res;
  enum kvvm_err rc = KVVM_OK;
  KT_CHECK(cfg && kvvm_store_keep(s, &cfg->certs[0], "v3", &res, &rc) && rc == KVVM_E_GRANT);
  KT_CONTAINS(res.why, "accounts: \"IIS APPPOOL\\kvvm-none\" is not an account or group on "
              "this machine (LookupAccountName: ");
  kvvm_install_result_clear(&res);
  struct kvvm_installed_cert rec;
  KT_CHECK(kvvm_installed_get(kvvm_store_installed(s), URL, "LocalMachine\\MY", &rec) &&
           rec.last_error && strstr(rec.last_error, "kvvm-none"));
  kvvm_store_close(s);
  kvvm_config_free(cfg);
}

/* accounts changed: every kept version's key gets the new DACL, grants taken back too. */
static void accounts_changed(void)
{
  if (under_wine()) {
    KT_SKIP("a second DACL update (accounts changed): wine sets a key container's DACL once");
    return;
  }
  struct kvvm_config *cfg = config("[\"Local Service\"]", false);
  struct kvvm_store *s = open_store();
  KT_CHECK(cfg && kvvm_store_reconcile_grants(s, cfg) == KVVM_OK);
  KT_CHECK(kvvm_store_commit(s) == KVVM_OK);
  for (int v = 1; v <= 3; v++) {
    char *got = dacl_of(thumb[v]);
    KT_STREQ(got, "D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GR;;;LS)");
    free(got);
  }
  kvvm_store_close(s);
  kvvm_config_free(cfg);
}

/* The settings stop naming the certificate: its versions stay, their keys go back to SYSTEM
 * and Administrators (as Linux takes back an unobserved certificate's grants). */
static void unobserved_taken_back(void)
{
  if (under_wine()) {
    KT_SKIP("grants taken back from a certificate no longer observed: a second DACL update, "
            "which wine refuses");
    return;
  }
  struct kvvm_config *cfg = config_url("https://vault1.vault.azure.net/secrets/other", "", false);
  struct kvvm_store *s = open_store();
  KT_CHECK(cfg && kvvm_store_reconcile_grants(s, cfg) == KVVM_OK);
  KT_CHECK(kvvm_store_commit(s) == KVVM_OK);
  for (int v = 1; v <= 3; v++) {
    char *got = dacl_of(thumb[v]);
    KT_STREQ(got, "D:P(A;;GA;;;SY)(A;;GA;;;BA)");
    free(got);
  }
  kvvm_store_close(s);
  kvvm_config_free(cfg);
}

static void what_wine_cannot_show(void)
{
  if (under_wine())
    KT_SKIP("the DACL of a CNG key (NCRYPT_SECURITY_DESCR_PROPERTY): wine has no CNG");
  KT_SKIP("that NETWORK SERVICE can use the key and another account cannot: needs a process "
          "running as that account (wine runs everything as one elevated user)");
}

/* ---- the second process ---- */

static int renewal_main(const char *t, const char *want)
{
  struct op op = {.where = {CERT_SYSTEM_STORE_LOCAL_MACHINE, CRYPT_MACHINE_KEYSET, my}};
  HCERTSTORE h = store_win_open(&op, false);
  PCCERT_CONTEXT c = store_win_find(h, t);
  BYTE hash[20];
  DWORD n = sizeof hash;
  char got[41] = "-";
  if (c && CertGetCertificateContextProperty(c, CERT_RENEWAL_PROP_ID, hash, &n) && n == 20)
    for (int i = 0; i < 20; i++)
      snprintf(got + 2 * i, 3, "%02X", hash[i]);
  int rc = !c ? 2 : _stricmp(got, want) != 0 ? 3 : 0;
  if (rc)
    fprintf(stderr, "  %s renews to %s, expected %s\n", t, c ? got : "(not in MY)", want);
  CertFreeCertificateContext(c);
  if (h)
    CertCloseStore(h, 0);
  return rc;
}

int main(int argc, char **argv)
{
  static const struct kt_case cases[] = {
      {"well_known_names", well_known_names},
      {"looked_up_names", looked_up_names},
      {"bad_names", bad_names},
      {"virtual_accounts", virtual_accounts},
      {"sddl_builder", sddl_builder},
      {"first_install_dacl", first_install_dacl},
      {"renewal_links", renewal_links},
      {"no_link_without_setting", no_link_without_setting},
      {"unresolved_is_said", unresolved_is_said},
      {"accounts_changed", accounts_changed},
      {"unobserved_taken_back", unobserved_taken_back},
      {"what_wine_cannot_show", what_wine_cannot_show},
  };
  if (argc == 4 && strcmp(argv[1], "renewal") == 0)
    return renewal_main(argv[2], argv[3]);
  if (argc != 2) {
    fprintf(stderr, "usage: test_keyacl_win DATADIR | renewal THUMB WANT|-\n");
    return 2;
  }
  datadir = argv[1];
  GetModuleFileNameA(NULL, self, sizeof self);
  return kt_main("keyacl_win", cases, sizeof(cases) / sizeof(cases[0]));
}
