/* Outcomes to status: what the agent and the dependents see in each situation. */
#include <stdlib.h>
#include <string.h>

#include "kt.h"
#include "kvvm/mem.h"
#include "kvvm/report.h"

#define NOW 1800000000

static char url_a[] = "https://v1.vault.azure.net/secrets/a";
static char url_b[] = "https://v1.vault.azure.net/secrets/b";
static char url_c[] = "https://v1.vault.azure.net/secrets/c";
static struct kvvm_cert_cfg certs[3] = {{.url = url_a}, {.url = url_b}, {.url = url_c}};

static struct kvvm_config config(bool require)
{
  return (struct kvvm_config){.require_initial_sync = require, .certs = certs, .n_certs = 3,
                              .expiry_warning_days = 30};
}

static struct kvvm_cert_outcome installed(const char *v, time_t not_after)
{
  struct kvvm_cert_outcome o = {.state = KVVM_CERT_INSTALLED, .in_place = true,
                                .not_after = not_after};
  snprintf(o.version, sizeof(o.version), "%s", v);
  snprintf(o.thumbprint, sizeof(o.thumbprint), "AB12");
  return o;
}

static struct kvvm_cert_outcome failing(enum kvvm_cert_state s, enum kvvm_err e, const char *why)
{
  struct kvvm_cert_outcome o = {.state = s, .err = e};
  kvvm_outcome_say(&o, "%s", why);
  return o;
}

static void all_installed_is_success(void)
{
  struct kvvm_config cfg = config(true);
  struct kvvm_cert_outcome out[3] = {installed("v1", NOW + 90 * 86400),
                                     installed("v2", NOW + 90 * 86400),
                                     installed("v3", NOW + 90 * 86400)};
  struct kvvm_report r;
  kvvm_report_build(&cfg, out, NOW, &r);
  KT_CHECK(r.status.value == KVVM_ST_SUCCESS);
  KT_STREQ(r.status.message, "3 of 3 certificate(s) installed");
  KT_CHECK(r.status.n_subs == 3 && r.subs[1].value == KVVM_ST_SUCCESS);
  KT_CONTAINS(r.subs[1].message, "version v2, thumbprint AB12, expires 2027-");
  kvvm_report_clear(&r);
}

/* A note (a chain that does not build, renewal links) follows the version in the substatus
 * of an installed certificate, which stays a success. */
static void note_follows_version(void)
{
  struct kvvm_config cfg = config(false);
  struct kvvm_cert_outcome out[3] = {installed("v1", NOW + 90 * 86400),
                                     installed("v2", NOW + 90 * 86400),
                                     installed("v3", NOW + 90 * 86400)};
  struct kvvm_report r;
  kvvm_outcome_note(&out[1], "chain incomplete: the issuer \"CN=I\" of \"CN=w\" is missing");
  kvvm_report_build(&cfg, out, NOW, &r);
  KT_CHECK(r.status.value == KVVM_ST_SUCCESS && r.subs[1].value == KVVM_ST_SUCCESS);
  KT_CONTAINS(r.subs[1].message, " UTC; chain incomplete: the issuer \"CN=I\" of \"CN=w\" is "
              "missing");
  KT_CHECK(strstr(r.subs[0].message, "chain") == NULL);
  kvvm_report_clear(&r);
  kvvm_outcomes_clear(out, 3);
}

/* requireInitialSync: access problems keep dependents waiting, and say why. */
static void pending_is_transitioning(void)
{
  struct kvvm_config cfg = config(true);
  struct kvvm_cert_outcome out[3] = {
      installed("v1", NOW + 90 * 86400),
      failing(KVVM_CERT_PENDING, KVVM_E_AUTH, "403: the identity lacks get on secrets"),
      installed("v3", NOW + 90 * 86400)};
  struct kvvm_report r;
  kvvm_report_build(&cfg, out, NOW, &r);
  KT_CHECK(r.status.value == KVVM_ST_TRANSITIONING);
  KT_CONTAINS(r.status.message, "waiting for 1 of 3");
  KT_CONTAINS(r.status.message, "secrets/b: 403: the identity lacks get on secrets");
  KT_CHECK(r.subs[1].value == KVVM_ST_ERROR);
  kvvm_report_clear(&r);
  /* Without requireInitialSync polling has started: success, the failure in its substatus. */
  cfg.require_initial_sync = false;
  kvvm_report_build(&cfg, out, NOW, &r);
  KT_CHECK(r.status.value == KVVM_ST_SUCCESS);
  KT_CONTAINS(r.status.message, "2 of 3 certificate(s) installed; some have errors");
  kvvm_report_clear(&r);
  kvvm_outcomes_clear(out, 3);
}

