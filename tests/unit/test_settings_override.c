/* A certificate's authenticationOverride (Microsoft's Linux v4 key): read with the rules and
 * words of authenticationSettings.msiClientId, per certificate, on Linux and Windows alike. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt.h"
#include "kvvm/settings.h"

#define GUID_A "00001111-aaaa-2222-bbbb-3333cccc4444"
#define GUID_B "11112222-bbbb-3333-cccc-4444dddd5555"
#define RES_ID                                                                          \
  "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg1/providers/"  \
  "Microsoft.ManagedIdentity/userAssignedIdentities/id-b"
#define CERT1 "secretsManagementSettings.observedCertificates[1]"
#define OV CERT1 ".authenticationOverride"

/* Two certificates, the second with override (a JSON value, real quotes), under
 * authenticationSettings.msiClientId = GUID_A. */
static enum kvvm_err parse(enum kvvm_store_kind kind, const char *override,
                           struct kvvm_config **cfg, char *why, size_t n)
{
  char text[2048];
  snprintf(text, sizeof(text),
           "{\"runtimeSettings\":[{\"handlerSettings\":{\"publicSettings\":{"
           "\"secretsManagementSettings\":{\"observedCertificates\":["
           "{\"url\":\"https://vault1.vault.azure.net/secrets/a\"},"
           "{\"url\":\"https://vault1.vault.azure.net/secrets/b\","
           "\"authenticationOverride\":%s}]},"
           "\"authenticationSettings\":{\"msiClientId\":\"" GUID_A "\"}}}}]}",
           override);
  struct kvvm_settings_opts opts = {.default_store_root = "/store", .store_kind = kind};
  *cfg = NULL;
  return kvvm_settings_parse(text, strlen(text), &opts, cfg, why, n);
}

static bool warned(const struct kvvm_config *cfg, const char *needle)
{
  for (char **w = cfg ? cfg->warnings : NULL; w && *w; w++)
    if (strstr(*w, needle))
      return true;
  return false;
}

/* A client id and a resource id, on both stores; the other certificate keeps the default. */
static void accepted(void)
{
  static const struct {
    const char *json, *id;
    enum kvvm_client_id_kind kind;
  } rows[] = {
      {"{\"msiClientId\":\"" GUID_B "\"}", GUID_B, KVVM_ID_CLIENT_ID},
      {"{\"msiClientId\":\"  " GUID_B " \"}", GUID_B, KVVM_ID_CLIENT_ID},
      {"{\"msiClientId\":\"" RES_ID "\"}", RES_ID, KVVM_ID_RESOURCE_ID},
  };
  for (int store = 0; store < 2; store++)
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
      struct kvvm_config *cfg;
      char why[512] = "";
      enum kvvm_store_kind kind = store ? KVVM_STORE_WINDOWS : KVVM_STORE_FILES;
      KT_CHECK(parse(kind, rows[i].json, &cfg, why, sizeof(why)) == KVVM_OK);
      if (!cfg)
        continue;
      KT_STREQ(cfg->msi_client_id, GUID_A);
      KT_CHECK(cfg->certs[0].id_key == NULL && cfg->certs[0].msi_client_id == NULL);
      KT_STREQ(cfg->certs[1].id_key, OV ".msiClientId");
      KT_STREQ(cfg->certs[1].msi_client_id, rows[i].id);
      KT_CHECK(cfg->certs[1].client_id_kind == rows[i].kind);
      KT_CHECK(!warned(cfg, "authenticationOverride"));
      kvvm_config_free(cfg);
    }
}

/* The same words as authenticationSettings.msiClientId, at the certificate's key path; one
 * bad override refuses the settings as a bad msiClientId does. */
