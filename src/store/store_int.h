/* Inside the POSIX store: the safe folder walk (also used by the hooks), the pass state,
 * and the grant bookkeeping shared by install and reconcile. */
#ifndef KVVM_STORE_INT_H
#define KVVM_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "kvvm/acl.h"
#include "kvvm/store.h"

/* Called for each folder from "/" down to the one opened, with the path so far. */
typedef enum kvvm_err (*store_dir_cb)(int fd, const char *path, void *ctx);

/* Open the folder path from "/" one component at a time (O_DIRECTORY|O_NOFOLLOW), refusing
 * a symlink or a folder that a user other than root could write (a sticky world-writable
 * folder such as /tmp is allowed above the last one). With create, missing folders are made
 * 0700 root (mkdirat 0700: never wider, inherited ACLs removed). cb may be NULL.
 * KVVM_E_NOENT (why set, nothing logged) when a folder is missing and !create; KVVM_E_STORE
 * when the chain is unsafe; KVVM_E_IO otherwise. */
enum kvvm_err store_dir_open(const char *path, bool create, store_dir_cb cb, void *ctx, int *fd,
                             char *why, size_t whylen);
/* Remove temp files (KVVM_TEMP_PREFIX) that root owns from the folder; others are reported.
 * Returns the count. */
int store_dir_sweep(int dfd, const char *path);
/* A name kvvm may use in a store folder: letters, digits, '-', '_', '.', no leading dot. */
bool store_name_ok(const char *s);
/* A new temp name (KVVM_TEMP_PREFIX...) for this process. */
char *store_temp_name(void);

/* A folder written in this pass, and the old versions to remove from it after its fsync. */
struct store_dirty {
  char *dir;
  char **remove;
  size_t nremove;
};

struct kvvm_store {
  struct kvvm_installed *inst;
  unsigned retain;
  struct store_dirty *dirty;
  size_t ndirty;
};

/* One certificate's grants: principals resolved now, and their canonical string. */
struct store_grants {
  struct kvvm_principal *p;
  size_t n;
  char *key;  /* kvvm_principals_str: compared with the record's "grants" */
};

/* Make the files of rec (each retained version, the .pfx) carry g's read grants, and the
 * folders from / to dir let g's principals traverse; take back what kvvm added for
 * principals g no longer has. Nothing happens when rec's "grants" already equal g->key.
 * dfd is dir, already open. why gets the first failure. */
enum kvvm_err store_grants_apply(struct kvvm_store *s, json_t *rec, int dfd, const char *dir,
                                 const struct store_grants *g, char *why, size_t whylen);
/* Take back the folder entries kvvm added for the record with this key, except for the
 * principals in keep (may be NULL). */
void store_grants_drop_folders(struct kvvm_store *s, const char *key,
                               const struct store_grants *keep);

#endif
