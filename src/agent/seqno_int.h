/* What seqno.c shares with its platform files. */
#ifndef KVVM_SEQNO_INT_H
#define KVVM_SEQNO_INT_H

/* Parse [s, end) as a whole non-negative decimal number of at most 9 digits; -1 if it is
 * anything else. */
long kvvm_seqno_parse(const char *s, const char *end);

#endif
