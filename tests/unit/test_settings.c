/* settings: every example of Microsoft's pages, the looseness users show (keyvault.md
 * §1.9), the PowerShell string form, clouds, managed HSM refusal, store mapping, canonical
 * JSON, loading <seq>.settings, and a table of bad inputs with the words each must give.
 *
 * Inline JSON is written with ' for " so the tables stay readable; sq() swaps them back. */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kt.h"
#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/settings.h"

#define DOCS "tests/data/settings/docs/"
#define ROOT "/srv/kvstore"
#define DEFAULT_ROOT "/var/lib/waagent/Microsoft.Azure.KeyVault.Store"
#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define HOST "https://myvault.vault.azure.net"
#define URL1 HOST "/secrets/c1"
#define OBS1(u) "{'observedCertificates':['" u "']}"
#define GUID "c7373ae5-91c2-4165-8ab6-7381d6e75619"
#define IDENTITY_ID                                                                     \
  "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-tre/providers/" \
  "Microsoft.ManagedIdentity/userAssignedIdentities/id-tre"
#define PROTECTED_VALUE "MIIBsQYJKoZIhvcNAQcDoIIBojCCAZ4CAQAxggFpMIIBZQIBADBNMDkxNzA1"
#define THUMB "0123456789ABCDEF0123456789ABCDEF01234567"
#define IMDS "http://169.254.169.254/metadata/identity/oauth2/token"

static const struct kvvm_settings_opts opts = {.default_store_root = ROOT};
static char *log_dir;

struct res {
  enum kvvm_err rc;
  struct kvvm_config *cfg;
  char why[1024];
};

static char *sq(const char *s)
{
  char *d = kvvm_xstrdup(s);
  for (char *p = d; *p; p++)
    if (*p == '\'')
      *p = '"';
  return d;
}

/* The agent's envelope around publicSettings (JSON text, real quotes). */
static char *envelope(const char *pub)
{
  return kvvm_xasprintf("{\"runtimeSettings\":[{\"handlerSettings\":{\"publicSettings\":%s,"
                        "\"protectedSettings\":null,\"protectedSettingsCertThumbprint\":null}}]}",
                        pub);
}

static void parse_text(struct res *r, const char *text)
{
  static struct kvvm_config stale; /* parse must reset *out to NULL on failure */
  r->cfg = &stale;
  r->rc = kvvm_settings_parse(text, strlen(text), &opts, &r->cfg, r->why, sizeof r->why);
}

static void parse_env_sq(struct res *r, const char *text_sq)
{
  char *t = sq(text_sq);
  parse_text(r, t);
  free(t);
}

static void parse_pub(struct res *r, const char *pub_sq)
{
  char *p = sq(pub_sq), *e = envelope(p);
  parse_text(r, e);
  free(e);
  free(p);
}

static void parse_sms(struct res *r, const char *sms_sq)
{
  char *p = kvvm_xasprintf("{'secretsManagementSettings':%s}", sms_sq);
  parse_pub(r, p);
  free(p);
}

static char *read_doc(const char *name)
{
  char *path = kvvm_xasprintf(DOCS "%s", name), *text = NULL;
  size_t len;
  if (kvvm_file_read(path, 1 << 20, &text, &len) != KVVM_OK)
    fprintf(stderr, "  cannot read fixture %s (run from the repo root)\n", path);
  free(path);
  return text;
}

static void parse_doc(struct res *r, const char *name)
{
  char *doc = read_doc(name), *e = envelope(doc ? doc : "null");
  parse_text(r, e);
  free(e);
  free(doc);
}

static bool has_warning(const struct kvvm_config *cfg, const char *needle)
{
  for (char **w = cfg ? cfg->warnings : NULL; w && *w; w++)
    if (strstr(*w, needle))
      return true;
  return false;
}

static size_t n_warnings(const struct kvvm_config *cfg)
{
  size_t n = 0;
  while (cfg->warnings[n])
    n++;
  return n;
}

static size_t n_accounts(const struct kvvm_cert_cfg *cert)
{
  size_t n = 0;
  while (cert->accounts[n])
    n++;
  return n;
}

/* OK and a config; on failure says why, so a broken row is easy to find. */
static bool ok(const struct res *r, const char *what)
{
  if (r->rc == KVVM_OK && r->cfg)
    return true;
  fprintf(stderr, "  %s: rc %d, why: %s\n", what, r->rc, r->why);
  KT_CHECK(r->rc == KVVM_OK && r->cfg);
  return false;
}

/* KVVM_E_SETTINGS, no config, and the promised words. */
static void refused(const struct res *r, const char *want, const char *what)
{
  if (r->rc != KVVM_E_SETTINGS || r->cfg || !strstr(r->why, want))
    fprintf(stderr, "  refused %s: rc %d, why: %s\n", what, r->rc, r->why);
  KT_CHECK(r->rc == KVVM_E_SETTINGS);
  KT_CHECK(r->cfg == NULL);
  KT_CONTAINS(r->why, want);
}

static void check_cert(const struct kvvm_cert_cfg *c, const char *url, const char *dir,
                       enum kvvm_store_loc loc)
{
  KT_STREQ(c->url, url);
  KT_PATHEQ(c->store_dir, dir);
  KT_CHECK(c->location == loc);
}

/* ---- Microsoft's documented examples ---- */

static void test_docs_windows_v3(void)
{
  static const char *const files[] = {"win-2024-v3-schema.json", "win-2023-v3-schema.json"};
  for (size_t i = 0; i < N_ELEMS(files); i++) {
    struct res r;
    parse_doc(&r, files[i]);
    if (!ok(&r, files[i]))
      continue;
    const struct kvvm_config *c = r.cfg;
    KT_CHECK(c->schema == KVVM_SCHEMA_V3);
    KT_CHECK(c->polling_s == 3600 && c->link_on_renewal && c->require_initial_sync);
    KT_CHECK(c->n_certs == 2);
    check_cert(&c->certs[0], "https://myvault.vault.azure.net/secrets/mycertificate1", ROOT,
               KVVM_LOC_LOCAL_MACHINE);
    check_cert(&c->certs[1], "https://myvault.vault.azure.net/secrets/mycertificate2",
               ROOT "/CurrentUser", KVVM_LOC_CURRENT_USER);
    KT_CHECK(n_accounts(&c->certs[0]) == 2 && n_accounts(&c->certs[1]) == 1);
    KT_STREQ(c->certs[0].accounts[0], "Network Service");
    KT_STREQ(c->certs[1].accounts[0], "Local Service");
    KT_CHECK(!c->certs[1].key_exportable); /* the documented string "false" */
    KT_CHECK(c->certs[0].store_name == NULL && c->certs[0].version == NULL);
    KT_STREQ(c->msi_endpoint, "http://169.254.169.254/metadata/identity/oauth2/token");
    KT_STREQ(c->msi_client_id, GUID);
    KT_CHECK(c->client_id_kind == KVVM_ID_CLIENT_ID);
    KT_CHECK(n_warnings(c) == 0);
    kvvm_config_free(r.cfg);
  }
}

static void test_docs_windows_v3_template(void)
{
  struct res r;
  parse_doc(&r, "win-2024-v3-template.json");
  if (!ok(&r, "template"))
    return;
  KT_CHECK(r.cfg->n_certs == 3 && !r.cfg->require_initial_sync);
  KT_STREQ(r.cfg->certs[2].store_name, "TrustedPeople");
  check_cert(&r.cfg->certs[2], "https://myvault.vault.azure.net/secrets/mycertificate3",
             ROOT "/TrustedPeople", KVVM_LOC_LOCAL_MACHINE);
  kvvm_config_free(r.cfg);
}

static void test_docs_windows_v3_deploy(void)
{
  static const char *const files[] = {"win-2024-v3-powershell.json", "win-2024-v3-cli.json"};
  for (size_t i = 0; i < N_ELEMS(files); i++) {
    struct res r;
    parse_doc(&r, files[i]);
    if (!ok(&r, files[i]))
      continue;
    KT_CHECK(r.cfg->schema == KVVM_SCHEMA_V3 && r.cfg->n_certs == 2);
    KT_STREQ(r.cfg->certs[0].vault_name, "examplekv");
    KT_STREQ(r.cfg->certs[1].secret_name, "certificate2");
    KT_CHECK(!r.cfg->certs[0].key_exportable && r.cfg->certs[1].key_exportable);
    KT_CHECK(n_accounts(&r.cfg->certs[1]) == 2);
    KT_PATHEQ(r.cfg->certs[1].store_dir, ROOT);
    kvvm_config_free(r.cfg);
  }
}

