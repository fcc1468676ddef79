/* Settings keys of kvvm's own (beyond Microsoft's schema), and reporting every problem. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kt.h"
#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/paths.h"
#include "kvvm/settings.h"

static enum kvvm_err parse(const char *sms_extra, struct kvvm_config **cfg, char *why, size_t n)
{
  char text[1024];
  snprintf(text, sizeof(text),
           "{\"runtimeSettings\":[{\"handlerSettings\":{\"publicSettings\":{"
           "\"secretsManagementSettings\":{%s\"observedCertificates\":"
           "[\"https://vault1.vault.azure.net/secrets/c\"]}}}}]}",
           sms_extra);
  struct kvvm_settings_opts opts = {.default_store_root = "/store"};
  return kvvm_settings_parse(text, strlen(text), &opts, cfg, why, n);
}

static void expiry_warning_days(void)
{
  struct kvvm_config *cfg = NULL;
  char why[512] = "";
  KT_CHECK(parse("", &cfg, why, sizeof(why)) == KVVM_OK && cfg->expiry_warning_days == 30);
  kvvm_config_free(cfg);
  KT_CHECK(parse("\"expiryWarningInDays\":\"14\",", &cfg, why, sizeof(why)) == KVVM_OK &&
           cfg->expiry_warning_days == 14);
  kvvm_config_free(cfg);
  KT_CHECK(parse("\"expiryWarningInDays\":0,", &cfg, why, sizeof(why)) == KVVM_OK &&
           cfg->expiry_warning_days == 0);
  kvvm_config_free(cfg);
  cfg = NULL;
  KT_CHECK(parse("\"expiryWarningInDays\":400,", &cfg, why, sizeof(why)) == KVVM_E_SETTINGS);
  KT_CONTAINS(why, "secretsManagementSettings.expiryWarningInDays: 400 is outside 0-365 days");
  KT_CHECK(parse("\"expiryWarningInDays\":\"soon\",", &cfg, why, sizeof(why)) == KVVM_E_SETTINGS);
  KT_CONTAINS(why, "expected a whole number of days from 0 to 365");
  KT_CHECK(cfg == NULL);
}

/* metricsTextfileDir: the system's default while it exists, a named absolute folder, or
 * off; a relative path or another type is refused naming the key. */
static void metrics_textfile_dir(void)
{
  struct kvvm_config *cfg = NULL;
  char why[512] = "", extra[300];
  const char *dflt = kvvm_paths_metrics_dir();
  const char *abs = kvvm_path_is_absolute("/m") ? "/srv/prom" : "C:\\\\prom";
  KT_CHECK(parse("", &cfg, why, sizeof(why)) == KVVM_OK);
  KT_CHECK(dflt ? cfg->metrics_if_exists && strcmp(cfg->metrics_dir, dflt) == 0
                : !cfg->metrics_dir && !cfg->metrics_if_exists);
  kvvm_config_free(cfg);
  snprintf(extra, sizeof extra, "\"metricsTextfileDir\":\"%s\",", abs);
  KT_CHECK(parse(extra, &cfg, why, sizeof(why)) == KVVM_OK && !cfg->metrics_if_exists);
  KT_CHECK(cfg && cfg->metrics_dir && strchr(cfg->metrics_dir, 'p'));
  kvvm_config_free(cfg);
  KT_CHECK(parse("\"metricsTextfileDir\":false,", &cfg, why, sizeof(why)) == KVVM_OK &&
           !cfg->metrics_dir);
  kvvm_config_free(cfg);
  KT_CHECK(parse("\"metricsTextfileDir\":\"\",", &cfg, why, sizeof(why)) == KVVM_OK &&
           !cfg->metrics_dir);
  kvvm_config_free(cfg);
  cfg = NULL;
  KT_CHECK(parse("\"metricsTextfileDir\":\"prom\",", &cfg, why, sizeof(why)) ==
           KVVM_E_SETTINGS && cfg == NULL);
  KT_CONTAINS(why, "secretsManagementSettings.metricsTextfileDir: \"prom\" is not an "
                   "absolute folder path");
  KT_CHECK(parse("\"metricsTextfileDir\":9100,", &cfg, why, sizeof(why)) == KVVM_E_SETTINGS);
  KT_CONTAINS(why, "metricsTextfileDir: got a number, expected the absolute path of a folder");
  KT_CHECK(parse("\"metricsTextfileDir\":true,", &cfg, why, sizeof(why)) ==
           (dflt ? KVVM_OK : KVVM_E_SETTINGS));
  kvvm_config_free(cfg);
}

