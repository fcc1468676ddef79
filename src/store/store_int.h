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

/* A rename the commit makes once the data it names is durable: tmp over name. */
struct store_rename {
  char *tmp, *name;
};

/* A name the commit removes once the new links are durable, and why (for the log). */
struct store_stale {
  char *name;
  const char *what;
};

/* A folder used in this pass: opened once (the walk from "/" checked it), and what the
 * commit does there (store_flush_posix.c): the renames of the new files, then of the new
 * links, then the stale names and the old versions beyond the retention. */
struct store_dirty {
  char *dir;
  int dfd;
  struct store_rename *files, *links;
  size_t nfiles, nlinks;
  struct store_stale *stale;
  size_t nstale;
  char **remove;
  size_t nremove;
  bool published;  /* the commit's renames all went through */
};

struct kvvm_store {
  struct kvvm_installed *inst;
  unsigned retain;
  struct store_dirty **dirty;
  size_t ndirty;
};

/* The folder dir for this pass, opened (made when missing) on first use, as store_dir_open
 * does and with its errors. The descriptor stays the pass's: callers never close it. */
enum kvvm_err store_pass_dir(struct kvvm_store *s, const char *dir, struct store_dirty **d,
                             char *why, size_t whylen);
/* Queue a rename for the commit (tmp and name are copied). */
void store_queue_file(struct store_dirty *d, const char *tmp, const char *name);
void store_queue_link(struct store_dirty *d, const char *tmp, const char *name);
void store_queue_stale(struct store_dirty *d, const char *name, const char *what);
/* Make the data of every queued file durable (one syncfs per file system), then publish
 * each folder's renames with a folder fsync after the files and after the links, and
 * remove its stale names. A folder whose data could not be flushed loses its temp files
 * and keeps its old links. */
enum kvvm_err store_flush_commit(struct kvvm_store *s);
/* Close the folders and drop what was queued (temp files left are the sweep's). */
void store_pass_dirs_free(struct kvvm_store *s);
/* fsync(fd), its time added to the flush phase (kvvm/phase.h). */
int store_fsync(int fd);

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