static void test_docs_windows_v1(void)
{
  static const char *const files[] = {"win-2024-v1-table.json", "win-2024-v1-template.json",
                                      "win-2024-v1-powershell.json"};
  for (size_t i = 0; i < N_ELEMS(files); i++) {
    struct res r;
    parse_doc(&r, files[i]);
    if (!ok(&r, files[i]))
      continue;
    KT_CHECK(r.cfg->schema == KVVM_SCHEMA_V1 && r.cfg->n_certs == 2);
    check_cert(&r.cfg->certs[1], "https://myvault.vault.azure.net/secrets/mycertificate2",
               ROOT, KVVM_LOC_LOCAL_MACHINE);
    KT_CHECK(r.cfg->certs[0].accounts && !r.cfg->certs[0].accounts[0]);
    KT_CHECK(r.cfg->client_id_kind == KVVM_ID_CLIENT_ID);
    kvvm_config_free(r.cfg);
  }
}

/* WIN-2024's v1 example value "[https://...\"]" is a string that lost its array: refused
 * with the fix in words. Copied literally (the quote escaped) it is not even JSON. */
static void test_docs_windows_v1_malformed_example(void)
{
  struct res r;
  parse_doc(&r, "win-2024-v1-schema.json");
  refused(&r, "secretsManagementSettings.observedCertificates: "
              "\"[https://myvault.vault.azure.net/secrets/mycertificate\\\"]\" is a string, "
              "not an array; write a JSON array of URLs such as [\"", "v1 doc example");
  parse_sms(&r, "{'observedCertificates': '[https://myvault.vault.azure.net/secrets/mycertificate"
                "\\']}");
  refused(&r, "not valid JSON", "v1 example copied literally");
}

/* The scale-set PowerShell example closes secretsManagementSettings twice. */
static void test_docs_windows_v1_vmss_extra_brace(void)
{
  struct res r;
  parse_doc(&r, "win-2024-v1-powershell-vmss.json");
  refused(&r, "settings: not valid JSON", "vmss example");
}

/* The CLI example's \" reach the VM when PowerShell passes them through: publicSettings
 * is then a string holding escaped JSON, with blanks inside the URL quotes. */
static void test_docs_windows_v1_cli_escaped(void)
{
  struct res r;
  char *doc = read_doc("win-2024-v1-cli-escaped.txt");
  json_t *s = json_stringn(doc ? doc : "", doc ? strlen(doc) : 0);
  char *pub = json_dumps(s, JSON_ENCODE_ANY), *e = envelope(pub);
  parse_text(&r, e);
  if (ok(&r, "cli escaped")) {
    KT_CHECK(r.cfg->schema == KVVM_SCHEMA_V1 && r.cfg->n_certs == 2);
    KT_STREQ(r.cfg->certs[0].url, "https://myvault.vault.azure.net/secrets/mycertificate");
    KT_CHECK(has_warning(r.cfg, "backslash-escaped quotes (the PowerShell quoting mistake)"));
  }
  kvvm_config_free(r.cfg);
  free(e);
  free(pub);
  json_decref(s);
  free(doc);
}

static void test_docs_windows_v4(void)
{
  static const char *const files[] = {"win-v4-schema.json", "win-v4-powershell.json"};
  for (size_t i = 0; i < N_ELEMS(files); i++) {
    struct res r;
    parse_doc(&r, files[i]);
    if (!ok(&r, files[i]))
      continue;
    KT_CHECK(r.cfg->schema == KVVM_SCHEMA_V3 && r.cfg->polling_s == 3600);
    KT_STREQ(r.cfg->msi_client_id, "00001111-aaaa-2222-bbbb-3333cccc4444");
    kvvm_config_free(r.cfg);
  }
}

static void test_docs_linux_v1(void)
{
  struct res r;
  parse_doc(&r, "lnx-2019-v1-schema.json");
  if (ok(&r, "lnx v1 schema")) {
    KT_CHECK(r.cfg->schema == KVVM_SCHEMA_V1 && r.cfg->n_certs == 1);
    KT_CHECK(r.cfg->require_initial_sync && !r.cfg->link_on_renewal);
    check_cert(&r.cfg->certs[0], "https://myvault.vault.azure.net/secrets/mycertificate", ROOT,
               KVVM_LOC_LOCAL_MACHINE);
    KT_CHECK(has_warning(r.cfg, "is a single string, not an array"));
    KT_CHECK(r.cfg->msi_endpoint == NULL && r.cfg->client_id_kind == KVVM_ID_NONE);
  }
  kvvm_config_free(r.cfg);
  parse_doc(&r, "lnx-2019-v1-powershell.json");
  if (ok(&r, "lnx v1 powershell"))
    KT_CHECK(r.cfg->n_certs == 1 && n_warnings(r.cfg) == 0);
  kvvm_config_free(r.cfg);
}

static void test_docs_linux_v2(void)
{
  static const char *const files[] = {"lnx-v2-schema.json", "lnx-v2-template.json",
                                      "lnx-v2-arc.json"};
  static const char *const endpoints[] = {
      "http://169.254.169.254/metadata/identity/oauth2/token", NULL,
      "http://localhost:40342/metadata/identity/oauth2/token"};
  for (size_t i = 0; i < N_ELEMS(files); i++) {
    struct res r;
    parse_doc(&r, files[i]);
    if (!ok(&r, files[i]))
      continue;
    KT_CHECK(r.cfg->schema == KVVM_SCHEMA_V1);
    check_cert(&r.cfg->certs[0], "https://myvault.vault.azure.net/secrets/mycertificate",
               "/var/lib/waagent/Microsoft.Azure.KeyVault", KVVM_LOC_PATH);
    if (endpoints[i])
      KT_STREQ(r.cfg->msi_endpoint, endpoints[i]);
    else
      KT_CHECK(r.cfg->msi_endpoint == NULL);
    kvvm_config_free(r.cfg);
  }
}

static void test_docs_linux_v3(void)
{
  struct res r;
  parse_doc(&r, "lnx-v3-schema.json");
  if (!ok(&r, "lnx v3 schema"))
    return;
  const struct kvvm_config *c = r.cfg;
  KT_CHECK(c->schema == KVVM_SCHEMA_V3 && c->acl_enabled && c->require_initial_sync);
  check_cert(&c->certs[0], "https://myvault.vault.azure.net/secrets/mycertificate1",
             "/var/lib/waagent/Microsoft.Azure.KeyVault/app1", KVVM_LOC_PATH);
  KT_STREQ(c->certs[0].link_name, "app1Cert1");
  KT_CHECK(c->certs[0].n_acls == 2 && c->certs[1].n_acls == 1);
  KT_STREQ(c->certs[0].acls[0].user, "app1");
  KT_STREQ(c->certs[0].acls[0].group, "appGroup1");
  KT_CHECK(c->certs[0].acls[1].group == NULL);
  KT_STREQ(c->certs[1].acls[0].user, "app2");
  KT_PATHEQ(c->certs[1].store_dir, "/var/lib/waagent/Microsoft.Azure.KeyVault/app2");
  KT_CHECK(c->certs[1].link_name == NULL);
  KT_CHECK(has_warning(c, "loggingSettings: is not supported"));
  kvvm_config_free(r.cfg);
  parse_doc(&r, "lnx-v3-template.json");
  if (ok(&r, "lnx v3 template"))
    KT_CHECK(r.cfg->n_certs == 2 && !r.cfg->require_initial_sync && n_warnings(r.cfg) == 0);
  kvvm_config_free(r.cfg);
}

/* The v3 PowerShell and CLI examples keep the placeholder "xxxxxx-xxxx-xxxx-xxxx-xxxxxxxx"
 * as msiClientId: left in, it must be refused, not sent to IMDS. */
static void test_docs_linux_v3_placeholder_client_id(void)
{
  static const char *const files[] = {"lnx-v3-powershell.json", "lnx-v3-cli.json"};
  for (size_t i = 0; i < N_ELEMS(files); i++) {
    struct res r;
    parse_doc(&r, files[i]);
    refused(&r, "authenticationSettings.msiClientId: \"xxxxxx-xxxx-xxxx-xxxx-xxxxxxxx\" is "
                "neither a client id", files[i]);
  }
}

static void test_docs_linux_v4(void)
{
  static const char *const files[] = {"lnx-v4-schema.json", "lnx-v4-template.json"};
  for (size_t i = 0; i < N_ELEMS(files); i++) {
    struct res r;
    parse_doc(&r, files[i]);
    if (!ok(&r, files[i]))
      continue;
    KT_CHECK(r.cfg->n_certs == 2 && r.cfg->certs[0].n_acls == 2);
    if (i == 0)
      KT_STREQ(r.cfg->certs[1].msi_client_id, "11112222-bbbb-3333-cccc-4444dddd5555");
    KT_CHECK(!has_warning(r.cfg, "authenticationOverride"));
    kvvm_config_free(r.cfg);
  }
}

/* ---- the envelope ---- */

static void test_empty_settings_file(void)
{
  static const char *const texts[] = {"", " \n\t ", "\n"};
  for (size_t i = 0; i < N_ELEMS(texts); i++) {
    struct res r;
    parse_text(&r, texts[i]);
    refused(&r, "settings are empty", "empty");
    KT_CONTAINS(r.why, "secretsManagementSettings.observedCertificates is required");
  }
}

