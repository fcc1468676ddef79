/* A crash in the middle of an import (issue 15's proof): a child process installs new
 * versions of one certificate in a loop, each in a pass of its own (install, commit), and
 * this process kills it (TerminateProcess) at random moments, many times. After each kill
 * the store and the record must show the last recorded version complete (in the store with
 * its key, named by the record, the version before it still there), never a half state; the
 * next child, a new process, repairs whatever the kill cut and goes on. At the end one
 * install runs to completion: the new version is there once, with its key, and the store
 * holds exactly the versions the record lists. No hook in the product: where each kill
 * landed is read from outside, from the store and from the key container (under wine every
 * import of a keyset writes the same container, so a key there that belongs to a certificate
 * not yet in the store shows that PFXImportCertStore ran and the add had not).
 *   test_store_crash_win.exe DATADIR                    the kills; DATADIR holds k0.pem ..
 *                                                       k3.pem, gets crashstate\
 *   test_store_crash_win.exe loop DATADIR START COUNT   the child: versions c<START> ..
 *                                                       (certificate k<i mod 4>) */
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
#include "kvvm/mem.h"
#include "kvvm/settings.h"
#include "kvvm/store.h"

#define URL "https://vault1.vault.azure.net/secrets/crash"
#define STORE L"kvvm-test-crash"
#define NCERT 4
#define MAX_KILLS 100
#define KILL_BUDGET_MS 20000

static const char *datadir;
static char self[MAX_PATH];
static PCCERT_CONTEXT certs[NCERT];  /* k0 .. k3, to compare keys with */
static char thumbs[NCERT][41];
/* Where the kills landed: before the import (or in a commit), after PFXImportCertStore and
 * before the add, added but not yet recorded, inside PFXImportCertStore (seen under wine
 * only: the container holds neither key). */
static int kills, landed[4];

static bool under_wine(void)
{
  return GetProcAddress(GetModuleHandleA("ntdll.dll"), "wine_get_version") != NULL;
}

static struct kvvm_bundle *bundle(int k)
{
  char name[16], *path, *text = NULL, why[256] = "";
  size_t len = 0;
  struct kvvm_bundle *b = NULL;
  snprintf(name, sizeof name, "k%d.pem", k);
  path = kvvm_path_join(datadir, name);
  if (kvvm_file_read(path, 1 << 20, &text, &len) != KVVM_OK ||
      kvvm_certmat_from_pem(text, len, &b, why, sizeof why) != KVVM_OK)
    fprintf(stderr, "  %s: %s\n", path, why);
  free(text);
  free(path);
  return b;
}

static struct kvvm_config *config(void)
{
  return kit_settings("{\"observedCertificates\":[{\"url\":\"" URL "\","
                      "\"certificateStoreName\":\"kvvm-test-crash\"}]}");
}

/* ---- the child ---- */

static int loop_main(int start, int count)
{
  struct kvvm_config *cfg = config();
  char *state = kvvm_path_join(datadir, "crashstate");
  struct kvvm_store_opts o = {.state_dir = state};
  int rc = cfg ? 0 : 1;
  for (int i = start; rc == 0 && i < start + count; i++) {
    char version[16];
    struct kvvm_bundle *b = bundle(i % NCERT);
    struct kvvm_store *s = NULL;
    struct kvvm_install_result res;
    snprintf(version, sizeof version, "c%d", i);
    if (!b || kvvm_store_open(&o, &s) != KVVM_OK ||
        kvvm_store_install(s, &cfg->certs[0], b, version, &res) != KVVM_OK ||
        kvvm_store_commit(s) != KVVM_OK)
      rc = 1;
    else
      kvvm_install_result_clear(&res);
    kvvm_store_close(s);
    kvvm_bundle_free(b);
  }
  free(state);
  kvvm_config_free(cfg);
  return rc;
}

/* ---- this process: reading the store and the record from outside ---- */

static HCERTSTORE open_crash_store(void)
{
  return CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0, CERT_SYSTEM_STORE_LOCAL_MACHINE |
                       CERT_STORE_READONLY_FLAG, STORE);
}

