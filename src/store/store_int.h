/* Inside the POSIX store: the safe folder walk (also used by the hooks), the pass state,
 * and the grant bookkeeping shared by install and reconcile. */
#ifndef KVVM_STORE_INT_H
#define KVVM_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "kvvm/acl.h"
#include "kvvm/settings.h"
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
/* Remove temp files (KVVM_TEMP_PREFIX) that root owns from the folder, and temp folders
 * (a fileLayout version never renamed in) with their files; others are reported.
 * Returns the count. */
int store_dir_sweep(int dfd, const char *path);
/* A name kvvm may use in a store folder: letters, digits, '-', '_', '.', no leading dot. */
bool store_name_ok(const char *s);
/* A new temp name (KVVM_TEMP_PREFIX...) for this process. */
char *store_temp_name(void);
/* Remove the folder name below dfd (dir: its path, for messages) when it is root's and
 * holds only root's files and links; never follows a symlink. False (reported) otherwise. */
bool store_tree_remove(int dfd, const char *dir, const char *name);
/* Calls fn(dfd, name, ctx) for each entry of the folder dfd but . and ..; -1 when it
 * cannot be listed. */
int store_dir_each(int dfd, void (*fn)(int, const char *, void *), void *ctx);

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

/* Where store_file_put writes: the folder (dir, its path for messages), the grants, and how
 * the temp file becomes name: queued on queue for the commit's grouped flush, else renamed
 * at once, after its own fsync when sync (a rewrite in place) or without one (a file in a
 * temp folder whose rename the commit makes after its flush). */
struct store_put_to {
  int dfd;
  const char *dir;
  const struct store_grants *g;
  struct store_dirty *queue;
  bool sync;
};
/* Write name: a temp file made exclusively, the data, root 0600 with g's read ACL, then as
 * to says (refused when name is a symlink or not root's regular file). why gets the
 * reason. */
enum kvvm_err store_file_put(const struct store_put_to *to, const char *name, const void *data,
                             size_t len, char *why, size_t wl);

/* A fileLayout's split files (store_split_posix.c): one folder per version in the store
 * folder, <stable>.<layout>.<version>/, and the link <stable>.live to the current one. */
struct store_split {
  int dfd;                      /* the store folder, open */
  const char *dir;              /* its path (messages) */
  const char *stable;           /* the stable name: csi's files are <stable>.crt/.key */
  enum kvvm_file_layout layout; /* not KVVM_LAYOUT_NONE */
  const struct store_grants *g;
  struct store_dirty *d;        /* the store folder's queue for the commit */
};
/* The layout's files: their names (new strings: free each), what each holds
 * (KVVM_PEM_*) and the hook variable that gives its path. Returns their count. */
#define STORE_SPLIT_MAX 4
size_t store_split_files(const struct store_split *sp, char *names[STORE_SPLIT_MAX],
                         unsigned parts[STORE_SPLIT_MAX], const char *vars[STORE_SPLIT_MAX]);
/* Make folder hold layout's files from b, each root 0600 with g's read ACL, the folder root
 * 0700 with g's traverse: new, as a temp folder made exclusively and filled, whose rename
 * to folder is queued for the commit (the pass's flush covers its files); existing
 * (written before a crash, or a file of it deleted), checked and its files rewritten one
 * by one, each fsync'd (the same version: the same bytes). */
enum kvvm_err store_split_write(const struct store_split *sp, const struct kvvm_bundle *b,
                                const char *folder, char *why, size_t wl);
/* Every file of the layout is in folder, root's and regular. */
bool store_split_present(const struct store_split *sp, const char *folder);
/* The folder and every file in it get exactly g's grants (reconcile). */
enum kvvm_err store_split_grant(int dfd, const char *dir, const char *folder,
                                const struct store_grants *g, char *why, size_t wl);

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