static void test_protected_settings_kept_out(void)
{
  struct res r;
  char *t = kvvm_xasprintf("{\"runtimeSettings\":[{\"handlerSettings\":{\"publicSettings\":"
                           "{\"secretsManagementSettings\":{\"observedCertificates\":[\"" URL1
                           "\"]}},\"protectedSettings\":\"" PROTECTED_VALUE "\","
                           "\"protectedSettingsCertThumbprint\":\"" THUMB "\"}}]}");
  parse_text(&r, t);
  if (ok(&r, "protected")) {
    KT_CHECK(r.cfg->has_protected);
    KT_STREQ(r.cfg->protected_thumbprint, THUMB);
    char *j = kvvm_config_to_json(r.cfg);
    KT_CHECK(j && !strstr(j, PROTECTED_VALUE));
    KT_CONTAINS(j, "\"hasProtectedSettings\":true");
    free(j);
  }
  kvvm_config_free(r.cfg);
  free(t);
}

static void test_protected_settings_null(void)
{
  struct res r;
  parse_sms(&r, OBS1(URL1));
  if (ok(&r, "null protected"))
    KT_CHECK(!r.cfg->has_protected && r.cfg->protected_thumbprint == NULL);
  kvvm_config_free(r.cfg);
}

static void test_duplicate_keys_refused(void)
{
  struct res r;
  parse_sms(&r, "{'pollingIntervalInS':'60','pollingIntervalInS':'3600',"
                "'observedCertificates':['" URL1 "']}");
  refused(&r, "a key appears twice in one object", "duplicate keys");
  KT_CONTAINS(r.why, "each key may be given once");
}

/* Deep nesting ends in jansson's depth limit, reported like any syntax error. */
static void test_nesting_limit(void)
{
  size_t depth = 5000;
  char *deep = kvvm_xmalloc(2 * depth + 1);
  memset(deep, '[', depth);
  memset(deep + depth, ']', depth);
  deep[2 * depth] = '\0';
  char *pub = kvvm_xasprintf("{\"x\":%s,\"secretsManagementSettings\":{\"observedCertificates\":"
                             "[\"" URL1 "\"]}}", deep);
  char *e = envelope(pub);
  struct res r;
  parse_text(&r, e);
  refused(&r, "not valid JSON", "deep nesting");
  free(e);
  free(pub);
  deep[100] = '\0';
  memset(deep + 50, ']', 50);
  pub = kvvm_xasprintf("{\"x\":%s,\"secretsManagementSettings\":{\"observedCertificates\":"
                       "[\"" URL1 "\"]}}", deep);
  e = envelope(pub);
  parse_text(&r, e);
  if (ok(&r, "moderate nesting"))
    KT_CHECK(has_warning(r.cfg, "unknown key \"x\" ignored"));
  kvvm_config_free(r.cfg);
  free(e);
  free(pub);
  free(deep);
}

static void test_size_limit(void)
{
  size_t n = KVVM_SETTINGS_MAX_BYTES + 1;
  char *big = kvvm_xmalloc(n + 1);
  memset(big, ' ', n);
  big[n] = '\0';
  struct res r;
  parse_text(&r, big);
  refused(&r, "settings are 1048577 bytes; the limit is 1048576 bytes (1 MiB)", "big");
  free(big);
}

static void test_why_buffer_bounds(void)
{
  struct kvvm_config *cfg = NULL;
  char why[8];
  memset(why, 'x', sizeof why);
  KT_CHECK(kvvm_settings_parse("{}", 2, &opts, &cfg, why, sizeof why) == KVVM_E_SETTINGS);
  KT_CHECK(strlen(why) == sizeof why - 1 && cfg == NULL);
  KT_CHECK(kvvm_settings_parse("{}", 2, &opts, &cfg, NULL, 0) == KVVM_E_SETTINGS);
  KT_CHECK(kvvm_settings_parse(NULL, 0, NULL, &cfg, NULL, 0) == KVVM_E_SETTINGS);
}

/* ---- PowerShell: publicSettings as a string holding JSON ---- */

static void test_public_settings_as_json_string(void)
{
  json_t *inner = json_pack("{s:{s:[s]}}", "secretsManagementSettings",
                            "observedCertificates", URL1);
  char *text = json_dumps(inner, JSON_COMPACT);
  json_t *str = json_string(text);
  char *pub = json_dumps(str, JSON_ENCODE_ANY), *e = envelope(pub);
  struct res r;
  parse_text(&r, e);
  if (ok(&r, "json string")) {
    KT_STREQ(r.cfg->certs[0].url, URL1);
    KT_CHECK(has_warning(r.cfg, "publicSettings: arrived as a JSON string holding JSON (the "
                                "PowerShell quoting mistake); decoded it once"));
  }
  kvvm_config_free(r.cfg);
  free(e);
  free(pub);
  json_decref(str);
  free(text);
  json_decref(inner);
}

static void test_public_settings_escaped_string(void)
{
  struct res r;
  char *e = envelope("\"{\\\\\\\"secretsManagementSettings\\\\\\\":{\\\\\\\"observedCertificates"
                     "\\\\\\\":[\\\\\\\"" URL1 "\\\\\\\"]}}\"");
  parse_text(&r, e);
  if (ok(&r, "escaped string")) {
    KT_STREQ(r.cfg->certs[0].url, URL1);
    KT_CHECK(has_warning(r.cfg, "with backslash-escaped quotes"));
  }
  kvvm_config_free(r.cfg);
  free(e);
}

/* ---- keyvault.md §1.9: how loosely values come in ---- */

static void test_loose_polling(void)
{
  static const struct {
    const char *v;
    unsigned want;
    bool warned;
  } rows[] = {
      {"'3600'", 3600, false}, {"3600", 3600, false},  {"' 600 '", 600, false},
      {"'43200'", 43200, false}, {"'360'", 360, false}, {"'60'", 60, false},
      {"'30'", 60, true},        {"1", 60, true},        {"null", 3600, false},
  };
  for (size_t i = 0; i < N_ELEMS(rows); i++) {
    char *sms = kvvm_xasprintf("{'pollingIntervalInS':%s,'observedCertificates':['" URL1 "']}",
                               rows[i].v);
    struct res r;
    parse_sms(&r, sms);
    if (ok(&r, rows[i].v)) {
      KT_CHECK(r.cfg->polling_s == rows[i].want);
      KT_CHECK(has_warning(r.cfg, "is below the minimum; raised to 60") == rows[i].warned);
    }
    kvvm_config_free(r.cfg);
    free(sms);
  }
  struct res r;
  parse_sms(&r, OBS1(URL1));
  if (ok(&r, "default polling"))
    KT_CHECK(r.cfg->polling_s == 3600);
  kvvm_config_free(r.cfg);
}

static void test_loose_booleans(void)
{
  static const struct {
    const char *v;
    bool want;
  } rows[] = {{"true", true},     {"false", false},   {"'true'", true},  {"'false'", false},
              {"'TRUE'", true},   {"'False'", false}, {"'tRuE'", true}};
  for (size_t i = 0; i < N_ELEMS(rows); i++) {
    const char *v = rows[i].v;
    char *sms = kvvm_xasprintf("{'linkOnRenewal':%s,'requireInitialSync':%s,'aclEnabled':%s,"
                               "'observedCertificates':[{'url':'" URL1 "','keyExportable':%s}]}",
                               v, v, v, v);
    struct res r;
    parse_sms(&r, sms);
    if (ok(&r, v)) {
      const struct kvvm_config *c = r.cfg;
      KT_CHECK(c->link_on_renewal == rows[i].want && c->require_initial_sync == rows[i].want);
      KT_CHECK(c->acl_enabled == rows[i].want && c->certs[0].key_exportable == rows[i].want);
    }
    kvvm_config_free(r.cfg);
    free(sms);
  }
}

static void test_observed_single_string(void)
{
  struct res r;
  parse_sms(&r, "{'observedCertificates':'" URL1 "'}");
  if (ok(&r, "single string")) {
    KT_CHECK(r.cfg->n_certs == 1 && r.cfg->schema == KVVM_SCHEMA_V1);
    KT_CHECK(has_warning(r.cfg, "secretsManagementSettings.observedCertificates: is a single "
                                "string, not an array; read as a list of one URL"));
  }
  kvvm_config_free(r.cfg);
}

/* AzureTRE#3492: authenticationSettings inside secretsManagementSettings, with an ARM id. */
static void test_auth_inside_secrets_management(void)
{
  struct res r;
  parse_sms(&r, "{'observedCertificates':['" URL1 "'],'authenticationSettings':{"
                "'msiEndpoint':'http://169.254.169.254/metadata/identity',"
                "'msiClientId':'" IDENTITY_ID "'}}");
  if (ok(&r, "auth inside")) {
    KT_STREQ(r.cfg->msi_client_id, IDENTITY_ID);
    KT_CHECK(r.cfg->client_id_kind == KVVM_ID_RESOURCE_ID);
    KT_STREQ(r.cfg->msi_endpoint, "http://169.254.169.254/metadata/identity/oauth2/token");
    KT_CHECK(has_warning(r.cfg, "secretsManagementSettings.authenticationSettings: belongs "
                                "beside secretsManagementSettings, not inside it"));
  }
  kvvm_config_free(r.cfg);
}

