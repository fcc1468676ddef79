/* Error codes of the core library and the one table that maps them to words,
 * status codes and exit codes (the Azure handlers' single error table).
 * A fallible function returns one of these; the detail is logged once, where it happens. */
#ifndef KVVM_ERR_H
#define KVVM_ERR_H

#define KVVM_API __attribute__((visibility("default")))

enum kvvm_err {
  KVVM_OK = 0,
  KVVM_E_NOMEM,     /* out of memory */
  KVVM_E_IO,        /* a file or folder operation failed */
  KVVM_E_NOENT,     /* something expected is absent (not always an error for the caller) */
  KVVM_E_HENV,      /* HandlerEnvironment.json missing or unusable */
  KVVM_E_SEQNO,     /* no usable sequence number */
  KVVM_E_SETTINGS,  /* settings a user wrote cannot work */
  KVVM_E_STATE,     /* the state folder is unusable */
  KVVM_E_SERVICE,   /* kvvmd could not be started, stopped or reached */
  KVVM_E_LOCKED,    /* another instance holds the lock */
  KVVM_E_USAGE,     /* wrong command-line use */
  KVVM_E_CERT,      /* certificate material unusable: corrupt, wrong password, unsupported,
                       key and certificate do not match (waiting cannot fix it) */
  KVVM_E_INTERNAL,  /* a bug in kvvm */
  KVVM_E_NET,       /* transient: network, timeouts, resets, 5xx, throttling (429), garbled
                       answers; retried later */
  KVVM_E_AUTH,      /* access refused: 401/403 from Key Vault, or the managed identity could
                       not give a token (the user must grant or fix the identity) */
  KVVM_E_NOTFOUND,  /* Key Vault has no such secret or version (404) */
  KVVM_E_INACTIVE,  /* the secret version is disabled or not yet valid: reported, not
                       installed */
  KVVM_E_STORE,     /* the store folder cannot be used safely: a folder writable by a non-root
                       user, a planted symlink or foreign file where kvvm would write */
  KVVM_E_GRANT,     /* a read grant cannot be given: an account or group that does not exist
                       here, an ACL entry that denies, a filesystem without ACLs */
  KVVM_E_HOOK,      /* a renewal hook failed, timed out or was skipped as unsafe */
  KVVM_E_TLS,       /* the vault's TLS certificate was not trusted (an inspecting proxy, a
                       wrong CA bundle): waiting does not fix it */
  KVVM_E__MAX
};

/* A short phrase for the code, e.g. "settings error". Never NULL. */
KVVM_API const char *kvvm_err_str(enum kvvm_err e);
/* The code for the status file: > 0 the user's input is at fault, < 0 the system, 0 none
 * (the convention CRP and Azure's handlers use). */
KVVM_API int kvvm_err_status_code(enum kvvm_err e);
/* The process exit code a handler command returns for this error (0 only for KVVM_OK). */
KVVM_API int kvvm_err_exit_code(enum kvvm_err e);

#endif
