/* Old versions in the Windows store (store_prune_windows.c) on a real crypt32: Windows, or
 * wine in a fresh WINEPREFIX (tests/windows/store.sh runs it after test_store_win.exe, whose
 * `find` and `absent` modes are the second process that looks at the store).
 *   test_store_prune_win.exe DATADIR   DATADIR holds p1.pem .. p4.pem (RSA leaf + root + key,
 *                                      SAN prune.example.com), foreign.der and foreign.sha1 (a
 *                                      certificate with the same subject and SAN that kvvm did
 *                                      not install), and gets prunestate\ and prunelog\
 * What wine cannot show is skipped with the reason printed, never passed. */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <http.h>
#include <process.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <windows.h>
#include <wincrypt.h>

#include <jansson.h>

#include "../unit/kt.h"
#include "store_kit.h"
#include "kvvm/certmat.h"
#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/settings.h"
#include "kvvm/store.h"
#include "windows/store_int.h"

#define URL "https://vault1.vault.azure.net/secrets/prune"
#define BIND_PORT 44300

static const char *datadir;
static char storewin[MAX_PATH];  /* test_store_win.exe beside this one */
static char thumb[5][41];        /* p1 .. p4 */
static char foreign[41];

static bool under_wine(void)
{
  return GetProcAddress(GetModuleHandleA("ntdll.dll"), "wine_get_version") != NULL;
}

static char *path_in(const char *name) { return kvvm_path_join(datadir, name); }

static char *slurp(const char *name, size_t *len)
{
  char *path = path_in(name), *text = NULL;
  if (kvvm_file_read(path, 1 << 20, &text, len) != KVVM_OK)
    fprintf(stderr, "  cannot read %s\n", path);
  free(path);
  return text;
}

static struct kvvm_bundle *bundle(const char *name)
{
  size_t len = 0;
  char *text = slurp(name, &len), why[256] = "";
  struct kvvm_bundle *b = NULL;
  if (text && kvvm_certmat_from_pem(text, len, &b, why, sizeof why) != KVVM_OK)
    fprintf(stderr, "  %s: %s\n", name, why);
  free(text);
  return b;
}

static struct kvvm_config *config(void)
{
  return kit_settings("{\"observedCertificates\":[{\"url\":\"" URL "\"}]}");
}

/* One pass that installs p<i> (version "p<i>") and commits. */
static bool pass_with(int i)
{
  char name[16], version[8];
  snprintf(name, sizeof name, "p%d.pem", i);
  snprintf(version, sizeof version, "p%d", i);
  struct kvvm_config *cfg = config();
  struct kvvm_bundle *b = bundle(name);
  char *state = path_in("prunestate");
  struct kvvm_store_opts o = {.state_dir = state};
  struct kvvm_store *s = NULL;
  struct kvvm_install_result res;
  bool ok = cfg && b && kvvm_store_open(&o, &s) == KVVM_OK &&
            kvvm_store_install(s, &cfg->certs[0], b, version, &res) == KVVM_OK;
  if (ok) {
    snprintf(thumb[i], sizeof thumb[i], "%s", kvvm_bundle_facts(b)->thumbprint);
    kvvm_install_result_clear(&res);
    ok = kvvm_store_commit(s) == KVVM_OK;
  }
  kvvm_store_close(s);
  free(state);
  kvvm_bundle_free(b);
  kvvm_config_free(cfg);
  return ok;
}

/* The record of URL as installed.json holds it (a new reference). */
static json_t *record_of(void)
{
  char *path = path_in("prunestate\\installed.json");
  json_t *rec = kit_record(path, URL, "LocalMachine\\MY");
  free(path);
  return rec;
}

static const char *version_thumb(const json_t *rec, size_t i)
{
  return json_string_value(json_object_get(json_array_get(json_object_get(rec, "versions"), i),
                                           "thumbprint"));
}

static bool same_ci(const char *a, const char *b) { return a && b && _stricmp(a, b) == 0; }

/* test_store_win.exe find|absent ...: a second process's view of LocalMachine\MY. */
static int in_my(const char *t, const char *key)
{
  return (int)_spawnl(_P_WAIT, storewin, storewin, "find", "MY", t, "-", key, NULL);
}

