/* The metrics file: what the last pass left, in Prometheus' text format, for node_exporter's
 * textfile collector (or windows_exporter's). Made, like the status, from the settings and
 * the outcomes after every pass, and rewritten whole each time, so a certificate that left
 * the settings leaves the file with them. */
#ifndef KVVM_METRICS_H
#define KVVM_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "kvvm/err.h"
#include "kvvm/settings.h"
#include "kvvm/sync.h"

/* The file's name in the folder of metricsTextfileDir (the collector reads *.prom). */
#define KVVM_METRICS_FILE "kvvm.prom"

/* What the metrics say of the last pass. */
struct kvvm_pass_facts {
  time_t ended;         /* wall clock, seconds since 1970 */
  int64_t duration_ms;
  bool ok;              /* every certificate it covered is installed without error */
};

/* Fill f for a pass that started at start_ms (kvvm_clock_mono_ms) over the due[i]
 * certificates (NULL: all) of n, which ended with out. */
KVVM_API void kvvm_metrics_pass(struct kvvm_pass_facts *f, int64_t start_ms, size_t n,
                                const bool *due, const struct kvvm_cert_outcome *out);
/* The file's text: per certificate of cfg (labels url, vault, secret, store_dir) its expiry,
 * last success, install time (each only when known) and error flag; the pass's duration,
 * success and time. Caller frees. */
KVVM_API char *kvvm_metrics_render(const struct kvvm_config *cfg,
                                   const struct kvvm_cert_outcome *out,
                                   const struct kvvm_pass_facts *pass);
/* Write the file atomically (mode 0644) into cfg's metricsTextfileDir: the default folder only
 * while it exists, a named one created when missing (0755); nothing when the setting is off.
 * Failures are logged with the settings key and the folder; what kvvm installed is not
 * affected. */
KVVM_API enum kvvm_err kvvm_metrics_write(const struct kvvm_config *cfg,
                                          const struct kvvm_cert_outcome *out,
                                          const struct kvvm_pass_facts *pass);

/* When new settings write no file where old ones did (metrics turned off, or another
 * folder), the old file goes: node_exporter would otherwise serve the last pass's series,
 * expiry times included, for ever. old may be NULL. */
KVVM_API void kvvm_metrics_retire(const struct kvvm_config *old, const struct kvvm_config *cfg);

#endif