/* How many times k<k> is in the store, through a fresh handle; *c: one of them. */
static int count_in_store(int k, PCCERT_CONTEXT *c)
{
  HCERTSTORE h = open_crash_store();
  PCCERT_CONTEXT p = NULL;
  int n = 0;
  while (h && (p = CertEnumCertificatesInStore(h, p)) != NULL)
    if (CertCompareCertificate(X509_ASN_ENCODING, p->pCertInfo, certs[k]->pCertInfo)) {
      n++;
      if (c && !*c)
        *c = CertDuplicateCertificateContext(p);
    }
  if (h)
    CertCloseStore(h, 0);
  return n;
}

/* The CAPI container that holder's key info names holds the key of cert. */
static bool container_holds(PCCERT_CONTEXT holder, PCCERT_CONTEXT cert)
{
  DWORD n = 0, na = 2048, nb = 2048;
  BYTE a[2048], b[2048];
  HCRYPTPROV prov = 0;
  HCRYPTKEY key = 0, pub = 0;
  CRYPT_KEY_PROV_INFO *info = NULL;
  bool ok = CertGetCertificateContextProperty(holder, CERT_KEY_PROV_INFO_PROP_ID, NULL, &n) &&
            (info = malloc(n)) &&
            CertGetCertificateContextProperty(holder, CERT_KEY_PROV_INFO_PROP_ID, info, &n) &&
            CryptAcquireContextW(&prov, info->pwszContainerName, info->pwszProvName,
                                 info->dwProvType, CRYPT_MACHINE_KEYSET) &&
            (CryptGetUserKey(prov, AT_KEYEXCHANGE, &key) || CryptGetUserKey(prov, AT_SIGNATURE, &key)) &&
            CryptExportKey(key, 0, PUBLICKEYBLOB, 0, a, &na) &&
            CryptImportPublicKeyInfo(prov, X509_ASN_ENCODING, &cert->pCertInfo->SubjectPublicKeyInfo,
                                     &pub) &&
            CryptExportKey(pub, 0, PUBLICKEYBLOB, 0, b, &nb) && na == nb && !memcmp(a, b, na);
  if (pub)
    CryptDestroyKey(pub);
  if (key)
    CryptDestroyKey(key);
  if (prov)
    CryptReleaseContext(prov, 0);
  free(info);
  return ok;
}

/* A CNG key (provider type 0), which container_holds does not read. */
static bool cng_key(PCCERT_CONTEXT c)
{
  DWORD n = 0;
  CRYPT_KEY_PROV_INFO *info = NULL;
  bool cng = c && CertGetCertificateContextProperty(c, CERT_KEY_PROV_INFO_PROP_ID, NULL, &n) &&
             (info = malloc(n)) &&
             CertGetCertificateContextProperty(c, CERT_KEY_PROV_INFO_PROP_ID, info, &n) &&
             info->dwProvType == 0;
  free(info);
  return cng;
}

static json_t *record_of(void)
{
  char *path = kvvm_path_join(datadir, "crashstate\\installed.json");
  json_t *rec = kit_record(path, URL, "LocalMachine\\kvvm-test-crash");
  free(path);
  return rec;
}

/* The index i of the recorded version c<i>; -1 when the record is unreadable. */
static int recorded(const json_t *rec)
{
  const char *v = json_string_value(json_object_get(rec, "version"));
  return v && v[0] == 'c' ? atoi(v + 1) : -1;
}

/* The record's versions: no thumbprint twice, the current one last. */
static bool versions_sane(const json_t *rec)
{
  const json_t *vs = json_object_get(rec, "versions");
  size_t n = json_array_size(vs);
  for (size_t i = 0; i < n; i++)
    for (size_t k = i + 1; k < n; k++)
      if (!_stricmp(json_string_value(json_object_get(json_array_get(vs, i), "thumbprint")),
                    json_string_value(json_object_get(json_array_get(vs, k), "thumbprint"))))
        return false;
  const char *last = json_string_value(json_object_get(json_array_get(vs, n - 1), "thumbprint"));
  return n && last && !_stricmp(last, json_string_value(json_object_get(rec, "thumbprint")));
}

static const char *rec_thumb(const json_t *rec)
{
  return json_string_value(json_object_get(rec, "thumbprint"));
}