static int absent_from_my(const char *t)
{
  return (int)_spawnl(_P_WAIT, storewin, storewin, "absent", t, "MY", NULL);
}

/* A certificate kvvm did not install: the same subject and SAN as p1, added by hand. */
static void foreign_added(void)
{
  size_t len = 0;
  char *der = slurp("foreign.der", &len), *t = slurp("foreign.sha1", &(size_t){0});
  HCERTSTORE h = CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0, CERT_SYSTEM_STORE_LOCAL_MACHINE,
                               L"MY");
  KT_CHECK(der && t && h);
  if (der && t && h) {
    snprintf(foreign, sizeof foreign, "%.40s", t);
    KT_CHECK(CertAddEncodedCertificateToStore(h, X509_ASN_ENCODING, (BYTE *)der, (DWORD)len,
                                              CERT_STORE_ADD_REPLACE_EXISTING, NULL));
    CertControlStore(h, 0, CERT_STORE_CTRL_COMMIT, NULL);
    KT_CHECK(in_my(foreign, NULL) == 0);
  }
  if (h)
    CertCloseStore(h, 0);
  free(der);
  free(t);
}

static bool log_has(const char *needle)
{
  size_t len = 0;
  char *text = slurp("prunelog\\kvvm.log", &len);
  bool found = text && strstr(text, needle);
  if (!found)
    fprintf(stderr, "  the log has no \"%s\"\n", needle);
  free(text);
  return found;
}

/* The CAPI container a removed version's key was in is gone. */
static bool container_gone(const char *prov, const char *cont)
{
  wchar_t wp[256], wc[256];
  HCRYPTPROV h = 0;
  MultiByteToWideChar(CP_UTF8, 0, prov, -1, wp, 256);
  MultiByteToWideChar(CP_UTF8, 0, cont, -1, wc, 256);
  if (CryptAcquireContextW(&h, wc, wp, PROV_RSA_AES, CRYPT_MACHINE_KEYSET)) {
    CryptReleaseContext(h, 0);
    return false;
  }
  return GetLastError() == (DWORD)NTE_BAD_KEYSET;
}

/* The key check after the removal: wine's one container stays (another version uses it),
 * Windows' own container of p1 goes. */
static void key_of_first(const char *prov, const char *cont)
{
  if (under_wine()) {
    KT_CHECK(log_has("key kept: also used by Cert:\\LocalMachine\\MY\\"));
    return;
  }
  KT_CHECK(log_has("with its key"));
  if (prov && cont && strstr(prov, "Cryptographic Provider"))
    KT_CHECK(container_gone(prov, cont));
}

/* p1, p2, p3 in three passes: after the third, p1 is gone from the store (seen by another
 * process) and from the record; p2 and p3 stay; the foreign certificate stays. */
static void third_version_removes_first(void)
{
  char prov[256] = "", cont[256] = "";
  KT_CHECK(pass_with(1) && pass_with(2));
  json_t *rec = record_of();
  json_t *first = json_array_get(json_object_get(rec, "versions"), 0);
  snprintf(prov, sizeof prov, "%s", json_string_value(json_object_get(first, "key_provider")));
  snprintf(cont, sizeof cont, "%s", json_string_value(json_object_get(first, "key_container")));
  json_decref(rec);
  KT_CHECK(in_my(thumb[1], NULL) == 0 && in_my(thumb[2], NULL) == 0);
  KT_CHECK(pass_with(3));
  KT_CHECK(absent_from_my(thumb[1]) == 0);
  KT_CHECK(in_my(thumb[2], NULL) == 0);
  KT_CHECK(in_my(thumb[3], "key") == 0);
  KT_CHECK(in_my(foreign, NULL) == 0);
  rec = record_of();
  KT_CHECK(json_array_size(json_object_get(rec, "versions")) == 2);
  KT_CHECK(same_ci(version_thumb(rec, 0), thumb[2]) && same_ci(version_thumb(rec, 1), thumb[3]));
  KT_CHECK(!json_object_get(rec, "versions_note"));
  json_decref(rec);
  key_of_first(prov, cont);
  /* A pass with nothing new removes nothing more. */
  KT_CHECK(pass_with(3) && in_my(thumb[2], NULL) == 0 && in_my(foreign, NULL) == 0);
}

