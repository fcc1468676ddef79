/* Which sequence number this command serves, and mrseq (the last one processed). */
#ifndef KVVM_SEQNO_H
#define KVVM_SEQNO_H

#include "kvvm/err.h"

/* $ConfigSequenceNumber if set and numeric; else the <n>.settings in config_dir with the
 * newest mtime (ties: the highest n), which is the agent's own fallback. */
KVVM_API enum kvvm_err kvvm_seqno_current(const char *config_dir, long *out);
/* The last sequence number processed: KVVM_E_NOENT when there is none. Linux: <root>/mrseq
 * (the agent copies only this file on update). Windows: the agent's registry value
 * HKLM\Software\Microsoft\Windows Azure\HandlerState\<Publisher>.<Type>_<version>
 * SequenceNumber, named from root (C:\Packages\Plugins\<Publisher>.<Type>\<version>). */
KVVM_API enum kvvm_err kvvm_seqno_read_mrseq(const char *root, long *out);
KVVM_API enum kvvm_err kvvm_seqno_write_mrseq(const char *root, long seq);

#endif
