/* The pass's folders and its grouped flush (store_int.h). An install writes its files and
 * its link as temp entries and queues their renames; the commit makes all their data
 * durable at once (syncfs: one journal commit, not one per file), then renames the files,
 * fsyncs the folder, renames the links, fsyncs the folder again. So a stable name is only
 * ever renamed onto a file whose data and name are already on disk, whatever instant a
 * crash or a power loss lands on (README, Files on disk). syncfs is Linux's (the Makefile
 * builds with _GNU_SOURCE), the POSIX platform kvvm ships for. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/phase.h"
#include "store/store_int.h"

int store_fsync(int fd)
{
  struct kvvm_phase_mark m;
  kvvm_phase_begin(&m);
  int r = fsync(fd);
  kvvm_phase_end(KVVM_PHASE_FLUSH, &m);
  return r;
}

enum kvvm_err store_pass_dir(struct kvvm_store *s, const char *dir, struct store_dirty **d,
                             char *why, size_t whylen)
{
  int dfd;
  for (size_t i = 0; i < s->ndirty; i++)
    if (strcmp(s->dirty[i]->dir, dir) == 0) {
      *d = s->dirty[i];
      return KVVM_OK;
    }
  *d = NULL;
  enum kvvm_err rc = store_dir_open(dir, true, NULL, NULL, &dfd, why, whylen);
  if (rc != KVVM_OK)
    return rc;
  *d = kvvm_xcalloc(1, sizeof **d);
  (*d)->dir = kvvm_xstrdup(dir);
  (*d)->dfd = dfd;
  s->dirty = kvvm_xrealloc(s->dirty, (s->ndirty + 1) * sizeof *s->dirty);
  s->dirty[s->ndirty++] = *d;
  return KVVM_OK;
}

static void queue(struct store_rename **list, size_t *n, const char *tmp, const char *name)
{
  *list = kvvm_xrealloc(*list, (*n + 1) * sizeof **list);
  (*list)[(*n)++] = (struct store_rename){kvvm_xstrdup(tmp), kvvm_xstrdup(name)};
}

void store_queue_file(struct store_dirty *d, const char *tmp, const char *name)
{
  queue(&d->files, &d->nfiles, tmp, name);
}

void store_queue_link(struct store_dirty *d, const char *tmp, const char *name)
{
  queue(&d->links, &d->nlinks, tmp, name);
}

void store_queue_stale(struct store_dirty *d, const char *name, const char *what)
{
  d->stale = kvvm_xrealloc(d->stale, (d->nstale + 1) * sizeof *d->stale);
  d->stale[d->nstale++] = (struct store_stale){kvvm_xstrdup(name), what};
}

/* One syncfs per file system that holds a queued file. */
static enum kvvm_err flush_data(struct kvvm_store *s, bool *ok)
{
  dev_t *done = kvvm_xcalloc(s->ndirty + 1, sizeof *done);
  size_t ndone = 0;
  enum kvvm_err rc = KVVM_OK;
  for (size_t i = 0; i < s->ndirty; i++) {
    struct store_dirty *d = s->dirty[i];
    struct stat st;
    size_t k = 0;
    ok[i] = true;
    if (!d->nfiles && !d->nlinks)
      continue;
    ok[i] = fstat(d->dfd, &st) == 0;
    while (ok[i] && k < ndone && done[k] != st.st_dev)
      k++;
    if (ok[i] && k == ndone) {
      struct kvvm_phase_mark m;
      kvvm_phase_begin(&m);
      ok[i] = syncfs(d->dfd) == 0;
      kvvm_phase_end(KVVM_PHASE_FLUSH, &m);
      done[ndone++] = st.st_dev;
    }
    if (!ok[i]) {
      KVVM_ERR("%s: cannot flush the new files to disk: %s; the installed versions stay",
               d->dir, strerror(errno));
      rc = KVVM_E_IO;
    }
  }
  free(done);
  return rc;
}

/* A temp file or link, or a fileLayout's temp folder with its files. */
static void drop(struct store_dirty *d, const char *tmp)
{
  if (unlinkat(d->dfd, tmp, 0) != 0 && errno == EISDIR)
    store_tree_remove(d->dfd, d->dir, tmp);
}

/* The renames of one list, then the folder's fsync. A failed rename leaves the old entry. */
static enum kvvm_err publish(struct store_dirty *d, const struct store_rename *r, size_t n)
{
  enum kvvm_err rc = KVVM_OK;
  for (size_t i = 0; i < n; i++)
    if (renameat(d->dfd, r[i].tmp, d->dfd, r[i].name) != 0) {
      KVVM_ERR("%s/%s: rename: %s", d->dir, r[i].name, strerror(errno));
      drop(d, r[i].tmp);
      rc = KVVM_E_IO;
    }
  if (n && store_fsync(d->dfd) != 0) {
    KVVM_ERR("%s: fsync: %s", d->dir, strerror(errno));
    rc = KVVM_E_IO;
  }
  return rc;
}

static void drop_temps(struct store_dirty *d)
{
  for (size_t i = 0; i < d->nfiles; i++)
    drop(d, d->files[i].tmp);
  for (size_t i = 0; i < d->nlinks; i++)
    unlinkat(d->dfd, d->links[i].tmp, 0);
}

static void remove_stale(struct store_dirty *d)
{
  for (size_t i = 0; i < d->nstale; i++)
    if (unlinkat(d->dfd, d->stale[i].name, 0) == 0)
      KVVM_INFO("%s/%s: removed (%s)", d->dir, d->stale[i].name, d->stale[i].what);
}

static void free_list(struct store_rename *r, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free(r[i].tmp);
    free(r[i].name);
  }
  free(r);
}

static void dir_free(struct store_dirty *d)
{
  free_list(d->files, d->nfiles);
  free_list(d->links, d->nlinks);
  for (size_t i = 0; i < d->nstale; i++)
    free(d->stale[i].name);
  free(d->stale);
  for (size_t i = 0; i < d->nremove; i++)
    free(d->remove[i]);
  free(d->remove);
  if (d->dfd >= 0)
    close(d->dfd);
  free(d->dir);
  free(d);
}

void store_pass_dirs_free(struct kvvm_store *s)
{
  for (size_t i = 0; i < s->ndirty; i++)
    dir_free(s->dirty[i]);
  free(s->dirty);
  s->dirty = NULL;
  s->ndirty = 0;
}

enum kvvm_err store_flush_commit(struct kvvm_store *s)
{
  bool *ok = kvvm_xcalloc(s->ndirty + 1, sizeof *ok);
  enum kvvm_err rc = flush_data(s, ok);
  for (size_t i = 0; i < s->ndirty; i++) {
    struct store_dirty *d = s->dirty[i];
    enum kvvm_err r = ok[i] ? publish(d, d->files, d->nfiles) : KVVM_E_IO;
    if (r == KVVM_OK)
      r = publish(d, d->links, d->nlinks);
    else
      drop_temps(d);
    if (r == KVVM_OK)
      remove_stale(d);
    d->published = r == KVVM_OK;
    rc = rc == KVVM_OK ? r : rc;
  }
  free(ok);
  return rc;
}