static ULONG http_bind(const char *t, bool set)
{
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(BIND_PORT)};
  BYTE hash[20];
  wchar_t my[] = L"MY";
  HTTP_SERVICE_CONFIG_SSL_SET cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.KeyDesc.pIpPort = (PSOCKADDR)&sa;
  cfg.ParamDesc.SslHashLength = sizeof hash;
  cfg.ParamDesc.pSslHash = hash;
  cfg.ParamDesc.pSslCertStoreName = my;
  for (int i = 0; i < 20; i++) {
    unsigned v = 0;
    sscanf(t + 2 * i, "%2x", &v);
    hash[i] = (BYTE)v;
  }
  HTTPAPI_VERSION v = HTTPAPI_VERSION_1;
  ULONG r = HttpInitialize(v, HTTP_INITIALIZE_CONFIG, NULL);
  if (r == NO_ERROR) {
    r = set ? HttpSetServiceConfiguration(NULL, HttpServiceConfigSSLCertInfo, &cfg, sizeof cfg, NULL)
            : HttpDeleteServiceConfiguration(NULL, HttpServiceConfigSSLCertInfo, &cfg, sizeof cfg, NULL);
    HttpTerminate(HTTP_INITIALIZE_CONFIG, NULL);
  }
  return r;
}

static bool listed(const char *t, const char *name)
{
  struct store_win_binding *b = NULL;
  size_t n = 0;
  char why[400] = "";
  bool known = store_win_http_bindings(&b, &n, why, sizeof why), found = false;
  KT_CHECK(known);
  if (!known)
    fprintf(stderr, "  %s\n", why);
  for (size_t i = 0; i < n; i++)
    found = found || (same_ci(b[i].thumbprint, t) && strcmp(b[i].name, name) == 0);
  store_win_bindings_free(b, n);
  return found;
}

/* p2 bound by HTTP.sys on 0.0.0.0:44300: after p4, p2 (beyond the retention) stays and the
 * record says which binding keeps it. */
static void bound_version_kept(void)
{
  KT_CHECK(http_bind(thumb[2], true) == NO_ERROR);
  if (!listed(thumb[2], "0.0.0.0:44300")) {
    if (under_wine())
      KT_SKIP("an HTTP.sys binding keeps its version: wine 8's HttpQueryServiceConfiguration "
              "is a stub (no record found, whatever was set); the plan's tests cover it");
    else
      KT_CHECK(!"the binding just set is listed");
    http_bind(thumb[2], false);
    return;
  }
  KT_CHECK(pass_with(4));
  KT_CHECK(in_my(thumb[2], NULL) == 0 && in_my(thumb[3], NULL) == 0);
  json_t *rec = record_of();
  const char *note = json_string_value(json_object_get(rec, "versions_note"));
  KT_CHECK(note && strstr(note, "0.0.0.0:44300") && strstr(note, thumb[2]));
  json_decref(rec);
  KT_CHECK(http_bind(thumb[2], false) == NO_ERROR);
}

int main(int argc, char **argv)
{
  static const struct kt_case cases[] = {
      {"foreign_added", foreign_added},
      {"third_version_removes_first", third_version_removes_first},
      {"bound_version_kept", bound_version_kept},
  };
  if (argc != 2) {
    fprintf(stderr, "usage: test_store_prune_win DATADIR\n");
    return 2;
  }
  datadir = argv[1];
  GetModuleFileNameA(NULL, storewin, sizeof storewin);
  char *slash = strrchr(storewin, '\\');
  snprintf(slash ? slash + 1 : storewin, sizeof storewin - (size_t)(slash ? slash + 1 - storewin : 0),
           "test_store_win.exe");
  char *logdir = path_in("prunelog");
  CreateDirectoryA(logdir, NULL);
  kvvm_log_open(logdir, "test");
  free(logdir);
  return kt_main("store_prune_win", cases, sizeof(cases) / sizeof(cases[0]));
}
