/* Outcomes into Prometheus' text exposition format (version 0.0.4): one family at a time,
 * each with its HELP and TYPE lines and its samples together, as the format requires. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/clock.h"
#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/metrics.h"

#define METRICS_KEY "secretsManagementSettings.metricsTextfileDir"

struct buf {
  char *s;
  size_t len, cap;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(gnu_printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  if (n >= 0 && (size_t)n >= b->cap - b->len) {
    while ((size_t)n >= b->cap - b->len)
      b->cap *= 2;
    b->s = kvvm_xrealloc(b->s, b->cap);
    va_start(ap, fmt);
    n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
  }
  if (n > 0)
    b->len += (size_t)n;
}

static void put_char(struct buf *b, char c)
{
  if (b->len + 1 >= b->cap)
    b->s = kvvm_xrealloc(b->s, b->cap *= 2);
  b->s[b->len++] = c;
  b->s[b->len] = '\0';
}

/* A label value as the format wants it: backslash, double quote and line feed escaped. */
static void put_label(struct buf *b, const char *name, const char *value, const char *sep)
{
  put(b, "%s=\"", name);
  for (const char *p = value ? value : ""; *p; p++) {
    if (*p == '\\' || *p == '"' || *p == '\n')
      put_char(b, '\\');
    put_char(b, *p == '\n' ? 'n' : *p);
  }
  put(b, "\"%s", sep);
}

static void put_labels(struct buf *b, const struct kvvm_cert_cfg *cc)
{
  put(b, "{");
  put_label(b, "url", cc->url, ",");
  put_label(b, "vault", cc->vault_name, ",");
  put_label(b, "secret", cc->secret_name, ",");
  put_label(b, "store_dir", cc->store_dir, "}");
}

static void family(struct buf *b, const char *name, const char *help)
{
  put(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

/* What a family samples: a time (0: unknown, no sample), or the error flag. */
enum what { EXPIRY, LAST_SUCCESS, INSTALLED, ERROR_FLAG };

static long long sample(const struct kvvm_cert_outcome *o, enum what w)
{
  switch (w) {
  case EXPIRY:
    return o->in_place ? (long long)o->not_after : 0;
  case LAST_SUCCESS:
    return (long long)o->checked_at;
  case INSTALLED:
    return o->in_place ? (long long)o->installed_at : 0;
  case ERROR_FLAG:
    break;
  }
  return !(o->state == KVVM_CERT_INSTALLED && o->err == KVVM_OK);
}

static void cert_family(struct buf *b, const struct kvvm_config *cfg,
                        const struct kvvm_cert_outcome *out, enum what w)
{
  static const char *const names[] = {
      "kvvm_certificate_expiry_timestamp_seconds", "kvvm_certificate_last_success_timestamp_seconds",
      "kvvm_certificate_installed_timestamp_seconds", "kvvm_certificate_error"};
  static const char *const helps[] = {
      "When the installed certificate expires (its notAfter), seconds since 1970.",
      "When kvvm last found the certificate in order in Key Vault and in place, seconds since 1970.",
      "When the installed version was installed, seconds since 1970.",
      "1 when the certificate is not installed or its last attempt failed (see kvvm status), "
      "else 0."};
  family(b, names[w], helps[w]);
  for (size_t i = 0; i < cfg->n_certs; i++) {
    long long v = sample(&out[i], w);
    if (!v && w != ERROR_FLAG)
      continue;
    put(b, "%s", names[w]);
    put_labels(b, &cfg->certs[i]);
    put(b, " %lld\n", v);
  }
}

void kvvm_metrics_pass(struct kvvm_pass_facts *f, int64_t start_ms, size_t n, const bool *due,
                       const struct kvvm_cert_outcome *out)
{
  f->ended = kvvm_clock_now();
  f->duration_ms = kvvm_clock_mono_ms() - start_ms;
  f->ok = true;
  for (size_t i = 0; i < n; i++)
    if ((!due || due[i]) && (out[i].state != KVVM_CERT_INSTALLED || out[i].err != KVVM_OK))
      f->ok = false;
}

char *kvvm_metrics_render(const struct kvvm_config *cfg, const struct kvvm_cert_outcome *out,
                          const struct kvvm_pass_facts *pass)
{
  struct buf b = {kvvm_xmalloc(4096), 0, 4096};
  b.s[0] = '\0';
  for (enum what w = EXPIRY; w <= ERROR_FLAG; w++)
    cert_family(&b, cfg, out, w);
  family(&b, "kvvm_pass_duration_seconds", "How long kvvm's last pass took.");
  put(&b, "kvvm_pass_duration_seconds %lld.%03lld\n", (long long)(pass->duration_ms / 1000),
      (long long)(pass->duration_ms % 1000));
  family(&b, "kvvm_pass_success", "1 when every certificate kvvm's last pass covered is "
         "installed without error, else 0.");
  put(&b, "kvvm_pass_success %d\n", pass->ok ? 1 : 0);
  family(&b, "kvvm_pass_timestamp_seconds", "When kvvm's last pass ended, seconds since 1970.");
  put(&b, "kvvm_pass_timestamp_seconds %lld\n", (long long)pass->ended);
  return b.s;
}

/* The default folder is node_exporter's: absent, node_exporter is not installed and nobody
 * reads a file there. A folder the settings name is made. */
static bool folder_ready(const struct kvvm_config *cfg)
{
  if (cfg->metrics_if_exists)
    return kvvm_path_exists(cfg->metrics_dir);
  if (kvvm_dir_ensure(cfg->metrics_dir, 0755) == KVVM_OK)
    return true;
  KVVM_WARN("%s: the folder %s cannot be made; no metrics file written", METRICS_KEY,
            cfg->metrics_dir);
  return false;
}

enum kvvm_err kvvm_metrics_write(const struct kvvm_config *cfg,
                                 const struct kvvm_cert_outcome *out,
                                 const struct kvvm_pass_facts *pass)
{
  if (!cfg->metrics_dir || !folder_ready(cfg))
    return cfg->metrics_dir && !cfg->metrics_if_exists ? KVVM_E_IO : KVVM_OK;
  char *path = kvvm_path_join(cfg->metrics_dir, KVVM_METRICS_FILE);
  char *text = kvvm_metrics_render(cfg, out, pass);
  enum kvvm_err rc = kvvm_file_write_atomic(path, text, strlen(text), 0644);
  if (rc != KVVM_OK)
    KVVM_WARN("%s: %s cannot be written (%s); the metrics stay as they were", METRICS_KEY,
              path, kvvm_err_str(rc));
  free(text);
  free(path);
  return rc;
}

void kvvm_metrics_retire(const struct kvvm_config *old, const struct kvvm_config *cfg)
{
  if (!old || !old->metrics_dir ||
      (cfg && cfg->metrics_dir && strcmp(cfg->metrics_dir, old->metrics_dir) == 0))
    return;
  char *path = kvvm_path_join(old->metrics_dir, KVVM_METRICS_FILE);
  if (kvvm_path_exists(path) && kvvm_file_remove(path) == KVVM_OK)
    KVVM_INFO("%s: removed %s, which the settings no longer ask for", METRICS_KEY, path);
  free(path);
}