/* After a child: the recorded version c<j> is complete (in the store once, its key usable,
 * the version before it there too); k<j+1> is in the store at most once. Returns j and,
 * when the child was killed, counts where the kill landed. */
static int check_after_kill(bool killed, int *wine_key_replaced)
{
  json_t *rec = record_of();
  int j = recorded(rec), cur = j % NCERT, next = (j + 1) % NCERT;
  PCCERT_CONTEXT c = NULL;
  KT_CHECK(j >= 0);
  if (j < 0) {
    json_decref(rec);
    return j;
  }
  KT_CHECK(rec_thumb(rec) && !_stricmp(rec_thumb(rec), thumbs[cur]) && versions_sane(rec));
  KT_CHECK(count_in_store(cur, &c) == 1);
  KT_CHECK(j == 0 || count_in_store((j + NCERT - 1) % NCERT, NULL) == 1);
  int next_n = count_in_store(next, NULL);
  KT_CHECK(next_n <= 1);
  bool own = c && container_holds(c, certs[cur]);
  bool replaced = c && !own && container_holds(c, certs[next]);
  /* Under wine only an import writes the one container: a key there that is neither the
   * recorded version's nor the next one's is an import cut while it wrote it. */
  if (killed)
    landed[next_n ? 2 : replaced ? 1 : own ? 0 : 3]++;
  if (cng_key(c))
    KT_SKIP("the recorded version's key: a CNG key, which this test's check (CAPI "
            "containers) does not read; test_store_win checks CNG keys");
  else if (!own && under_wine())
    (*wine_key_replaced)++;
  else
    KT_CHECK(own);
  CertFreeCertificateContext(c);
  json_decref(rec);
  return j;
}

/* The store holds exactly the versions the record lists, each once. */
static void store_is_record(const json_t *rec)
{
  const json_t *vs = json_object_get(rec, "versions");
  size_t i;
  const json_t *e;
  int listed = 0, in_store = 0;
  json_array_foreach(vs, i, e)
    for (int k = 0; k < NCERT; k++)
      if (!_stricmp(json_string_value(json_object_get(e, "thumbprint")), thumbs[k])) {
        listed++;
        KT_CHECK(count_in_store(k, NULL) == 1);
      }
  for (int k = 0; k < NCERT; k++)
    in_store += count_in_store(k, NULL);
  KT_CHECK(listed == (int)json_array_size(vs) && in_store == listed);
}

static double ms_since(ULONGLONG t0) { return (double)(GetTickCount64() - t0); }

static int run_child(int start, int count, bool wait)
{
  char a[16], b[16];
  snprintf(a, sizeof a, "%d", start);
  snprintf(b, sizeof b, "%d", count);
  return (int)_spawnl(wait ? _P_WAIT : _P_NOWAIT, self, self, "loop", datadir, a, b, NULL);
}

/* c0 installed, then c1 .. c3: how long one install takes (the process start aside). */
static bool calibrate(double *per)
{
  ULONGLONG t0 = GetTickCount64();
  bool ok = run_child(0, 1, true) == 0;
  double one = ms_since(t0);
  t0 = GetTickCount64();
  ok = ok && run_child(1, 3, true) == 0;
  double three = ms_since(t0);
  *per = (three - one) / 2 > 5 ? (three - one) / 2 : 5;
  printf("  one process with one install: %.0f ms, with three: %.0f ms\n", one, three);
  return ok;
}

static FILETIME state_mtime(void)
{
  WIN32_FILE_ATTRIBUTE_DATA a = {0};
  char *p = kvvm_path_join(datadir, "crashstate\\installed.json");
  GetFileAttributesExA(p, GetFileExInfoStandard, &a);
  free(p);
  return a.ftLastWriteTime;
}

/* A child installing from the version after the recorded one; once its first install is
 * recorded (installed.json changes) it is inside the loop, and it is killed at a random
 * moment of the next install (0 .. per ms). True when it was killed. */
