/* The metrics file's text: label values escaped as the format wants, the error flag, series
 * only for what is known, and nothing of a certificate the settings no longer name. */
#include <stdlib.h>
#include <string.h>

#include "kt.h"
#include "kvvm/fileio.h"
#include "kvvm/metrics.h"

#define NOW 1800000000

static char url_a[] = "https://v1.vault.azure.net/secrets/a", url_b[] = "https://v1.vault.azure.net/secrets/b";
static char vault[] = "v1", sec_a[] = "a", sec_b[] = "b";
/* A folder with a backslash (Windows stores), a double quote and a line feed. */
static char dir_odd[] = "C:\\st\"o\nre", dir_plain[] = "/srv/certs";

static struct kvvm_cert_cfg certs[2] = {
    {.url = url_a, .vault_name = vault, .secret_name = sec_a, .store_dir = dir_odd},
    {.url = url_b, .vault_name = vault, .secret_name = sec_b, .store_dir = dir_plain}};

static struct kvvm_cert_outcome good(void)
{
  return (struct kvvm_cert_outcome){.state = KVVM_CERT_INSTALLED, .in_place = true,
                                    .not_after = NOW + 86400, .installed_at = NOW - 60,
                                    .checked_at = NOW - 5};
}

static const struct kvvm_pass_facts pass_ok = {.ended = NOW, .duration_ms = 1234, .ok = true};

static void escapes_label_values(void)
{
  struct kvvm_config cfg = {.certs = certs, .n_certs = 1};
  struct kvvm_cert_outcome out[1] = {good()};
  char *t = kvvm_metrics_render(&cfg, out, &pass_ok);
  KT_CONTAINS(t, "kvvm_certificate_expiry_timestamp_seconds{url=\"https://v1.vault.azure.net/"
                 "secrets/a\",vault=\"v1\",secret=\"a\",store_dir=\"C:\\\\st\\\"o\\nre\"} "
                 "1800086400\n");
  KT_CONTAINS(t, "kvvm_certificate_installed_timestamp_seconds{url=\"https://v1.vault.azure.net/"
                 "secrets/a\",vault=\"v1\",secret=\"a\",store_dir=\"C:\\\\st\\\"o\\nre\"} "
                 "1799999940\n");
  KT_CONTAINS(t, "# HELP kvvm_certificate_last_success_timestamp_seconds ");
  KT_CONTAINS(t, "# TYPE kvvm_certificate_last_success_timestamp_seconds gauge\n");
  KT_CONTAINS(t, "} 1799999995\n");
  KT_CONTAINS(t, "kvvm_pass_duration_seconds 1.234\n");
  KT_CONTAINS(t, "\nkvvm_pass_success 1\n");
  KT_CONTAINS(t, "\nkvvm_pass_timestamp_seconds 1800000000\n");
  KT_CHECK(!strstr(t, "\nre\""));   /* no raw line feed inside a label */
  free(t);
}

/* 0 for a certificate in order, 1 for one refused (pending, never installed: no time
 * series) and for one installed whose renewal failed. */
static void error_flag(void)
{
  struct kvvm_config cfg = {.certs = certs, .n_certs = 2};
  struct kvvm_cert_outcome out[2] = {good(), {.state = KVVM_CERT_PENDING, .err = KVVM_E_AUTH}};
  struct kvvm_pass_facts pass = pass_ok;
  bool due[2] = {true, true};
  char *t = kvvm_metrics_render(&cfg, out, &pass);
  KT_CONTAINS(t, "kvvm_certificate_error{url=\"https://v1.vault.azure.net/secrets/a\","
                 "vault=\"v1\",secret=\"a\",store_dir=\"C:\\\\st\\\"o\\nre\"} 0\n");
  KT_CONTAINS(t, "kvvm_certificate_error{url=\"https://v1.vault.azure.net/secrets/b\","
                 "vault=\"v1\",secret=\"b\",store_dir=\"/srv/certs\"} 1\n");
  KT_CHECK(!strstr(t, "kvvm_certificate_expiry_timestamp_seconds{url=\"https://v1.vault.azure."
                      "net/secrets/b\""));
  KT_CHECK(!strstr(t, "kvvm_certificate_last_success_timestamp_seconds{url=\"https://v1.vault."
                      "azure.net/secrets/b\""));
  free(t);
  out[1] = good();
  out[1].err = KVVM_E_NET;
  t = kvvm_metrics_render(&cfg, out, &pass);
  KT_CONTAINS(t, "secret=\"b\",store_dir=\"/srv/certs\"} 1\n");
  KT_CONTAINS(t, "kvvm_certificate_expiry_timestamp_seconds{url=\"https://v1.vault.azure.net/"
                 "secrets/b\"");
  free(t);
  kvvm_metrics_pass(&pass, 0, 2, due, out);
  KT_CHECK(!pass.ok);
  due[1] = false;   /* b was not in this pass: its old failure is not this pass's */
  kvvm_metrics_pass(&pass, 0, 2, due, out);
  KT_CHECK(pass.ok);
}

/* The file is made whole from the settings: a certificate they no longer name is absent. */
static void removed_certificate_absent(void)
{
  struct kvvm_config cfg = {.certs = certs, .n_certs = 2};
  struct kvvm_cert_outcome out[2] = {good(), good()};
  char *t = kvvm_metrics_render(&cfg, out, &pass_ok);
  KT_CONTAINS(t, "secret=\"b\"");
  free(t);
  cfg.certs = &certs[0];
  cfg.n_certs = 1;
  t = kvvm_metrics_render(&cfg, out, &pass_ok);
  KT_CHECK(!strstr(t, "secret=\"b\"") && !strstr(t, "/srv/certs"));
  KT_CONTAINS(t, "secret=\"a\"");
  KT_CONTAINS(t, "# TYPE kvvm_certificate_error gauge\n");
  free(t);
}

/* Settings that stop writing the file where it was (off, or another folder) remove it; the
 * same folder keeps it. */
static void retired_when_no_longer_asked(void)
{
  char *dir = kt_tmpdir(), *path = kvvm_path_join(dir, KVVM_METRICS_FILE), other[] = "/nowhere";
  struct kvvm_config old = {.metrics_dir = dir}, same = {.metrics_dir = dir},
                     moved = {.metrics_dir = other}, off = {0};
  KT_CHECK(kvvm_file_write_atomic(path, "x 1\n", 4, 0644) == KVVM_OK);
  kvvm_metrics_retire(&old, &same);
  KT_CHECK(kvvm_path_exists(path));
  kvvm_metrics_retire(NULL, &off);
  KT_CHECK(kvvm_path_exists(path));
  kvvm_metrics_retire(&old, &moved);
  KT_CHECK(!kvvm_path_exists(path));
  KT_CHECK(kvvm_file_write_atomic(path, "x 1\n", 4, 0644) == KVVM_OK);
  kvvm_metrics_retire(&old, &off);
  KT_CHECK(!kvvm_path_exists(path));
  kt_rmtree(dir);
  free(path);
  free(dir);
}

int main(void)
{
  static const struct kt_case cases[] = {KT_CASE(escapes_label_values), KT_CASE(error_flag),
                                         KT_CASE(removed_certificate_absent),
                                         KT_CASE(retired_when_no_longer_asked)};
  return KT_RUN("metrics", cases);
}