static void test_client_id_kinds(void)
{
  static const struct {
    const char *id;
    enum kvvm_client_id_kind kind;
  } rows[] = {
      {GUID, KVVM_ID_CLIENT_ID},
      {"C7373AE5-91C2-4165-8AB6-7381D6E75619", KVVM_ID_CLIENT_ID},
      {IDENTITY_ID, KVVM_ID_RESOURCE_ID},
      {"/SUBSCRIPTIONS/00000000-1111-2222-3333-444444444444/resourcegroups/My.Group(1)/"
       "providers/microsoft.managedidentity/userassignedidentities/uami_01",
       KVVM_ID_RESOURCE_ID},
  };
  for (size_t i = 0; i < N_ELEMS(rows); i++) {
    char *pub = kvvm_xasprintf("{'secretsManagementSettings':" OBS1(URL1) ","
                               "'authenticationSettings':{'msiClientId':'%s'}}", rows[i].id);
    struct res r;
    parse_pub(&r, pub);
    if (ok(&r, rows[i].id)) {
      KT_CHECK(r.cfg->client_id_kind == rows[i].kind);
      KT_STREQ(r.cfg->msi_client_id, rows[i].id);
      KT_CHECK(r.cfg->msi_endpoint == NULL);
    }
    kvvm_config_free(r.cfg);
    free(pub);
  }
}

static void test_url_normalisation(void)
{
  static const struct {
    const char *in, *url, *version;
    const char *warning;
  } rows[] = {
      {"https://myvault.vault.azure.net:443/secrets/c1", URL1, NULL, NULL},
      {"https://myvault.vault.azure.net/secrets/c1/", URL1, NULL, NULL},
      {"https://myvault.vault.azure.net/secrets/c1?api-version=7.4", URL1, NULL,
       "dropped \"?api-version=7.4\" after the path"},
      {"https://myvault.vault.azure.net/secrets/c1#frag", URL1, NULL, "dropped \"#frag\""},
      {"  https://myvault.vault.azure.net/secrets/c1  ", URL1, NULL, NULL},
      {"HTTPS://MyVault.Vault.Azure.NET/Secrets/C1", "https://myvault.vault.azure.net/secrets/C1",
       NULL, NULL},
      {"https://myvault.vault.azure.net/secrets/c1/0123abcdef4567890123abcdef456789",
       URL1 "/0123abcdef4567890123abcdef456789", "0123abcdef4567890123abcdef456789", NULL},
      {"https://myvault.vault.azure.net:443/secrets/c1/0123ABCDEF4567890123ABCDEF456789//?x=1",
       URL1 "/0123abcdef4567890123abcdef456789", "0123abcdef4567890123abcdef456789",
       "dropped \"?x=1\""},
  };
  for (size_t i = 0; i < N_ELEMS(rows); i++) {
    char *sms = kvvm_xasprintf(OBS1("%s"), rows[i].in);
    struct res r;
    parse_sms(&r, sms);
    if (ok(&r, rows[i].in)) {
      const struct kvvm_cert_cfg *c = &r.cfg->certs[0];
      KT_STREQ(c->url, rows[i].url);
      KT_STREQ(c->vault_host, "myvault.vault.azure.net");
      KT_STREQ(c->vault_name, "myvault");
      if (rows[i].version)
        KT_STREQ(c->version, rows[i].version);
      else
        KT_CHECK(c->version == NULL);
      KT_CHECK(rows[i].warning ? has_warning(r.cfg, rows[i].warning) : n_warnings(r.cfg) == 0);
    }
    kvvm_config_free(r.cfg);
    free(sms);
  }
}

static void test_msi_endpoint_forms(void)
{
  static const struct {
    const char *in, *want;
  } rows[] = {
      {"http://169.254.169.254/metadata/identity", IMDS},
      {"http://169.254.169.254/metadata/identity/oauth2/token", IMDS},
      {"http://169.254.169.254/metadata/identity/", IMDS},
      {"HTTP://169.254.169.254/Metadata/Identity/OAuth2/Token/", IMDS},
      {"http://169.254.169.254:80/metadata/identity",
       "http://169.254.169.254:80/metadata/identity/oauth2/token"},
      {"http://localhost:40342/metadata/identity",
       "http://localhost:40342/metadata/identity/oauth2/token"},
      {"http://LocalHost:40342/metadata/identity",
       "http://localhost:40342/metadata/identity/oauth2/token"},
      {"http://127.0.0.1:8080/metadata/identity/oauth2/token",
       "http://127.0.0.1:8080/metadata/identity/oauth2/token"},
      {"http://127.1.2.3/metadata/identity", "http://127.1.2.3/metadata/identity/oauth2/token"},
      {"http://[::1]:40342/metadata/identity",
       "http://[::1]:40342/metadata/identity/oauth2/token"},
  };
  for (size_t i = 0; i < N_ELEMS(rows); i++) {
    char *pub = kvvm_xasprintf("{'secretsManagementSettings':" OBS1(URL1) ","
                               "'authenticationSettings':{'msiEndpoint':'%s'}}", rows[i].in);
    struct res r;
    parse_pub(&r, pub);
    if (ok(&r, rows[i].in))
      KT_STREQ(r.cfg->msi_endpoint, rows[i].want);
    kvvm_config_free(r.cfg);
    free(pub);
  }
}

static void test_msi_endpoint_query_and_empty(void)
{
  struct res r;
  parse_pub(&r, "{'secretsManagementSettings':" OBS1(URL1) ",'authenticationSettings':{"
                "'msiEndpoint':'http://169.254.169.254/metadata/identity/oauth2/token?"
                "api-version=2018-02-01','msiClientId':''}}");
  if (ok(&r, "query")) {
    KT_STREQ(r.cfg->msi_endpoint, IMDS);
    KT_CHECK(has_warning(r.cfg, "dropped \"?api-version=2018-02-01\""));
    KT_CHECK(r.cfg->msi_client_id == NULL && r.cfg->client_id_kind == KVVM_ID_NONE);
    KT_CHECK(has_warning(r.cfg, "msiClientId: is empty; the VM's system-assigned identity"));
  }
  kvvm_config_free(r.cfg);
  parse_pub(&r, "{'secretsManagementSettings':" OBS1(URL1) ",'authenticationSettings':{"
                "'msiEndpoint':' '}}");
  if (ok(&r, "empty endpoint")) {
    KT_CHECK(r.cfg->msi_endpoint == NULL);
    KT_CHECK(has_warning(r.cfg, "authenticationSettings.msiEndpoint: is empty"));
  }
  kvvm_config_free(r.cfg);
}

/* ---- clouds, managed HSM ---- */

static void test_every_cloud_suffix(void)
{
  static const struct {
    const char *host, *resource;
  } rows[] = {
      {"myvault.vault.azure.net", "https://vault.azure.net"},
      {"myvault.vault.azure.cn", "https://vault.azure.cn"},
      {"myvault.vault.usgovcloudapi.net", "https://vault.usgovcloudapi.net"},
      {"myvault.vault.microsoftazure.de", "https://vault.microsoftazure.de"},
  };
  for (size_t i = 0; i < N_ELEMS(rows); i++) {
    char *sms = kvvm_xasprintf(OBS1("https://%s/secrets/c1"), rows[i].host);
    struct res r;
    parse_sms(&r, sms);
    if (ok(&r, rows[i].host)) {
      KT_STREQ(r.cfg->certs[0].resource, rows[i].resource);
      KT_STREQ(r.cfg->certs[0].vault_host, rows[i].host);
      KT_STREQ(r.cfg->certs[0].vault_name, "myvault");
    }
    kvvm_config_free(r.cfg);
    free(sms);
  }
}

static void test_managed_hsm_refused(void)
{
  static const char *const hosts[] = {"myhsm.managedhsm.azure.net", "myhsm.managedhsm.azure.cn",
                                      "myhsm.managedhsm.usgovcloudapi.net",
                                      "myhsm.managedhsm.microsoftazure.de"};
  for (size_t i = 0; i < N_ELEMS(hosts); i++) {
    char *sms = kvvm_xasprintf(OBS1("https://%s/keys/k1"), hosts[i]);
    struct res r;
    parse_sms(&r, sms);
    refused(&r, "is a managed HSM: a managed HSM holds keys, not secrets or certificates",
            hosts[i]);
    KT_CONTAINS(r.why, hosts[i]);
    free(sms);
  }
}

/* ---- store mapping ---- */

