/* Which sequence number this command serves, and mrseq (the last one processed). */
#ifndef KVVM_SEQNO_H
#define KVVM_SEQNO_H

#include "kvvm/err.h"

/* $ConfigSequenceNumber if set and numeric; else the <n>.settings in config_dir with the
 * newest mtime (ties: the highest n), which is the agent's own fallback. */
KVVM_API enum kvvm_err kvvm_seqno_current(const char *config_dir, long *out);
/* <root>/mrseq: KVVM_E_NOENT when absent. The agent copies only this file on update. */
KVVM_API enum kvvm_err kvvm_seqno_read_mrseq(const char *root, long *out);
KVVM_API enum kvvm_err kvvm_seqno_write_mrseq(const char *root, long seq);

#endif
