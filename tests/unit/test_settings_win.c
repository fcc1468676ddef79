/* Settings read for the Windows certificate store (store_kind KVVM_STORE_WINDOWS): where a
 * certificate goes, what a folder location gets, and the Linux-only keys. Runs natively: the
 * settings module is portable and only the store kind differs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt.h"
#include "kvvm/settings.h"

static const struct kvvm_settings_opts win = {.default_store_root = "/store",
                                              .store_kind = KVVM_STORE_WINDOWS};

/* secretsManagementSettings with sms_extra before observedCertificates, and one v3.0
 * certificate object holding cert_extra after its url. */
static enum kvvm_err parse(const struct kvvm_settings_opts *opts, const char *sms_extra,
                           const char *cert_extra, struct kvvm_config **cfg, char *why,
                           size_t n)
{
  char text[2048];
  snprintf(text, sizeof(text),
           "{\"runtimeSettings\":[{\"handlerSettings\":{\"publicSettings\":{"
           "\"secretsManagementSettings\":{%s\"observedCertificates\":"
           "[{\"url\":\"https://vault1.vault.azure.net/secrets/c\"%s}]}}}}]}",
           sms_extra, cert_extra);
  *cfg = NULL;
  return kvvm_settings_parse(text, strlen(text), opts, cfg, why, n);
}

static bool has_warning(const struct kvvm_config *cfg, const char *a, const char *b)
{
  for (char **w = cfg->warnings; w && *w; w++)
    if (strstr(*w, a) && strstr(*w, b))
      return true;
  return false;
}

static void default_is_local_machine_my(void)
{
  struct kvvm_config *cfg;
  char why[512] = "";
  KT_CHECK(parse(&win, "", "", &cfg, why, sizeof(why)) == KVVM_OK);
  KT_STREQ(cfg ? cfg->certs[0].store_dir : NULL, "LocalMachine\\MY");
  KT_CHECK(cfg && cfg->certs[0].store_name == NULL &&
           cfg->certs[0].location == KVVM_LOC_LOCAL_MACHINE);
  kvvm_config_free(cfg);
}

/* MY in any case is one store, one record key; other names keep the case given. */
static void store_names(void)
{
  struct kvvm_config *cfg;
  char why[512] = "";
  KT_CHECK(parse(&win, "", ",\"certificateStoreName\":\"my\"", &cfg, why, sizeof(why)) ==
           KVVM_OK);
  KT_STREQ(cfg ? cfg->certs[0].store_dir : NULL, "LocalMachine\\MY");
  kvvm_config_free(cfg);
  KT_CHECK(parse(&win, "", ",\"certificateStoreName\":\"TrustedPeople\","
                 "\"certificateStoreLocation\":\"CurrentUser\"", &cfg, why, sizeof(why)) ==
           KVVM_OK);
  KT_STREQ(cfg ? cfg->certs[0].store_dir : NULL, "CurrentUser\\TrustedPeople");
  kvvm_config_free(cfg);
  KT_CHECK(parse(&win, "\"certificateStoreName\":\"Remote Desktop\",", "", &cfg, why,
                 sizeof(why)) == KVVM_OK);
  KT_STREQ(cfg ? cfg->certs[0].store_dir : NULL, "LocalMachine\\Remote Desktop");
  kvvm_config_free(cfg);
  KT_CHECK(parse(&win, "", ",\"certificateStoreName\":\"My\\\\Root\"", &cfg, why,
                 sizeof(why)) == KVVM_E_SETTINGS);
  KT_CONTAINS(why, "observedCertificates[0].certificateStoreName: \"My\\\\Root\" is not a "
              "certificate store name");
}

/* A Linux folder (or a Windows one) is an error naming the key, the value and what Windows
 * expects; the same settings on Linux use the folder. */
static void folder_location_is_an_error(void)
{
  struct kvvm_config *cfg;
  char why[512] = "";
  const char *loc = ",\"certificateStoreLocation\":\"/var/lib/certs\"";
  KT_CHECK(parse(&win, "", loc, &cfg, why, sizeof(why)) == KVVM_E_SETTINGS && !cfg);
  KT_CONTAINS(why, "secretsManagementSettings.observedCertificates[0].certificateStoreLocation: "
              "\"/var/lib/certs\" is a folder; on Windows certificates go to the certificate "
              "store: expected \"LocalMachine\" or \"CurrentUser\" (a folder is a store "
              "location on Linux only)");
  KT_CHECK(parse(&win, "\"certificateStoreLocation\":\"C:\\\\certs\",", "", &cfg, why,
                 sizeof(why)) == KVVM_E_SETTINGS);
  KT_CONTAINS(why, "secretsManagementSettings.certificateStoreLocation: \"C:\\\\certs\" is a "
              "folder");
  KT_CHECK(parse(&win, "", ",\"certificateStoreLocation\":\"LocalComputer\"", &cfg, why,
                 sizeof(why)) == KVVM_E_SETTINGS);
  KT_CONTAINS(why, "\"LocalComputer\" is not a store location; on Windows certificates go to "
              "the certificate store: expected \"LocalMachine\" or \"CurrentUser\"");
  KT_CHECK(strstr(why, "Linux only") == NULL);
  struct kvvm_settings_opts files = {.default_store_root = "/store"};
  KT_CHECK(parse(&files, "", loc, &cfg, why, sizeof(why)) == KVVM_OK);
  KT_STREQ(cfg ? cfg->certs[0].store_dir : NULL, "/var/lib/certs");
  kvvm_config_free(cfg);
}