static void test_store_mapping(void)
{
  static const struct {
    const char *keys, *dir;
    enum kvvm_store_loc loc;
  } rows[] = {
      {"", ROOT, KVVM_LOC_LOCAL_MACHINE},
      {"'certificateStoreLocation':'LocalMachine','certificateStoreName':'MY',", ROOT,
       KVVM_LOC_LOCAL_MACHINE},
      {"'certificateStoreLocation':'localmachine','certificateStoreName':'my',", ROOT,
       KVVM_LOC_LOCAL_MACHINE},
      {"'certificateStoreLocation':'CurrentUser',", ROOT "/CurrentUser", KVVM_LOC_CURRENT_USER},
      {"'certificateStoreLocation':'CURRENTUSER','certificateStoreName':'TrustedPeople',",
       ROOT "/CurrentUser/TrustedPeople", KVVM_LOC_CURRENT_USER},
      {"'certificateStoreName':'WebHosting',", ROOT "/WebHosting", KVVM_LOC_LOCAL_MACHINE},
      {"'certificateStoreLocation':'/etc/ssl/app/',", "/etc/ssl/app", KVVM_LOC_PATH},
      {"'certificateStoreLocation':'//etc//ssl/./app//','certificateStoreName':'My',",
       "/etc/ssl/app", KVVM_LOC_PATH},
      {"'certificateStoreLocation':'/',", "/", KVVM_LOC_PATH},
  };
  for (size_t i = 0; i < N_ELEMS(rows); i++) {
    char *sms = kvvm_xasprintf("{%s'observedCertificates':['" URL1 "']}", rows[i].keys);
    struct res r;
    parse_sms(&r, sms);
    if (ok(&r, rows[i].keys)) {
      check_cert(&r.cfg->certs[0], URL1, rows[i].dir, rows[i].loc);
      KT_CHECK(n_warnings(r.cfg) == 0);
    }
    kvvm_config_free(r.cfg);
    free(sms);
  }
}

/* As in Microsoft's Linux extension, a folder location ignores the store name. */
static void test_store_name_ignored_with_folder(void)
{
  struct res r;
  parse_sms(&r, "{'certificateStoreLocation':'/opt/certs','certificateStoreName':'Root',"
                "'observedCertificates':['" URL1 "','" HOST "/secrets/c2']}");
  if (ok(&r, "folder + name")) {
    check_cert(&r.cfg->certs[0], URL1, "/opt/certs", KVVM_LOC_PATH);
    KT_PATHEQ(r.cfg->certs[1].store_dir, "/opt/certs");
    KT_STREQ(r.cfg->certs[0].store_name, "Root");
    KT_CHECK(has_warning(r.cfg, "certificateStoreName \"Root\" is ignored"));
    KT_CHECK(n_warnings(r.cfg) == 1);
  }
  kvvm_config_free(r.cfg);
}

static void test_default_store_root(void)
{
  static const struct kvvm_settings_opts no_root = {NULL};
  const struct kvvm_settings_opts *variants[] = {NULL, &no_root};
  char *t = sq("{'runtimeSettings':[{'handlerSettings':{'publicSettings':{"
               "'secretsManagementSettings':{'certificateStoreLocation':'CurrentUser',"
               "'observedCertificates':['" URL1 "']}}}}]}");
  for (size_t i = 0; i < N_ELEMS(variants); i++) {
    struct kvvm_config *cfg = NULL;
    char why[256];
    KT_CHECK(kvvm_settings_parse(t, strlen(t), variants[i], &cfg, why, sizeof why) == KVVM_OK);
    if (cfg)
      KT_PATHEQ(cfg->certs[0].store_dir, DEFAULT_ROOT "/CurrentUser");
    kvvm_config_free(cfg);
  }
  free(t);
}

/* Linux v4 note: a certificate's own location wins over the one beside the list. */
static void test_per_certificate_store_overrides(void)
{
  struct res r;
  parse_sms(&r, "{'certificateStoreLocation':'/srv/top','certificateStoreName':'Root',"
                "'observedCertificates':[{'url':'" URL1 "'},"
                "{'url':'https://myvault.vault.azure.net/secrets/c2','certificateStoreLocation':"
                "'/srv/own'},{'url':'https://myvault.vault.azure.net/secrets/c3',"
                "'certificateStoreLocation':'LocalMachine','certificateStoreName':'CA'},"
                "{'url':'https://myvault.vault.azure.net/secrets/c4','certificateStoreLocation':"
                "'LocalMachine'}]}");
  if (ok(&r, "overrides")) {
    KT_PATHEQ(r.cfg->certs[0].store_dir, "/srv/top");
    KT_PATHEQ(r.cfg->certs[1].store_dir, "/srv/own");
    KT_PATHEQ(r.cfg->certs[2].store_dir, ROOT "/CA");
    KT_PATHEQ(r.cfg->certs[3].store_dir, ROOT "/Root");
    KT_CHECK(r.cfg->certs[2].location == KVVM_LOC_LOCAL_MACHINE);
  }
  kvvm_config_free(r.cfg);
}

/* ---- unknown keys, duplicates ---- */

static void test_unknown_keys_warn(void)
{
  struct res r;
  parse_pub(&r, "{'secretsManagementSettings':{'PollingIntervalInS':'60','observedCertificates':"
                "[{'url':'" URL1 "','acls':[{'user':'app1','mode':'r'}],'linkName':'x'}]},"
                "'authenticationSettings':{'msiEndpoint':null,'tenant':'t'},'settings':{}}");
  if (ok(&r, "unknown keys")) {
    KT_CHECK(r.cfg->polling_s == 3600);
    KT_CHECK(has_warning(r.cfg, "secretsManagementSettings: unknown key \"PollingIntervalInS\" "
                                "ignored (keys are case-sensitive: did you mean "
                                "pollingIntervalInS?)"));
    KT_CHECK(has_warning(r.cfg, "observedCertificates[0].acls[0]: unknown key \"mode\""));
    KT_CHECK(has_warning(r.cfg, "observedCertificates[0]: unknown key \"linkName\" ignored"));
    KT_CHECK(has_warning(r.cfg, "authenticationSettings: unknown key \"tenant\" ignored"));
    KT_CHECK(has_warning(r.cfg, "publicSettings: unknown key \"settings\" ignored"));
    KT_CHECK(n_warnings(r.cfg) == 5);
  }
  kvvm_config_free(r.cfg);
}

static void test_duplicates_allowed_in_other_stores(void)
{
  struct res r;
  parse_sms(&r, "{'observedCertificates':[{'url':'" URL1 "'},{'url':'" URL1 "',"
                "'certificateStoreLocation':'CurrentUser'},{'url':'" URL1 "',"
                "'certificateStoreLocation':'/a','customSymbolicLinkName':'x'},"
                "{'url':'https://myvault.vault.azure.net/secrets/c2',"
                "'certificateStoreLocation':'/b','customSymbolicLinkName':'x'}]}");
  if (ok(&r, "same url, other stores"))
    KT_CHECK(r.cfg->n_certs == 4);
  kvvm_config_free(r.cfg);
}

/* ---- the table of bad inputs: each row must give these words ---- */

struct bad {
  const char *json, *want;
};

static const struct bad bad_envelopes[] = {
    {"{", "settings: not valid JSON"},
    {"[]", "settings: got an array, expected an object"},
    {"{}", "runtimeSettings: is missing; expected the guest agent's envelope"},
    {"{'runtimeSettings':{}}", "runtimeSettings: got an object, expected an array"},
    {"{'runtimeSettings':[]}", "runtimeSettings: has 0 elements; expected exactly one"},
    {"{'runtimeSettings':[{},{}]}", "runtimeSettings: has 2 elements; expected exactly one"},
    {"{'runtimeSettings':['x']}", "runtimeSettings[0]: got a string, expected an object"},
    {"{'runtimeSettings':[{}]}", "runtimeSettings[0].handlerSettings: is missing"},
    {"{'runtimeSettings':[{'handlerSettings':{'publicSettings':null}}]}",
     "runtimeSettings[0].handlerSettings.publicSettings: is null or missing (the extension was "
     "deployed without settings); secretsManagementSettings.observedCertificates is required"},
    {"{'runtimeSettings':[{'handlerSettings':{'publicSettings':5}}]}",
     "publicSettings: got a number, expected an object"},
    {"{'runtimeSettings':[{'handlerSettings':{'publicSettings':''}}]}",
     "publicSettings: is an empty string"},
    {"{'runtimeSettings':[{'handlerSettings':{'publicSettings':'not json'}}]}",
     "publicSettings: not valid JSON"},
    {"{'runtimeSettings':[{'handlerSettings':{'publicSettings':'\\'str\\''}}]}",
     "publicSettings: is a string holding a string; expected an object"},
    {"{'runtimeSettings':[{'handlerSettings':{'publicSettings':{},'protectedSettings':5}}]}",
     "protectedSettings: got a number, expected a base64 string"},
    {"{'runtimeSettings':[{'handlerSettings':{'publicSettings':{},'protectedSettings':'QUJD'}}]}",
     "protectedSettings are present without protectedSettingsCertThumbprint"},
    {"{'runtimeSettings':[{'handlerSettings':{'publicSettings':{},"
     "'protectedSettingsCertThumbprint':'ABC'}}]}",
     "protectedSettingsCertThumbprint: \"ABC\" is not a SHA-1 thumbprint; expected 40 hex"},
    {"{'runtimeSettings':[{'handlerSettings':{'publicSettings':{}}}]}",
     "secretsManagementSettings: is missing; expected an object whose observedCertificates"},
    {"{'runtimeSettings':[{'handlerSettings':{'publicSettings':{"
     "'secretsManagementSettings':[]}}}]}",
     "secretsManagementSettings: got an array, expected an object"},
    {"{'runtimeSettings':[{'handlerSettings':{'publicSettings':{'a':1,'a':2}}}]}",
     "a key appears twice in one object"},
};