static bool kill_once(int next, double per)
{
  FILETIME before = state_mtime(), now;
  HANDLE h = (HANDLE)(intptr_t)run_child(next, 1000, false);
  bool killed = false;
  KT_CHECK(h != NULL && h != INVALID_HANDLE_VALUE);
  if (!h || h == INVALID_HANDLE_VALUE)
    return false;
  for (int i = 0; i < 5000 && WaitForSingleObject(h, 0) == WAIT_TIMEOUT; i++) {
    now = state_mtime();
    if (CompareFileTime(&before, &now) != 0)
      break;
    Sleep(1);
  }
  if (WaitForSingleObject(h, (DWORD)(rand() % ((int)per + 1))) == WAIT_TIMEOUT) {
    TerminateProcess(h, 9);
    kills++;
    killed = true;
  }
  WaitForSingleObject(h, INFINITE);
  CloseHandle(h);
  return killed;
}

/* The last install runs to completion in a new process: it repairs what the last kill cut.
 * A version the cut install had already added is not imported again (its key would be
 * orphaned), so under wine the one shared container may hold the key of an import cut
 * later: counted with the others wine cannot show. */
static void repaired(int j, int *wine_key_replaced)
{
  KT_CHECK(run_child(j + 1, 1, true) == 0);
  json_t *rec = record_of();
  int k = (j + 1) % NCERT;
  PCCERT_CONTEXT c = NULL;
  KT_CHECK(recorded(rec) == j + 1 && versions_sane(rec));
  KT_CHECK(count_in_store(k, &c) == 1 && c);
  bool own = c && (cng_key(c) || container_holds(c, certs[k]));
  if (!own && under_wine())
    (*wine_key_replaced)++;
  else
    KT_CHECK(own);
  store_is_record(rec);
  CertFreeCertificateContext(c);
  json_decref(rec);
}

static void kill_mid_import(void)
{
  double per;
  int j = 0, wine_key_replaced = 0;
  bool killed = false;
  unsigned seed = (unsigned)GetTickCount();
  if (!calibrate(&per)) {
    KT_CHECK(!"the first installs");
    return;
  }
  srand(seed);
  ULONGLONG t0 = GetTickCount64();
  while (kills < MAX_KILLS && ms_since(t0) < KILL_BUDGET_MS && j >= 0) {
    j = check_after_kill(killed, &wine_key_replaced);
    killed = kill_once(j + 1, per);
  }
  j = check_after_kill(killed, &wine_key_replaced);
  printf("  seed %u: %d kills in %.1f s: %d before the import or in a commit, %d inside "
         "PFXImportCertStore, %d after it and before the add, %d added but not yet recorded\n",
         seed, kills, ms_since(t0) / 1000, landed[0], landed[3], landed[1], landed[2]);
  KT_CHECK(kills >= 10 && landed[0] + landed[1] + landed[2] + landed[3] == kills);
  KT_CHECK(landed[1] + landed[2] + landed[3] > 0);
  if (j >= 0)
    repaired(j, &wine_key_replaced);
  if (wine_key_replaced)
    KT_SKIP("the recorded version's key after an interrupted import: wine keeps one key "
            "container per keyset, which the interrupted import rewrote; on Windows the new "
            "key has a container of its own (checked there)");
}

int main(int argc, char **argv)
{
  static const struct kt_case cases[] = {{"kill_mid_import", kill_mid_import}};
  if (argc == 5 && strcmp(argv[1], "loop") == 0) {
    datadir = argv[2];
    return loop_main(atoi(argv[3]), atoi(argv[4]));
  }
  if (argc != 2) {
    fprintf(stderr, "usage: test_store_crash_win DATADIR | loop DATADIR START COUNT\n");
    return 2;
  }
  datadir = argv[1];
  GetModuleFileNameA(NULL, self, sizeof self);
  for (int k = 0; k < NCERT; k++) {
    struct kvvm_bundle *b = bundle(k);
    size_t len = 0;
    const unsigned char *der = b ? kvvm_bundle_cert_der(b, 0, &len) : NULL;
    certs[k] = der ? CertCreateCertificateContext(X509_ASN_ENCODING, der, (DWORD)len) : NULL;
    if (!certs[k])
      return 1;
    snprintf(thumbs[k], sizeof thumbs[k], "%s", kvvm_bundle_facts(b)->thumbprint);
    kvvm_bundle_free(b);
  }
  return kt_main("store_crash_win", cases, sizeof(cases) / sizeof(cases[0]));
}
