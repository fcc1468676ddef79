/* Where a pass spends its time: wall and CPU time summed per phase in one process, appended
 * as one JSON line to the file KVVM_PHASES_FILE names (a testing aid, README "Testing aids";
 * `make bench` reads it for its breakdown). Without the variable a mark costs one test of a
 * flag. Phases may nest (save runs inside commit): each one is its own total. Each phase is
 * timed on one thread only (the installs run on the pass's second thread, the fetch on the
 * first): the totals take no lock. */
#ifndef KVVM_PHASE_H
#define KVVM_PHASE_H
#include <stdint.h>
#include "kvvm/err.h"

enum kvvm_phase {
  KVVM_PHASE_SETUP,    /* the worker's entry to the start of its pass: request, settings */
  KVVM_PHASE_TOKENS,   /* identity tokens */
  KVVM_PHASE_FETCH,    /* every request of the pass, on the thread that runs them */
  KVVM_PHASE_LOCAL_WAIT, /* inside fetch: that thread waiting for room among the installs */
  KVVM_PHASE_DRAIN,    /* after the last answer: the last installs finishing */
  KVVM_PHASE_PARSE,    /* the vault's JSON answers parsed */
  KVVM_PHASE_RECORD,   /* installed.json's record of a certificate read and parked */
  KVVM_PHASE_DECODE,   /* PFX or PEM decoded: key derivation, MAC, decryption */
  KVVM_PHASE_INSTALL,  /* the store: files, links, grants, the record updated */
  KVVM_PHASE_FLUSH,    /* fsync and syncfs calls (inside install and commit) */
  KVVM_PHASE_COMMIT,   /* the end of the pass in the store: renames, folders, installed.json */
  KVVM_PHASE_SAVE,     /* installed.json written (inside commit) */
  KVVM_PHASE_HOOKS,    /* renewal hooks */
  KVVM_PHASE_ANSWER,   /* the answer to kvvmd encoded and written */
  KVVM_PHASE_COUNT
};

struct kvvm_phase_mark {
  int64_t wall_ns, cpu_ns;
};

/* Start timing (m is left zero when the aid is off). */
KVVM_API void kvvm_phase_begin(struct kvvm_phase_mark *m);
/* Add the time since m to phase p, and count one. */
KVVM_API void kvvm_phase_end(enum kvvm_phase p, const struct kvvm_phase_mark *m);
/* Append the totals and this process's own CPU time to KVVM_PHASES_FILE, then reset them. */
KVVM_API void kvvm_phase_write(void);
#endif