static void test_bad_envelopes(void)
{
  for (size_t i = 0; i < N_ELEMS(bad_envelopes); i++) {
    struct res r;
    parse_env_sq(&r, bad_envelopes[i].json);
    refused(&r, bad_envelopes[i].want, bad_envelopes[i].json);
  }
}

#define OBS "secretsManagementSettings.observedCertificates"

static const struct bad bad_sms[] = {
    /* vault URLs */
    {OBS1("http://myvault.vault.azure.net/secrets/a"),
     OBS "[0]: \"http://myvault.vault.azure.net/secrets/a\" uses http://; Key Vault is reached "
         "over HTTPS only"},
    {OBS1("ftp://myvault.vault.azure.net/secrets/a"), "is not an https:// URL"},
    {OBS1("myvault.vault.azure.net/secrets/a"), "is not an https:// URL"},
    {OBS1(""), OBS "[0]: is empty; expected a secret URL"},
    {OBS1("https://myvault.vault.azure.com/secrets/a"),
     "host \"myvault.vault.azure.com\" is not a Key Vault host; expected a name ending in "
     ".vault.azure.net, .vault.azure.cn, .vault.usgovcloudapi.net or .vault.microsoftazure.de"},
    {OBS1("https://example.com/secrets/a"), "host \"example.com\" is not a Key Vault host"},
    {OBS1("https://vault.azure.net/secrets/a"), "is not a Key Vault host"},
    {OBS1(HOST "/certificates/c"),
     "points at /certificates/: the certificate object lacks the private key; use the secret "
     "URL https://myvault.vault.azure.net/secrets/c instead"},
    {OBS1(HOST "/keys/k"), "points at /keys/: a key holds no certificate"},
    {OBS1(HOST "/storage/x"), "the path is not /secrets/<name>[/<version>]"},
    {OBS1(HOST "/secrets/a/v1/extra"), "the path is not /secrets/<name>[/<version>]"},
    {OBS1(HOST "/secrets//a"), "the path is not /secrets/<name>[/<version>]"},
    {OBS1(HOST), "has no path; expected https://myvault.vault.azure.net/secrets/<name>"},
    {OBS1(HOST "/secrets/"), "names no secret"},
    {OBS1(HOST "/secrets/my_cert"),
     "secret name \"my_cert\" may hold only letters, digits and hyphens"},
    {OBS1(HOST "/secrets/a/.hidden"), "version \".hidden\" is not a Key Vault version id (32 "
     "hexadecimal digits, as in .../secrets/a/0123456789abcdef0123456789abcdef)"},
    {OBS1(HOST "/secrets/a/v%2F1"), "version \"v%2F1\" is not a Key Vault version id"},
    {OBS1(HOST "/secrets/a/pfx"), "version \"pfx\" is not a Key Vault version id"},
    {OBS1("https://myvault.vault.azure.net:8443/secrets/a"),
     "names port \"8443\"; Key Vault is served on port 443 only"},
    {OBS1("https://user@myvault.vault.azure.net/secrets/a"), "has user information"},
    {OBS1("https:///secrets/a"), "has no host"},
    {OBS1("https://my vault.vault.azure.net/secrets/a"), "is not a DNS name"},
    {OBS1("https://ab.vault.azure.net/secrets/a"), "does not start with a vault name"},
    {OBS1("https://x.myvault.vault.azure.net/secrets/a"), "does not start with a vault name"},
    {OBS1("https://1vault.vault.azure.net/secrets/a"), "does not start with a vault name"},
    /* observedCertificates: presence, types, shapes */
    {"{}", OBS ": is missing; expected a list of secret URLs"},
    {"{'observedCertificates':null}", OBS ": is missing"},
    {"{'observedCertificates':[]}", OBS ": is empty; expected at least one secret URL"},
    {"{'observedCertificates':42}", OBS ": got a number, expected an array of secret URLs"},
    {"{'observedCertificates':['" URL1 "',{'url':'" URL1 "'}]}",
     OBS "[1]: got an object, but element 0 is a string; expected all URL strings (v1.0) or "
         "all objects with a url (v3.0), not a mix"},
    {"{'observedCertificates':[{'url':'" URL1 "'},'" URL1 "']}",
     OBS "[1]: got a string, but element 0 is an object"},
    {"{'observedCertificates':[null]}", OBS "[0]: got null, expected a secret URL string"},
    {"{'observedCertificates':['" URL1 "',5]}", OBS "[1]: got a number, expected a string"},
    {"{'observedCertificates':' [\\'" URL1 "\\'] '}", OBS ": \" [\\\"https://"},
    {"{'observedCertificates':[{'certificateStoreName':'MY'}]}",
     OBS "[0].url: is missing; expected the secret URL"},
    {"{'observedCertificates':[{'url':5}]}",
     OBS "[0].url: got a number, expected a secret URL string"},
    {"{'observedCertificates':['" URL1 "','" URL1 "']}",
     OBS "[1]: " URL1 " is already observed by observedCertificates[0] into the same store "
         ROOT "; list it once"},
    {"{'observedCertificates':['" HOST "/secrets/C1','" HOST ":443/secrets/c1/']}",
     OBS "[1]: " URL1 " is already observed by observedCertificates[0]"},
    {"{'observedCertificates':['" URL1 "','" URL1 "/0123abcdef4567890123abcdef456789']}",
     OBS "[1]: " URL1 "/0123abcdef4567890123abcdef456789 would write the same file " ROOT "/myvault.c1 as "
         "observedCertificates[0]"},
    {"{'observedCertificates':[{'url':'" URL1 "','customSymbolicLinkName':'app'},{'url':'"
     HOST "/secrets/c2','customSymbolicLinkName':'app'}]}",
     "would write the same file " ROOT "/app as observedCertificates[0]"},
    /* pollingIntervalInS */
    {"{'pollingIntervalInS':'abc','observedCertificates':['" URL1 "']}",
     "secretsManagementSettings.pollingIntervalInS: \"abc\" is not a number; expected a whole "
     "number of seconds"},
    {"{'pollingIntervalInS':'','observedCertificates':['" URL1 "']}", "\"\" is not a number"},
    {"{'pollingIntervalInS':'3600s','observedCertificates':['" URL1 "']}",
     "\"3600s\" is not a whole number of seconds"},
    {"{'pollingIntervalInS':0,'observedCertificates':['" URL1 "']}",
     "pollingIntervalInS: 0 is not a positive number of seconds"},
    {"{'pollingIntervalInS':'-5','observedCertificates':['" URL1 "']}",
     "-5 is not a positive number of seconds"},
    {"{'pollingIntervalInS':3600.5,'observedCertificates':['" URL1 "']}",
     "3600.5 is not a whole number of seconds"},
    {"{'pollingIntervalInS':true,'observedCertificates':['" URL1 "']}",
     "pollingIntervalInS: got a boolean, expected a number of seconds"},
    {"{'pollingIntervalInS':'99999999999999999999999','observedCertificates':['" URL1 "']}",
     "seconds is more than a year"},
    /* booleans */
    {"{'requireInitialSync':'yes','observedCertificates':['" URL1 "']}",
     "secretsManagementSettings.requireInitialSync: \"yes\" is not a boolean; expected true or "
     "false"},
    {"{'linkOnRenewal':1,'observedCertificates':['" URL1 "']}",
     "linkOnRenewal: got a number, expected true or false"},
    {"{'observedCertificates':[{'url':'" URL1 "','keyExportable':'nope'}]}",
     OBS "[0].keyExportable: \"nope\" is not a boolean"},
    /* store location and name */
    {"{'certificateStoreLocation':'certs/app','observedCertificates':['" URL1 "']}",
     "secretsManagementSettings.certificateStoreLocation: \"certs/app\" is a relative path; "
     "expected \"LocalMachine\", \"CurrentUser\" or an absolute folder"},
    {"{'observedCertificates':[{'url':'" URL1 "','certificateStoreLocation':'./x'}]}",
     OBS "[0].certificateStoreLocation: \"./x\" is a relative path"},
    {"{'certificateStoreLocation':'Machine','observedCertificates':['" URL1 "']}",
     "\"Machine\" is not a store location"},
    {"{'certificateStoreLocation':'C:\\\\certs','observedCertificates':['" URL1 "']}",
     "\"C:\\\\certs\" is not a store location"},
    {"{'certificateStoreLocation':'/a/../b','observedCertificates':['" URL1 "']}",
     "\"/a/../b\" contains a \"..\" segment"},
    {"{'certificateStoreLocation':'/a/\\u0001','observedCertificates':['" URL1 "']}",
     "\"/a/\\x01\" contains a control character"},
    {"{'certificateStoreLocation':5,'observedCertificates':['" URL1 "']}",
     "certificateStoreLocation: got a number, expected \"LocalMachine\""},
    {"{'certificateStoreName':'My/Store','observedCertificates':['" URL1 "']}",
     "certificateStoreName: \"My/Store\" is not a simple store name"},
    {"{'observedCertificates':[{'url':'" URL1 "','certificateStoreName':'.hidden'}]}",
     OBS "[0].certificateStoreName: \".hidden\" is not a simple store name"},
    {"{'observedCertificates':[{'url':'" URL1 "','certificateStoreName':[]}]}",
     "certificateStoreName: got an array, expected a store name"},
    /* Linux keys */
    {"{'observedCertificates':[{'url':'" URL1 "','customSymbolicLinkName':'../x'}]}",
     OBS "[0].customSymbolicLinkName: \"../x\" is not a safe file name"},
    {"{'observedCertificates':[{'url':'" URL1 "','customSymbolicLinkName':'a/b'}]}",
     "\"a/b\" is not a safe file name"},
    {"{'observedCertificates':[{'url':'" URL1 "','customSymbolicLinkName':'.x'}]}",
     "\".x\" is not a safe file name"},
    {"{'observedCertificates':[{'url':'" URL1 "','customSymbolicLinkName':''}]}",
     "\"\" is not a safe file name"},
    {"{'observedCertificates':[{'url':'" URL1 "','customSymbolicLinkName':true}]}",
     "customSymbolicLinkName: got a boolean, expected a file name"},
    {"{'observedCertificates':[{'url':'" URL1 "','acls':{'user':'a'}}]}",
     OBS "[0].acls: got an object, expected an array"},
    {"{'observedCertificates':[{'url':'" URL1 "','acls':[{}]}]}",
     OBS "[0].acls[0]: names neither a user nor a group"},
    {"{'observedCertificates':[{'url':'" URL1 "','acls':['app1']}]}",
     OBS "[0].acls[0]: got a string, expected an object"},
    {"{'observedCertificates':[{'url':'" URL1 "','acls':[{'user':5}]}]}",
     OBS "[0].acls[0].user: got a number, expected a user name"},
    {"{'observedCertificates':[{'url':'" URL1 "','acls':[{'user':'ok','group':'-rf'}]}]}",
     OBS "[0].acls[0].group: \"-rf\" is not a plausible group name"},
    {"{'observedCertificates':[{'url':'" URL1 "','acls':[{'user':'a:b'}]}]}",
     "\"a:b\" is not a plausible user name"},
    {"{'observedCertificates':[{'url':'" URL1 "','acls':[{'user':'a b'}]}]}",
     "\"a b\" is not a plausible user name"},
    /* Windows accounts */
    {"{'observedCertificates':[{'url':'" URL1 "','accounts':'Network Service'}]}",
     OBS "[0].accounts: got a string, expected an array of account names"},
    {"{'observedCertificates':[{'url':'" URL1 "','accounts':['Local Service',5]}]}",
     OBS "[0].accounts[1]: got a number, expected an account name"},
    {"{'observedCertificates':[{'url':'" URL1 "','accounts':['']}]}",
     OBS "[0].accounts[0]: \"\" is not an account name"},
    /* authenticationSettings misplaced inside, and both */
    {"{'observedCertificates':['" URL1 "'],'authenticationSettings':'x'}",
     "secretsManagementSettings.authenticationSettings: got a string, expected an object"},
    {"{'observedCertificates':['" URL1 "'],'authenticationSettings':{'msiClientId':'abc'}}",
     "secretsManagementSettings.authenticationSettings.msiClientId: \"abc\" is neither a "
     "client id"},
};

