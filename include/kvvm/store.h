/* The certificate store (design.md, Store mapping on Linux; Install and renewal). On Linux:
 * <store_dir>/<vault>.<secret>.<version> holds one PEM (leaf, chain, key as PKCS#8), the
 * stable name <vault>.<secret> (or customSymbolicLinkName) is a symlink to it swapped by
 * rename, <stable>.pfx is written for keyExportable, with a fileLayout the split files go
 * to a folder per version <stable>.<layout>.<version>/ behind the link <stable>.live
 * (swapped right after the stable name), older versions beyond the retention
 * are removed once the new link is in place. Every file operation goes through a folder
 * descriptor reached from / with O_NOFOLLOW; each folder on the way is checked.
 *
 * A pass of the sync service:
 *   kvvm_store_open -> [kvvm_store_sweep at kvvmd start] -> [kvvm_store_reconcile_grants
 *   when settings changed] -> kvvm_store_install per certificate -> kvvm_store_commit
 *   (folder fsyncs, old versions, installed.json: before the status says "installed") ->
 *   kvvm_hooks_run_due -> status -> kvvm_store_close.
 * The implementations: store_posix.c, store_dir_posix.c and store_grants_posix.c (files);
 * store_windows.c (the Windows certificate store, store_dir LocalMachine\MY); store.c
 * holds what both share. */
#ifndef KVVM_STORE_H
#define KVVM_STORE_H

#include <stdbool.h>
#include "kvvm/certmat.h"
#include "kvvm/err.h"
#include "kvvm/installed.h"
#include "kvvm/settings.h"

#define KVVM_STORE_RETAIN_DEFAULT 2  /* the current version and the one before it */

struct kvvm_store;

struct kvvm_store_opts {
  const char *state_dir;  /* installed.json's folder; NULL: kvvm_paths_state_dir() */
  unsigned retain;        /* versions kept per certificate, the current one included;
                             0: KVVM_STORE_RETAIN_DEFAULT */
};

struct kvvm_install_result {
  bool changed;           /* files were written; false: version, thumbprint and files
                             already matched (nothing written, no hooks due) */
  bool first;             /* nothing was installed before (hook event install, else renew) */
  char *file;             /* absolute paths: the versioned PEM, the stable name, */
  char *link;
  char *pfx;              /* the .pfx (NULL unless keyExportable) */
  char *files;            /* fileLayout's stable link <stable>.live (NULL without one) */
  char *prev_version;     /* what was installed before this call (NULL: nothing) */
  char *prev_thumbprint;
  char why[512];          /* the reason in words when the result is not KVVM_OK */
};

/* Loads installed.json from the state folder. */
KVVM_API enum kvvm_err kvvm_store_open(const struct kvvm_store_opts *opts,
                                       struct kvvm_store **out);
/* Does not commit: call kvvm_store_commit first. NULL-safe. */
KVVM_API void kvvm_store_close(struct kvvm_store *s);
/* The installed state this store reads and updates (for hooks and status). */
KVVM_API struct kvvm_installed *kvvm_store_installed(struct kvvm_store *s);

/* At kvvmd start: remove temp files a crash left in the store folders of cfg and of every
 * installed record (root-owned ones only; anything else is reported). Returns the count. */
KVVM_API int kvvm_store_sweep(struct kvvm_store *s, const struct kvvm_config *cfg);

/* Install version of a certificate unless that version and thumbprint are already in place
 * (then nothing is written). Grants follow cc on every call. Results:
 *   KVVM_OK;
 *   KVVM_E_GRANT  installed (res->changed says whether anything was written), but a grant
 *                 could not be given: a name that does not exist, a denying ACL entry;
 *   KVVM_E_STORE  nothing done: the folder chain is unsafe, or a symlink or foreign file
 *                 sits where kvvm would write (not followed, not replaced);
 *   KVVM_E_IO     a write failed; the previous version stays in place.
 * res->why says why; the record's last_error says the same. Free res with
 * kvvm_install_result_clear. */
KVVM_API enum kvvm_err kvvm_store_install(struct kvvm_store *s, const struct kvvm_cert_cfg *cc,
                                          const struct kvvm_bundle *b, const char *version,
                                          struct kvvm_install_result *res);
/* A pass over unchanged certificates needs no decoding: when version is in place as
 * installed.json records it (stable name, files, sizes), this applies the grants as
 * kvvm_store_install does, sets *rc and res (changed false) and returns true. False: it is
 * not in place; nothing was written or recorded, and the caller decodes and installs. */
KVVM_API bool kvvm_store_keep(struct kvvm_store *s, const struct kvvm_cert_cfg *cc,
                              const char *version, struct kvvm_install_result *res,
                              enum kvvm_err *rc);
KVVM_API void kvvm_install_result_clear(struct kvvm_install_result *res);

/* After a settings change: give every installed certificate of cfg exactly the grants its
 * settings name (files and folders), and take back what kvvm granted for certificates
 * that cfg no longer observes (their files stay). Per-certificate failures go to the
 * record's last_error; returns KVVM_E_GRANT when there was any. */
KVVM_API enum kvvm_err kvvm_store_reconcile_grants(struct kvvm_store *s,
                                                   const struct kvvm_config *cfg);

/* Make the pass durable: fsync each folder written (once per folder), then remove the
 * versions beyond the retention, then save installed.json (with the hooks now due). */
KVVM_API enum kvvm_err kvvm_store_commit(struct kvvm_store *s);

#endif