/* One certificate object with cert_extra after its url (the third, so the key path has an
 * index that is not 0). */
static enum kvvm_err parse_cert(const char *cert_extra, struct kvvm_config **cfg, char *why,
                                size_t n)
{
  char text[1024];
  snprintf(text, sizeof(text),
           "{\"runtimeSettings\":[{\"handlerSettings\":{\"publicSettings\":{"
           "\"secretsManagementSettings\":{\"observedCertificates\":["
           "{\"url\":\"https://vault1.vault.azure.net/secrets/a\"},"
           "{\"url\":\"https://vault1.vault.azure.net/secrets/b\"},"
           "{\"url\":\"https://vault1.vault.azure.net/secrets/c\"%s}]}}}}]}",
           cert_extra);
  struct kvvm_settings_opts opts = {.default_store_root = "/store"};
  *cfg = NULL;
  return kvvm_settings_parse(text, strlen(text), &opts, cfg, why, n);
}

/* fileLayout: certbot or csi in any case; absent is none and keeps the canonical form of
 * settings written before the key (no change seen on upgrade); anything else is refused
 * naming the key path, the value and both words. */
static void file_layout(void)
{
  struct kvvm_config *cfg = NULL;
  char why[512] = "", *json;
  KT_CHECK(parse_cert("", &cfg, why, sizeof why) == KVVM_OK);
  KT_CHECK(cfg && cfg->certs[2].layout == KVVM_LAYOUT_NONE);
  json = cfg ? kvvm_config_to_json(cfg) : NULL;
  KT_CHECK(json && !strstr(json, "fileLayout"));
  free(json);
  kvvm_config_free(cfg);
  KT_CHECK(parse_cert(",\"fileLayout\":\"certbot\"", &cfg, why, sizeof why) == KVVM_OK);
  KT_CHECK(cfg && cfg->certs[2].layout == KVVM_LAYOUT_CERTBOT &&
           cfg->certs[0].layout == KVVM_LAYOUT_NONE);
  json = cfg ? kvvm_config_to_json(cfg) : NULL;
  KT_CONTAINS(json, "\"fileLayout\":\"certbot\"");
  free(json);
  kvvm_config_free(cfg);
  KT_CHECK(parse_cert(",\"fileLayout\":\"CSI\"", &cfg, why, sizeof why) == KVVM_OK);
  KT_CHECK(cfg && cfg->certs[2].layout == KVVM_LAYOUT_CSI);
  kvvm_config_free(cfg);
  KT_CHECK(parse_cert(",\"fileLayout\":\"nginx\"", &cfg, why, sizeof why) == KVVM_E_SETTINGS);
  KT_CONTAINS(why, "secretsManagementSettings.observedCertificates[2].fileLayout: \"nginx\" is "
                   "not a file layout; expected \"certbot\" (cert.pem, chain.pem, fullchain.pem, "
                   "privkey.pem) or \"csi\" (<name>.crt and <name>.key)");
  KT_CHECK(parse_cert(",\"fileLayout\":true", &cfg, why, sizeof why) == KVVM_E_SETTINGS);
  KT_CONTAINS(why, "observedCertificates[2].fileLayout: got a boolean, expected \"certbot\"");
  KT_CHECK(cfg == NULL);
}

/* Two bad certificates: both reported, one per line, counted. */
static void every_problem(void)
{
  const char *text =
      "{\"runtimeSettings\":[{\"handlerSettings\":{\"publicSettings\":{"
      "\"secretsManagementSettings\":{\"observedCertificates\":["
      "\"http://vault1.vault.azure.net/secrets/a\",\"https://vault2.vault.azure.net/certificates/b\","
      "\"https://vault3.vault.azure.net/secrets/c\"]}}}}]}";
  struct kvvm_settings_opts opts = {.default_store_root = "/store"};
  struct kvvm_config *cfg = NULL;
  char why[1024] = "";
  KT_CHECK(kvvm_settings_parse(text, strlen(text), &opts, &cfg, why, sizeof(why)) ==
           KVVM_E_SETTINGS);
  KT_CONTAINS(why, "2 problems:\n");
  KT_CONTAINS(why, "observedCertificates[0]");
  KT_CONTAINS(why, "\nsecretsManagementSettings.observedCertificates[1]");
  KT_CHECK(strstr(why, "observedCertificates[2]") == NULL);
}