static void test_bad_secrets_management(void)
{
  for (size_t i = 0; i < N_ELEMS(bad_sms); i++) {
    struct res r;
    parse_sms(&r, bad_sms[i].json);
    refused(&r, bad_sms[i].want, bad_sms[i].json);
  }
}

#define AUTH "authenticationSettings"

static const struct bad bad_auth[] = {
    {"'x'", AUTH ": got a string, expected an object with msiEndpoint and msiClientId"},
    {"{'msiEndpoint':'http:///169.254.169.254/metadata/identity'}",
     AUTH ".msiEndpoint: \"http:///169.254.169.254/metadata/identity\" has no host (one '/' too "
          "many after \"http:\"?)"},
    {"{'msiEndpoint':'http://'}", "has no host"},
    {"{'msiEndpoint':'https://169.254.169.254/metadata/identity'}",
     "uses https://; the instance metadata service and the Arc agent answer plain http"},
    {"{'msiEndpoint':'169.254.169.254/metadata/identity'}", "is not an http:// URL"},
    {"{'msiEndpoint':'http://10.0.0.4/metadata/identity'}",
     "host \"10.0.0.4\" is neither the instance metadata service (169.254.169.254) nor this "
     "machine"},
    {"{'msiEndpoint':'http://127.0.0.1.evil.example/metadata/identity'}",
     "is neither the instance metadata service"},
    {"{'msiEndpoint':'http://127.0.0.256/metadata/identity'}",
     "is neither the instance metadata service"},
    {"{'msiEndpoint':'http://[::2]:40342/metadata/identity'}",
     "is neither the instance metadata service"},
    {"{'msiEndpoint':'http://169.254.169.254/metadata/other'}",
     "path \"/metadata/other\" is neither /metadata/identity nor /metadata/identity/oauth2/token"},
    {"{'msiEndpoint':'http://169.254.169.254'}", "path \"\" is neither /metadata/identity"},
    {"{'msiEndpoint':'http://169.254.169.254:8080/metadata/identity'}",
     "port \"8080\" is not usable (the instance metadata service listens on port 80)"},
    {"{'msiEndpoint':'http://localhost:99999/metadata/identity'}", "port \"99999\" is not usable"},
    {"{'msiEndpoint':'http://localhost:/metadata/identity'}", "port \"\" is not usable"},
    {"{'msiEndpoint':5}", AUTH ".msiEndpoint: got a number, expected a string"},
    {"{'msiClientId':'not-a-guid'}",
     AUTH ".msiClientId: \"not-a-guid\" is neither a client id (a GUID such as "
          "00001111-aaaa-2222-bbbb-3333cccc4444) nor the resource id"},
    {"{'msiClientId':'c7373ae5-91c2-4165-8ab6-7381d6e7561'}", "is neither a client id"},
    {"{'msiClientId':'/subscriptions/x/resourceGroups/rg'}",
     "is a resource id, but not of a user-assigned identity"},
    {"{'msiClientId':'" IDENTITY_ID "/'}", "is a resource id, but not of a user-assigned"},
    {"{'msiClientId':[]}", AUTH ".msiClientId: got an array, expected a string"},
};

static void test_bad_authentication(void)
{
  for (size_t i = 0; i < N_ELEMS(bad_auth); i++) {
    char *pub = kvvm_xasprintf("{'secretsManagementSettings':" OBS1(URL1) ",'" AUTH "':%s}",
                               bad_auth[i].json);
    struct res r;
    parse_pub(&r, pub);
    refused(&r, bad_auth[i].want, bad_auth[i].json);
    free(pub);
  }
  struct res r;
  parse_pub(&r, "{'secretsManagementSettings':{'observedCertificates':['" URL1 "'],"
                "'" AUTH "':{}},'" AUTH "':{}}");
  refused(&r, "secretsManagementSettings.authenticationSettings: is given both here and beside "
              "secretsManagementSettings", "auth twice");
}

/* ---- canonical JSON ---- */

#ifdef _WIN32
#define METRICS_JSON "\"metricsTextfileDir\":false,\"metricsTextfileDirIfExists\":false,"
#else
#define METRICS_JSON "\"metricsTextfileDir\":\"/var/lib/prometheus/node-exporter\"," \
                     "\"metricsTextfileDirIfExists\":true,"
#endif

static void test_to_json_canonical(void)
{
  struct res r;
  parse_sms(&r, "{'pollingIntervalInS':'120','observedCertificates':['" URL1 "']}");
  if (!ok(&r, "canonical"))
    return;
  char *j = kvvm_config_to_json(r.cfg);
  KT_STREQ(j, "{\"aclEnabled\":false,\"certificates\":[{\"accounts\":[],\"acls\":[],"
              "\"keyExportable\":false,\"linkName\":null,\"location\":\"LocalMachine\","
              "\"resource\":\"https://vault.azure.net\",\"secretName\":\"c1\",\"storeDir\":\""
              ROOT "\",\"storeName\":null,\"url\":\"" URL1 "\",\"vaultHost\":"
              "\"myvault.vault.azure.net\",\"vaultName\":\"myvault\",\"version\":null}],"
              "\"expiryWarningInDays\":30,\"hasProtectedSettings\":false,\"linkOnRenewal\":false," METRICS_JSON
              "\"msiClientId\":null,\"msiClientIdKind\":\"none\",\"msiEndpoint\":null,\"pollingIntervalInS\":120,"
              "\"protectedSettingsCertThumbprint\":null,\"requireInitialSync\":false,"
              "\"schema\":\"v1\"}");
  free(j);
  kvvm_config_free(r.cfg);
}

