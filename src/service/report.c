/* Outcomes in words. The top message stays short (the portal shows it; the agent cuts it at
 * 1 KiB); the detail is in the substatus of each certificate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/mem.h"
#include "kvvm/report.h"

static char *describe_installed(const struct kvvm_cert_outcome *o, time_t now, unsigned warn_days)
{
  char date[32] = "unknown";
  struct tm tm;
  if (o->not_after && gmtime_r(&o->not_after, &tm))
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", &tm);
  long days = o->not_after ? (long)((o->not_after - now) / 86400) : 0;
  const char *flag = "";
  char buf[128] = "";
  if (o->not_after && o->not_after <= now) {
    flag = "; EXPIRED and Key Vault has no newer version";
  } else if (o->not_after && days < (long)warn_days) {
    snprintf(buf, sizeof(buf), "; expires in %ld day(s) and Key Vault has no newer version", days);
    flag = buf;
  }
  return kvvm_xasprintf("version %s, thumbprint %s, expires %s%s%s%s%s%s", o->version,
                        o->thumbprint, date, flag, o->note ? "; " : "", o->note ? o->note : "",
                        o->err ? "; " : "", o->err ? kvvm_outcome_why(o) : "");
}

static char *describe_failed(const struct kvvm_cert_outcome *o)
{
  if (o->in_place)
    return kvvm_xasprintf("%s (version %s stays installed)", kvvm_outcome_why(o), o->version);
  return kvvm_xasprintf("%s", kvvm_outcome_why(o));
}

/* Append "url: why" items to the top message while they fit. */
static void list_items(char *top, size_t len, const struct kvvm_config *cfg,
                       const struct kvvm_cert_outcome *out, enum kvvm_cert_state want)
{
  size_t shown = 0, total = 0;
  for (size_t i = 0; i < cfg->n_certs; i++) {
    if (out[i].state != want)
      continue;
    total++;
    size_t used = strlen(top);
    if (used + strlen(cfg->certs[i].url) + strlen(kvvm_outcome_why(&out[i])) + 64 < len) {
      snprintf(top + used, len - used, "%s%s: %s", shown ? "; " : " ", cfg->certs[i].url,
               kvvm_outcome_why(&out[i]));
      shown++;
    }
  }
  if (shown < total) {
    size_t used = strlen(top);
    snprintf(top + used, len - used, "; and %zu more (see substatus)", total - shown);
  }
}

static size_t count(const struct kvvm_config *cfg, const struct kvvm_cert_outcome *out,
                    enum kvvm_cert_state s)
{
  size_t n = 0;
  for (size_t i = 0; i < cfg->n_certs; i++)
    n += out[i].state == s;
  return n;
}

/* The top-level code of a failed initial sync: the first failed certificate's cause. */
static enum kvvm_err first_failed_err(const struct kvvm_config *cfg,
                                      const struct kvvm_cert_outcome *out)
{
  for (size_t i = 0; i < cfg->n_certs; i++)
    if (out[i].state == KVVM_CERT_FAILED && out[i].err != KVVM_OK)
      return out[i].err;
  return KVVM_E_CERT;
}

static void top_level(const struct kvvm_config *cfg, const struct kvvm_cert_outcome *out,
                      struct kvvm_report *r)
{
  size_t n = cfg->n_certs, failed = count(cfg, out, KVVM_CERT_FAILED);
  size_t pending = count(cfg, out, KVVM_CERT_PENDING), errors = 0;
  for (size_t i = 0; i < n; i++)
    errors += out[i].err != KVVM_OK;
  r->status.value = KVVM_ST_SUCCESS;
  if (cfg->require_initial_sync && failed) {
    /* Waiting cannot fix content: dependents should fail now, not in 90 minutes. */
    r->status.value = KVVM_ST_ERROR;
    r->status.code = kvvm_err_status_code(first_failed_err(cfg, out));
    snprintf(r->top, sizeof(r->top), "%zu certificate(s) cannot be installed:", failed);
    list_items(r->top, sizeof(r->top), cfg, out, KVVM_CERT_FAILED);
  } else if (cfg->require_initial_sync && pending) {
    r->status.value = KVVM_ST_TRANSITIONING;
    snprintf(r->top, sizeof(r->top), "initial sync: waiting for %zu of %zu certificate(s), "
             "retrying:", pending, n);
    list_items(r->top, sizeof(r->top), cfg, out, KVVM_CERT_PENDING);
  } else {
    snprintf(r->top, sizeof(r->top), "%zu of %zu certificate(s) installed%s", n - pending - failed,
             n, errors ? "; some have errors (see substatus)" : "");
  }
}

void kvvm_report_build(const struct kvvm_config *cfg, const struct kvvm_cert_outcome *out,
                       time_t now, struct kvvm_report *r)
{
  size_t n = cfg->n_certs;
  memset(r, 0, sizeof(*r));
  r->subs = kvvm_xcalloc(n ? n : 1, sizeof(*r->subs));
  r->messages = kvvm_xcalloc(n + 1, sizeof(*r->messages));
  for (size_t i = 0; i < n; i++) {
    const struct kvvm_cert_outcome *o = &out[i];
    bool ok = o->state == KVVM_CERT_INSTALLED && o->err == KVVM_OK;
    r->messages[i] = o->state == KVVM_CERT_INSTALLED ? describe_installed(o, now, cfg->expiry_warning_days)
                                                     : describe_failed(o);
    /* The code says the cause (kvvm's error table: 4 access, 5 not found, 10 TLS, ...). */
    r->subs[i] = (struct kvvm_substatus){cfg->certs[i].url, ok ? KVVM_ST_SUCCESS : KVVM_ST_ERROR,
                                         ok ? 0 : kvvm_err_status_code(o->err ? o->err
                                                                              : KVVM_E_CERT),
                                         r->messages[i]};
  }
  top_level(cfg, out, r);
  r->status.operation = "Enable";
  r->status.message = r->top;
  r->status.subs = r->subs;
  r->status.n_subs = n;
}

void kvvm_report_clear(struct kvvm_report *r)
{
  kvvm_strv_free(r->messages);
  free(r->subs);
  memset(r, 0, sizeof(*r));
}