/* Forty bad certificates do not fit in 1024 bytes: whole lines only, and a last line saying
 * how many more there are, so the count adds up and no problem is cut in half. */
static void problems_beyond_the_buffer(void)
{
  char text[8192], why[1024] = "";
  size_t n = (size_t)snprintf(text, sizeof(text),
                              "{\"runtimeSettings\":[{\"handlerSettings\":{\"publicSettings\":{"
                              "\"secretsManagementSettings\":{\"observedCertificates\":[");
  for (int i = 0; i < 40; i++)
    n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\"http://v.vault.azure.net/secrets/c%d\"",
                          i ? "," : "", i);
  snprintf(text + n, sizeof(text) - n, "]}}}}]}");
  struct kvvm_settings_opts opts = {.default_store_root = "/store"};
  struct kvvm_config *cfg = NULL;
  KT_CHECK(kvvm_settings_parse(text, strlen(text), &opts, &cfg, why, sizeof(why)) ==
           KVVM_E_SETTINGS);
  KT_CONTAINS(why, "40 problems:\n");
  const char *more = strstr(why, "\n(and ");
  KT_CHECK(more != NULL);
  int shown = 0, rest = 0;
  for (const char *l = strchr(why, '\n'); l && l < more; l = strchr(l + 1, '\n'))
    shown += strncmp(l + 1, "secretsManagementSettings.observedCertificates[", 47) == 0 &&
             strstr(l + 1, "https://") != NULL;
  KT_CHECK(more && sscanf(more, "\n(and %d more not shown here", &rest) == 1);
  KT_CHECK(shown > 0 && shown + rest == 40);
}

/* Parse text with quiet as given; returns what the log wrote to stderr meanwhile. */
static char *parse_logged(const char *text, bool quiet, struct kvvm_config **cfg)
{
  static char buf[2048];
  char why[512] = "";
  struct kvvm_settings_opts opts = {.default_store_root = "/store", .quiet = quiet};
  FILE *f = tmpfile();
  int saved = dup(2);
  fflush(stderr);
  dup2(fileno(f), 2);
  kvvm_log_set_stderr_level(KVVM_LOG_INFO);
  KT_CHECK(kvvm_settings_parse(text, strlen(text), &opts, cfg, why, sizeof why) == KVVM_OK);
  kvvm_log_set_stderr_level(KVVM_LOG_WARN);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  rewind(f);
  buf[fread(buf, 1, sizeof buf - 1, f)] = '\0';
  fclose(f);
  return buf;
}

/* kvvmd's pass worker reads the settings again every pass: quietly, with the same result. */
static void quiet_reads_the_same(void)
{
  const char *text = "{\"runtimeSettings\":[{\"handlerSettings\":{\"publicSettings\":{"
                     "\"secretsManagementSettings\":{\"pollingIntervalInS\":5,"
                     "\"observedCertificates\":[\"https://vault1.vault.azure.net/secrets/c\"]}}}}]}";
  struct kvvm_config *loud = NULL, *quiet = NULL;
  KT_CONTAINS(parse_logged(text, false, &loud), "settings: ");
  KT_CHECK(strcmp(parse_logged(text, true, &quiet), "") == 0);
  KT_CHECK(loud && quiet && loud->polling_s == 60 && quiet->polling_s == 60);
  KT_CHECK(quiet && quiet->warnings && quiet->warnings[0] != NULL);
  kvvm_config_free(loud);
  kvvm_config_free(quiet);
}

int main(void)
{
  static const struct kt_case cases[] = {KT_CASE(expiry_warning_days), KT_CASE(metrics_textfile_dir),
                                         KT_CASE(file_layout), KT_CASE(every_problem),
                                         KT_CASE(problems_beyond_the_buffer),
                                         KT_CASE(quiet_reads_the_same)};
  return KT_RUN("settings_kvvm", cases);
}