/* Equal meaning, equal JSON (whatever the spelling); another meaning, another JSON;
 * warnings never enter it. */
static char *json_of_sms(const char *sms)
{
  struct res r;
  parse_sms(&r, sms);
  char *j = ok(&r, sms) ? kvvm_config_to_json(r.cfg) : NULL;
  kvvm_config_free(r.cfg);
  return j;
}

static void test_to_json_stable(void)
{
  char *a = json_of_sms("{'pollingIntervalInS':3600,'linkOnRenewal':'TRUE','observedCertificates':"
                        "'https://MyVault.vault.azure.net:443/secrets/c1/?x=1','foo':1}");
  char *b = json_of_sms("{'observedCertificates':['" URL1 "'],'linkOnRenewal':true,"
                        "'pollingIntervalInS':'3600','certificateStoreName':'my'}");
  char *c = json_of_sms("{'observedCertificates':['" URL1 "'],'linkOnRenewal':true,"
                        "'pollingIntervalInS':'3601'}");
  KT_STREQ(a, b);
  KT_CHECK(a && c && strcmp(a, c) != 0);
  KT_CHECK(a && !strstr(a, "warning") && !strstr(a, "ignored"));
  free(a);
  free(b);
  free(c);
}

static void test_to_json_full(void)
{
  struct res r;
  parse_doc(&r, "lnx-v3-schema.json");
  if (!ok(&r, "full json"))
    return;
  char *j = kvvm_config_to_json(r.cfg);
  json_error_t e;
  json_t *o = json_loads(j ? j : "", 0, &e);
  KT_CHECK(o != NULL);
  json_t *c0 = json_array_get(json_object_get(o, "certificates"), 0);
  KT_STREQ(json_string_value(json_object_get(c0, "linkName")), "app1Cert1");
  KT_STREQ(json_string_value(json_object_get(c0, "location")), "path");
  json_t *acl1 = json_array_get(json_object_get(c0, "acls"), 1);
  KT_STREQ(json_string_value(json_object_get(acl1, "user")), "service1");
  KT_CHECK(json_is_null(json_object_get(acl1, "group")));
  KT_STREQ(json_string_value(json_object_get(o, "msiClientIdKind")), "clientId");
  KT_CHECK(json_is_true(json_object_get(o, "aclEnabled")));
  KT_CHECK(kvvm_config_to_json(NULL) == NULL);
  json_decref(o);
  free(j);
  kvvm_config_free(r.cfg);
  kvvm_config_free(NULL);
}

/* ---- load ---- */

static char *write_file(const char *dir, const char *name, const char *data, size_t len)
{
  char *path = kvvm_xasprintf("%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  KT_CHECK(f != NULL);
  if (f) {
    KT_CHECK(fwrite(data, 1, len, f) == len);
    fclose(f);
  }
  return path;
}

static void test_load(void)
{
  char *dir = kt_tmpdir();
  KT_CHECK(dir != NULL);
  char *text = sq("{'runtimeSettings':[{'handlerSettings':{'publicSettings':"
                  "{'secretsManagementSettings':{'observedCertificates':['" URL1 "']}}}}]}");
  char *p3 = write_file(dir, "3.settings", text, strlen(text));
  char *p0 = write_file(dir, "0.settings", "", 0);
  struct kvvm_config *cfg = NULL;
  char why[512];
  KT_CHECK(kvvm_settings_load(dir, 3, &opts, &cfg, why, sizeof why) == KVVM_OK);
  KT_CHECK(cfg && cfg->n_certs == 1);
  kvvm_config_free(cfg);
  KT_CHECK(kvvm_settings_load(dir, 0, &opts, &cfg, why, sizeof why) == KVVM_E_SETTINGS);
  KT_CONTAINS(why, "settings are empty");
  KT_CHECK(kvvm_settings_load(dir, 7, &opts, &cfg, why, sizeof why) == KVVM_E_NOENT);
  KT_CONTAINS(why, "7.settings: does not exist");
  KT_CHECK(cfg == NULL);
  char *big = kvvm_xmalloc(KVVM_SETTINGS_MAX_BYTES + 10);
  memset(big, ' ', KVVM_SETTINGS_MAX_BYTES + 10);
  char *p9 = write_file(dir, "9.settings", big, KVVM_SETTINGS_MAX_BYTES + 10);
  KT_CHECK(kvvm_settings_load(dir, 9, &opts, &cfg, why, sizeof why) == KVVM_E_SETTINGS);
  KT_CONTAINS(why, "9.settings: is 1048586 bytes; the limit is 1048576 bytes (1 MiB)");
  kt_rmtree(dir);
  free(dir);
  free(big);
  free(p0);
  free(p3);
  free(p9);
  free(text);
}

/* ---- the log: shape named, protected value never written ---- */

static void test_log_names_shape_not_secrets(void)
{
  struct res r;
  parse_doc(&r, "win-2024-v3-schema.json");
  kvvm_config_free(r.cfg);
  parse_doc(&r, "lnx-v3-schema.json");
  kvvm_config_free(r.cfg);
  char *path = kvvm_xasprintf("%s/kvvm.log", log_dir), *log = NULL;
  size_t len;
  KT_CHECK(kvvm_file_read(path, 64 << 20, &log, &len) == KVVM_OK);
  KT_CONTAINS(log, "settings: Windows v3.0 shape (observedCertificates as objects), "
                   "2 certificate(s), polling every 3600 s");
  KT_CONTAINS(log, "settings: Linux v3 shape");
  KT_CHECK(log && !strstr(log, PROTECTED_VALUE));
  free(log);
  free(path);
}

int main(void)
{
  static const struct kt_case cases[] = {
      KT_CASE(test_docs_windows_v3),
      KT_CASE(test_docs_windows_v3_template),
      KT_CASE(test_docs_windows_v3_deploy),
      KT_CASE(test_docs_windows_v1),
      KT_CASE(test_docs_windows_v1_malformed_example),
      KT_CASE(test_docs_windows_v1_vmss_extra_brace),
      KT_CASE(test_docs_windows_v1_cli_escaped),
      KT_CASE(test_docs_windows_v4),
      KT_CASE(test_docs_linux_v1),
      KT_CASE(test_docs_linux_v2),
      KT_CASE(test_docs_linux_v3),
      KT_CASE(test_docs_linux_v3_placeholder_client_id),
      KT_CASE(test_docs_linux_v4),
      KT_CASE(test_empty_settings_file),
      KT_CASE(test_protected_settings_kept_out),
      KT_CASE(test_protected_settings_null),
      KT_CASE(test_duplicate_keys_refused),
      KT_CASE(test_nesting_limit),
      KT_CASE(test_size_limit),
      KT_CASE(test_why_buffer_bounds),
      KT_CASE(test_public_settings_as_json_string),
      KT_CASE(test_public_settings_escaped_string),
      KT_CASE(test_loose_polling),
      KT_CASE(test_loose_booleans),
      KT_CASE(test_observed_single_string),
      KT_CASE(test_auth_inside_secrets_management),
      KT_CASE(test_client_id_kinds),
      KT_CASE(test_url_normalisation),
      KT_CASE(test_msi_endpoint_forms),
      KT_CASE(test_msi_endpoint_query_and_empty),
      KT_CASE(test_every_cloud_suffix),
      KT_CASE(test_managed_hsm_refused),
      KT_CASE(test_store_mapping),
      KT_CASE(test_store_name_ignored_with_folder),
      KT_CASE(test_default_store_root),
      KT_CASE(test_per_certificate_store_overrides),
      KT_CASE(test_unknown_keys_warn),
      KT_CASE(test_duplicates_allowed_in_other_stores),
      KT_CASE(test_bad_envelopes),
      KT_CASE(test_bad_secrets_management),
      KT_CASE(test_bad_authentication),
      KT_CASE(test_to_json_canonical),
      KT_CASE(test_to_json_stable),
      KT_CASE(test_to_json_full),
      KT_CASE(test_load),
      KT_CASE(test_log_names_shape_not_secrets),
  };
  /* Lines go to a private log file (read back by the last case), none to stderr. */
  if (!(log_dir = kt_tmpdir()) || kvvm_log_open(log_dir, "test") != KVVM_OK)
    return 1;
  kvvm_log_set_stderr_level((enum kvvm_log_level)(KVVM_LOG_ERR + 1));
  int rc = KT_RUN("settings", cases);
  kvvm_log_close();
  kt_rmtree(log_dir);
  free(log_dir);
  return rc;
}
