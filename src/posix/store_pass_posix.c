/* A pass over the POSIX store: open (installed.json), sweep at kvvmd start, and the commit
 * that makes the pass durable: the queued renames published (store_flush_posix.c), then the
 * old versions beyond the retention (only once the new links are durable), then
 * installed.json. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/installed_int.h"
#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/paths.h"
#include "kvvm/phase.h"
#include "store/store_int.h"

enum kvvm_err kvvm_store_open(const struct kvvm_store_opts *opts, struct kvvm_store **out)
{
  struct kvvm_store *s = kvvm_xcalloc(1, sizeof *s);
  const char *dir = opts && opts->state_dir ? opts->state_dir : kvvm_paths_state_dir();
  s->retain = opts && opts->retain ? opts->retain : KVVM_STORE_RETAIN_DEFAULT;
  kvvm_installed_load(dir, &s->inst);
  *out = s;
  return KVVM_OK;
}

void kvvm_store_close(struct kvvm_store *s)
{
  if (!s)
    return;
  store_pass_dirs_free(s);
  kvvm_installed_free(s->inst);
  free(s);
}

struct kvvm_installed *kvvm_store_installed(struct kvvm_store *s) { return s->inst; }

/* Another record (the same secret pinned to a version, say) still keeps this file. */
static bool referenced(struct kvvm_store *s, const char *dir, const char *name)
{
  json_t *rec, *e;
  const char *key;
  size_t i;
  json_object_foreach(json_object_get(installed_root(s->inst), "certs"), key, rec) {
    /* A record that keeps the file names it (store names need no escaping in JSON). */
    rec = installed_unpark_if(s->inst, key, rec, name);
    const char *d = rec ? installed_str(rec, "store_dir") : NULL;
    if (!d || strcmp(d, dir) != 0)
      continue;
    json_array_foreach(json_object_get(rec, "versions"), i, e)
      if (json_string_value(e) && strcmp(json_string_value(e), name) == 0)
        return true;
    json_array_foreach(json_object_get(rec, "files_dirs"), i, e)
      if (json_string_value(e) && strcmp(json_string_value(e), name) == 0)
        return true;
  }
  return false;
}

static int remove_old(struct kvvm_store *s, int dfd, const char *dir, const char *name)
{
  struct stat st;
  if (referenced(s, dir, name) || fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return 0;
  if (S_ISDIR(st.st_mode) && st.st_uid == 0) {   /* a fileLayout folder */
    if (!store_tree_remove(dfd, dir, name))
      return 0;
    KVVM_INFO("%s/%s/: removed (beyond the %u retained versions, or fileLayout changed)",
              dir, name, s->retain);
    return 1;
  }
  if (!S_ISREG(st.st_mode) || st.st_uid != 0) {
    KVVM_WARN("%s/%s is not root's regular file; not removed", dir, name);
    return 0;
  }
  if (unlinkat(dfd, name, 0) != 0) {
    KVVM_WARN("%s/%s: cannot remove: %s", dir, name, strerror(errno));
    return 0;
  }
  KVVM_INFO("%s/%s: removed (beyond the %u retained versions)", dir, name, s->retain);
  return 1;
}

/* The old versions beyond the retention, once the new links are durable. */
static void remove_old_versions(struct kvvm_store *s, const struct store_dirty *d)
{
  int removed = 0;
  for (size_t i = 0; i < d->nremove; i++)
    removed += remove_old(s, d->dfd, d->dir, d->remove[i]);
  if (removed && store_fsync(d->dfd) != 0)
    KVVM_WARN("%s: fsync: %s", d->dir, strerror(errno));
}

enum kvvm_err kvvm_store_commit(struct kvvm_store *s)
{
  enum kvvm_err rc = store_flush_commit(s);
  for (size_t i = 0; i < s->ndirty; i++)
    if (s->dirty[i]->published)
      remove_old_versions(s, s->dirty[i]);
  store_pass_dirs_free(s);
  struct kvvm_phase_mark m;
  kvvm_phase_begin(&m);
  enum kvvm_err r = kvvm_installed_save(s->inst);
  kvvm_phase_end(KVVM_PHASE_SAVE, &m);
  return rc == KVVM_OK ? r : rc;
}

/* Temp files inside the fileLayout folders recorded for dir (a crash while an existing
 * version's folder was rewritten). */
static int sweep_split(struct kvvm_store *s, int dfd, const char *dir)
{
  json_t *rec, *e;
  const char *key;
  size_t i;
  int count = 0;
  json_object_foreach(installed_certs(s->inst), key, rec) {
    if (!installed_str(rec, "store_dir") || strcmp(installed_str(rec, "store_dir"), dir) != 0)
      continue;
    json_array_foreach(json_object_get(rec, "files_dirs"), i, e) {
      const char *name = json_string_value(e);
      int fd = name && store_name_ok(name) ?
               openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
      char *path = fd >= 0 ? kvvm_path_join(dir, name) : NULL;
      if (fd >= 0)
        count += store_dir_sweep(fd, path);
      if (fd >= 0)
        close(fd);
      free(path);
    }
  }
  return count;
}

static void sweep_dir(struct kvvm_store *s, const char *dir, int *count)
{
  char why[512];
  int dfd;
  enum kvvm_err rc = store_dir_open(dir, false, NULL, NULL, &dfd, why, sizeof why);
  if (rc == KVVM_OK) {
    *count += store_dir_sweep(dfd, dir) + sweep_split(s, dfd, dir);
    close(dfd);
  } else if (rc != KVVM_E_NOENT) {
    KVVM_WARN("sweep: %s", why);
  }
}

int kvvm_store_sweep(struct kvvm_store *s, const struct kvvm_config *cfg)
{
  json_t *certs = installed_certs(s->inst), *rec;
  size_t n = 0;
  const char *key;
  const char **dirs = kvvm_xcalloc((cfg ? cfg->n_certs : 0) + json_object_size(certs) + 1,
                                   sizeof *dirs);
  for (size_t i = 0; cfg && i < cfg->n_certs; i++)
    dirs[n++] = cfg->certs[i].store_dir;
  json_object_foreach(certs, key, rec)
    if (installed_str(rec, "store_dir"))
      dirs[n++] = installed_str(rec, "store_dir");
  int count = 0;
  for (size_t i = 0; i < n; i++) {
    bool seen = false;
    for (size_t k = 0; k < i && !seen; k++)
      seen = strcmp(dirs[k], dirs[i]) == 0;
    if (!seen)
      sweep_dir(s, dirs[i], &count);
  }
  free(dirs);
  return count;
}