static void refused(void)
{
  static const struct {
    const char *json, *want;
  } rows[] = {
      {"{\"msiClientId\":\"xxxxxx-xxxx\"}",
       OV ".msiClientId: \"xxxxxx-xxxx\" is neither a client id (a GUID such as "
       "00001111-aaaa-2222-bbbb-3333cccc4444) nor the resource id of a user-assigned identity"},
      {"{\"msiClientId\":\"/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/"
       "rg1/providers/Microsoft.Compute/virtualMachines/vm1\"}",
       OV ".msiClientId: \"/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/"
       "rg1/providers/Microsoft.Compute/virtualMachines/vm1\" is a resource id, but not of a "
       "user-assigned identity"},
      {"{\"msiClientId\":42}", OV ".msiClientId: got a number, expected a string"},
      {"\"" GUID_B "\"", OV ": got a string, expected an object with msiClientId"},
  };
  for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
    struct kvvm_config *cfg;
    char why[1024] = "";
    KT_CHECK(parse(KVVM_STORE_FILES, rows[i].json, &cfg, why, sizeof(why)) == KVVM_E_SETTINGS);
    KT_CHECK(cfg == NULL);
    KT_CONTAINS(why, rows[i].want);
  }
}

/* Unknown keys warned as elsewhere; msiEndpoint said to be unread; an empty client id is
 * the system-assigned identity (as for authenticationSettings); no client id, no override. */
static void lenient(void)
{
  struct kvvm_config *cfg;
  char why[512] = "";
  KT_CHECK(parse(KVVM_STORE_FILES, "{\"msiClientId\":\"" GUID_B "\",\"clientId\":\"x\"}", &cfg,
                 why, sizeof(why)) == KVVM_OK);
  KT_CHECK(warned(cfg, OV ": unknown key \"clientId\" ignored"));
  KT_CHECK(cfg && cfg->certs[1].id_key);
  kvvm_config_free(cfg);
  KT_CHECK(parse(KVVM_STORE_FILES, "{\"msiClientId\":\"" GUID_B "\",\"msiEndpoint\":"
                 "\"http://169.254.169.254/metadata/identity\"}", &cfg, why, sizeof(why)) ==
           KVVM_OK);
  KT_CHECK(warned(cfg, OV ".msiEndpoint: is not read: every certificate asks the identity "
                       "endpoint of authenticationSettings; ignored"));
  kvvm_config_free(cfg);
  KT_CHECK(parse(KVVM_STORE_FILES, "{\"msiClientId\":\"\"}", &cfg, why, sizeof(why)) == KVVM_OK);
  KT_CHECK(warned(cfg, OV ".msiClientId: is empty; the VM's system-assigned identity is used"));
  KT_CHECK(cfg && cfg->certs[1].id_key && cfg->certs[1].msi_client_id == NULL);
  kvvm_config_free(cfg);
  KT_CHECK(parse(KVVM_STORE_FILES, "{}", &cfg, why, sizeof(why)) == KVVM_OK);
  KT_CHECK(warned(cfg, OV ": names no msiClientId; ignored"));
  KT_CHECK(cfg && cfg->certs[1].id_key == NULL);
  kvvm_config_free(cfg);
}

/* The override is part of what the settings mean (a change is a change); settings without
 * one keep the canonical form they had before the key existed. */
static void canonical(void)
{
  struct kvvm_config *a, *b;
  char why[512] = "";
  KT_CHECK(parse(KVVM_STORE_FILES, "{\"msiClientId\":\"" GUID_B "\"}", &a, why, sizeof(why)) ==
           KVVM_OK);
  KT_CHECK(parse(KVVM_STORE_FILES, "{\"msiClientId\":\"" RES_ID "\"}", &b, why, sizeof(why)) ==
           KVVM_OK);
  char *ja = kvvm_config_to_json(a), *jb = kvvm_config_to_json(b);
  KT_CONTAINS(ja, "\"authenticationOverride\":{\"msiClientId\":\"" GUID_B "\","
                  "\"msiClientIdKind\":\"clientId\"}");
  KT_CHECK(ja && jb && strcmp(ja, jb) != 0);
  /* the first certificate has none, and says nothing about it */
  const char *first = ja ? strstr(ja, "authenticationOverride") : NULL;
  KT_CHECK(first && !strstr(first + 1, "authenticationOverride"));
  free(ja);
  free(jb);
  kvvm_config_free(a);
  kvvm_config_free(b);
}

int main(void)
{
  static const struct kt_case cases[] = {KT_CASE(accepted), KT_CASE(refused), KT_CASE(lenient),
                                         KT_CASE(canonical)};
  return KT_RUN("settings_override", cases);
}
