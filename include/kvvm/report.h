/* From pass outcomes to the status the agent reads (design.md, Status and dependency
 * ordering): one substatus per certificate, failing ones first; top level `transitioning`
 * only while requireInitialSync waits for certificates waiting can fix, `error` at once for
 * content that cannot be installed, else `success`. A certificate within the settings'
 * expiryWarningInDays of its expiry, with no newer version in the vault, is flagged. */
#ifndef KVVM_REPORT_H
#define KVVM_REPORT_H

#include <time.h>
#include "kvvm/settings.h"
#include "kvvm/status.h"
#include "kvvm/sync.h"

struct kvvm_report {
  struct kvvm_status status;     /* points into the fields below */
  struct kvvm_substatus *subs;
  char **messages;
  char top[1024];
};

/* Fill r for cfg's certificates and their outcomes at time now. Free with kvvm_report_clear. */
KVVM_API void kvvm_report_build(const struct kvvm_config *cfg,
                                const struct kvvm_cert_outcome *out, time_t now,
                                struct kvvm_report *r);
KVVM_API void kvvm_report_clear(struct kvvm_report *r);

#endif