/* acls, aclEnabled and customSymbolicLinkName: warnings that say so, nothing applied (not
 * even checked: an acls value Linux would refuse is ignored too). */
static void linux_only_keys_warn(void)
{
  struct kvvm_config *cfg;
  char why[512] = "";
  KT_CHECK(parse(&win, "\"aclEnabled\":true,",
                 ",\"customSymbolicLinkName\":\"app1\",\"acls\":[{\"user\":\"-bad\"}]", &cfg,
                 why, sizeof(why)) == KVVM_OK);
  if (!cfg)
    return;
  KT_CHECK(cfg->certs[0].link_name == NULL && cfg->certs[0].n_acls == 0);
  KT_CHECK(has_warning(cfg, "observedCertificates[0].customSymbolicLinkName:",
                       "is Linux-only; ignored on Windows"));
  KT_CHECK(has_warning(cfg, "observedCertificates[0].acls:", "no one is granted read access"));
  KT_CHECK(has_warning(cfg, "secretsManagementSettings.aclEnabled:",
                       "is Linux-only; ignored on Windows"));
  kvvm_config_free(cfg);
}

/* fileLayout: the certificate store has no files to shape; said once, nothing applied, the
 * value not checked (one template serves Linux and Windows VMs). */
static void file_layout_no_effect(void)
{
  struct kvvm_config *cfg;
  char why[512] = "";
  KT_CHECK(parse(&win, "", ",\"fileLayout\":\"nonsense\"", &cfg, why, sizeof(why)) == KVVM_OK);
  if (!cfg)
    return;
  KT_CHECK(cfg->certs[0].layout == KVVM_LAYOUT_NONE);
  KT_CHECK(has_warning(cfg, "observedCertificates[0].fileLayout:",
                       "has no effect on Windows: certificates go to the certificate store"));
  kvvm_config_free(cfg);
}

/* accounts and linkOnRenewal stay in the config on Windows, each certificate's copy of
 * linkOnRenewal too (the store applies both), with no warning. */
static void accounts_and_link_on_renewal(void)
{
  struct kvvm_config *cfg;
  char why[512] = "";
  KT_CHECK(parse(&win, "\"linkOnRenewal\":true,", ",\"accounts\":[\"Network Service\"]", &cfg,
                 why, sizeof(why)) == KVVM_OK);
  if (!cfg)
    return;
  KT_STREQ(cfg->certs[0].accounts[0], "Network Service");
  KT_CHECK(cfg->link_on_renewal && cfg->certs[0].link_on_renewal);
  KT_CHECK(!has_warning(cfg, "linkOnRenewal", ""));
  kvvm_config_free(cfg);
  KT_CHECK(parse(&win, "\"linkOnRenewal\":false,", "", &cfg, why, sizeof(why)) == KVVM_OK);
  KT_CHECK(cfg && !cfg->certs[0].link_on_renewal && !has_warning(cfg, "linkOnRenewal", ""));
  kvvm_config_free(cfg);
}

/* Two vaults with the same first label in one store are two certificates (no file name to
 * share on Windows); one URL listed twice into one store, in any case of the store name, is
 * refused. */
static void duplicates(void)
{
  struct kvvm_config *cfg = NULL;
  char why[512] = "";
  const char *two =
      "{\"runtimeSettings\":[{\"handlerSettings\":{\"publicSettings\":{"
      "\"secretsManagementSettings\":{\"observedCertificates\":["
      "\"https://vault1.vault.azure.net/secrets/c\",\"https://vault1.vault.azure.cn/secrets/c\"]"
      "}}}}]}";
  KT_CHECK(kvvm_settings_parse(two, strlen(two), &win, &cfg, why, sizeof(why)) == KVVM_OK);
  kvvm_config_free(cfg);
  cfg = NULL;
  const char *same =
      "{\"runtimeSettings\":[{\"handlerSettings\":{\"publicSettings\":{"
      "\"secretsManagementSettings\":{\"observedCertificates\":["
      "{\"url\":\"https://vault1.vault.azure.net/secrets/c\",\"certificateStoreName\":\"Root\"},"
      "{\"url\":\"https://vault1.vault.azure.net/secrets/c\",\"certificateStoreName\":\"ROOT\"}]"
      "}}}}]}";
  KT_CHECK(kvvm_settings_parse(same, strlen(same), &win, &cfg, why, sizeof(why)) ==
           KVVM_E_SETTINGS && !cfg);
  KT_CONTAINS(why, "observedCertificates[1]: https://vault1.vault.azure.net/secrets/c is already "
              "observed by observedCertificates[0] into the same store");
}

int main(void)
{
  static const struct kt_case cases[] = {
      {"default_is_local_machine_my", default_is_local_machine_my},
      {"store_names", store_names},
      {"folder_location_is_an_error", folder_location_is_an_error},
      {"linux_only_keys_warn", linux_only_keys_warn},
      {"file_layout_no_effect", file_layout_no_effect},
      {"accounts_and_link_on_renewal", accounts_and_link_on_renewal},
      {"duplicates", duplicates},
  };
  return kt_main("settings_win", cases, sizeof(cases) / sizeof(cases[0]));
}
