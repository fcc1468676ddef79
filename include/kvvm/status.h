/* The <seq>.status file the guest agent reads (agent-protocol.md §4, design.md Status):
 * an array of one object, lower-case values, formattedMessage with lang, integer codes,
 * substatus within the agent's limits. Written atomically. Never holds secrets. */
#ifndef KVVM_STATUS_H
#define KVVM_STATUS_H

#include <stddef.h>
#include <time.h>
#include "kvvm/err.h"

/* Top level: only these three (warning is not terminal and would stall dependents). */
enum kvvm_status_value { KVVM_ST_TRANSITIONING, KVVM_ST_SUCCESS, KVVM_ST_ERROR };

struct kvvm_substatus {
  const char *name;               /* the certificate URL */
  enum kvvm_status_value value;   /* KVVM_ST_SUCCESS or KVVM_ST_ERROR only */
  int code;
  const char *message;
};

struct kvvm_status {
  const char *operation;          /* "Enable", "kvvmd", ... */
  enum kvvm_status_value value;
  int code;
  const char *message;            /* cut to stay under 1 KiB */
  const struct kvvm_substatus *subs;  /* failing ones are placed first when rendered */
  size_t n_subs;
};

/* Render the status as the agent's JSON; `now` stamps timestampUTC. Substatus entries
 * past the agent's 128 KiB budget are replaced by one summary entry. Caller frees. */
KVVM_API char *kvvm_status_render(const struct kvvm_status *st, time_t now);
/* Render and write <status_dir>/<seq>.status atomically (temp in the folder, fsync,
 * rename, fsync folder). */
KVVM_API enum kvvm_err kvvm_status_write(const char *status_dir, long seq,
                                         const struct kvvm_status *st);
/* Read back the top-level status value of <status_dir>/<seq>.status (KVVM_E_NOENT if the
 * file is missing): enable uses it to leave a terminal status in place. */
KVVM_API enum kvvm_err kvvm_status_read_value(const char *status_dir, long seq,
                                              enum kvvm_status_value *out);

#endif
