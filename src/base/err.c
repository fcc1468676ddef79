/* The single error table: words, status code (sign: user > 0, system < 0) and exit code. */
#include "kvvm/err.h"

struct err_row {
  const char *words;
  int status_code;
  int exit_code;
};

static const struct err_row table[KVVM_E__MAX] = {
  [KVVM_OK] = {"ok", 0, 0},
  [KVVM_E_NOMEM] = {"out of memory", -1, 3},
  [KVVM_E_IO] = {"file operation failed", -2, 3},
  [KVVM_E_NOENT] = {"not found", -3, 3},
  [KVVM_E_HENV] = {"HandlerEnvironment.json unusable", -4, 3},
  [KVVM_E_SEQNO] = {"no sequence number", -5, 3},
  [KVVM_E_SETTINGS] = {"settings error", 1, 4},
  [KVVM_E_STATE] = {"state folder unusable", -6, 3},
  [KVVM_E_SERVICE] = {"service control failed", -7, 3},
  [KVVM_E_LOCKED] = {"another instance is running", -8, 3},
  [KVVM_E_USAGE] = {"usage error", 2, 2},
  [KVVM_E_CERT] = {"certificate material unusable", 3, 4},
  [KVVM_E_INTERNAL] = {"internal error", -9, 3},
  [KVVM_E_NET] = {"network or service unavailable", -10, 3},
  [KVVM_E_AUTH] = {"access denied", 4, 4},
  [KVVM_E_NOTFOUND] = {"secret not found", 5, 4},
  [KVVM_E_INACTIVE] = {"secret disabled or not yet valid", 6, 4},
  [KVVM_E_STORE] = {"certificate store unsafe or unusable", 7, 4},
  [KVVM_E_GRANT] = {"read grant not possible", 8, 4},
  [KVVM_E_HOOK] = {"renewal hook failed", 9, 4},
  [KVVM_E_TLS] = {"vault's TLS certificate not trusted", 10, 4},
};

static const struct err_row *row(enum kvvm_err e)
{
  if ((int)e < 0 || e >= KVVM_E__MAX || !table[e].words)
    return &table[KVVM_E_INTERNAL];
  return &table[e];
}

const char *kvvm_err_str(enum kvvm_err e) { return row(e)->words; }
int kvvm_err_status_code(enum kvvm_err e) { return row(e)->status_code; }
int kvvm_err_exit_code(enum kvvm_err e) { return row(e)->exit_code; }