/* Content that cannot be installed fails dependents at once. */
static void content_failure_is_error(void)
{
  struct kvvm_config cfg = config(true);
  struct kvvm_cert_outcome out[3] = {
      failing(KVVM_CERT_PENDING, KVVM_E_NET, "vault unreachable"),
      failing(KVVM_CERT_FAILED, KVVM_E_CERT, "the private key does not match the certificate"),
      installed("v3", NOW + 90 * 86400)};
  struct kvvm_report r;
  kvvm_report_build(&cfg, out, NOW, &r);
  KT_CHECK(r.status.value == KVVM_ST_ERROR);
  KT_CONTAINS(r.status.message, "1 certificate(s) cannot be installed");
  KT_CONTAINS(r.status.message, "secrets/b: the private key does not match");
  /* Codes name the cause (kvvm's error table), for the agent and for scripts reading them. */
  KT_CHECK(r.status.code == kvvm_err_status_code(KVVM_E_CERT));
  KT_CHECK(r.subs[0].code == kvvm_err_status_code(KVVM_E_NET) && r.subs[2].code == 0);
  kvvm_report_clear(&r);
  kvvm_outcomes_clear(&out[1], 1);
  out[1] = failing(KVVM_CERT_FAILED, KVVM_E_TLS, "TLS verification failed");
  kvvm_report_build(&cfg, out, NOW, &r);
  KT_CHECK(r.status.code == 10 && r.subs[1].code == 10);
  kvvm_report_clear(&r);
  kvvm_outcomes_clear(out, 3);
}

static void expiry_flagged(void)
{
  struct kvvm_config cfg = config(false);
  struct kvvm_cert_outcome out[3] = {installed("v1", NOW + 10 * 86400 + 60),
                                     installed("v2", NOW - 60), installed("v3", NOW + 31 * 86400)};
  struct kvvm_report r;
  kvvm_report_build(&cfg, out, NOW, &r);
  KT_CONTAINS(r.subs[0].message, "expires in 10 day(s) and Key Vault has no newer version");
  KT_CONTAINS(r.subs[1].message, "EXPIRED");
  KT_CHECK(strstr(r.subs[2].message, "no newer version") == NULL);
  kvvm_report_clear(&r);
  /* expiryWarningInDays moves the threshold; 0 turns the early warning off. */
  cfg.expiry_warning_days = 45;
  kvvm_report_build(&cfg, out, NOW, &r);
  KT_CONTAINS(r.subs[2].message, "expires in 31 day(s)");
  kvvm_report_clear(&r);
  cfg.expiry_warning_days = 0;
  kvvm_report_build(&cfg, out, NOW, &r);
  KT_CHECK(strstr(r.subs[0].message, "no newer version") == NULL);
  KT_CONTAINS(r.subs[1].message, "EXPIRED");
  kvvm_report_clear(&r);
}

/* A failing renewal keeps the installed version, and says so. */
static void old_version_stays(void)
{
  struct kvvm_config cfg = config(false);
  struct kvvm_cert_outcome o = installed("v1", NOW + 90 * 86400);
  o.state = KVVM_CERT_INSTALLED;
  o.err = KVVM_E_NET;
  kvvm_outcome_say(&o, "Key Vault answered 503 four times");
  struct kvvm_cert_outcome out[3] = {o, installed("v2", NOW + 90 * 86400),
                                     installed("v3", NOW + 90 * 86400)};
  struct kvvm_report r;
  kvvm_report_build(&cfg, out, NOW, &r);
  KT_CHECK(r.subs[0].value == KVVM_ST_ERROR);
  KT_CONTAINS(r.subs[0].message, "version v1");
  KT_CONTAINS(r.subs[0].message, "503 four times");
  kvvm_report_clear(&r);
  kvvm_outcomes_clear(out, 1);   /* o's text, now out[0]'s */
}

int main(void)
{
  static const struct kt_case cases[] = {KT_CASE(all_installed_is_success), KT_CASE(note_follows_version),
                                         KT_CASE(pending_is_transitioning),
                                         KT_CASE(content_failure_is_error), KT_CASE(expiry_flagged),
                                         KT_CASE(old_version_stays)};
  return KT_RUN("report", cases);
}
