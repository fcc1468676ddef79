/* What is installed, per observed certificate (keyed by URL and store folder): version,
 * thumbprint, paths, time, last error, grants, due hooks. Kept in
 * <state_dir>/installed.json (KVVM_STATE_DIR), written atomically, so a restart or an
 * update knows what is there without reparsing every PEM and `kvvm status` can show it.
 * Versioned by "format"; keys this version does not know are kept when it rewrites the
 * file, so a downgrade loses nothing. */
#ifndef KVVM_INSTALLED_H
#define KVVM_INSTALLED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "kvvm/err.h"

#define KVVM_INSTALLED_FORMAT 1

struct kvvm_installed;

/* A view of one record; the strings belong to the loaded state and stay valid until it
 * changes, is parked (kvvm_installed_park) or is freed. */
struct kvvm_installed_cert {
  const char *url, *store_dir;
  const char *version, *thumbprint;  /* NULL before the first install */
  const char *file, *link, *pfx;     /* absolute paths; pfx NULL unless keyExportable */
  const char *files, *layout;        /* fileLayout: the link <stable>.live and the layout's
                                        word ("certbot", "csi"); NULL without one */
  const char *grants;                /* "user:app1(1001),group:web(1002)", or NULL */
  const char *key_provider;          /* Windows: the key's provider, else NULL */
  const char *readers;               /* who can read the key or files, in words: Windows'
                                        "SYSTEM, Administrators, ..."; else grants */
  const char *note;                  /* what the last install did beside installing, in
                                        words (Windows: renewal links, versions kept), or
                                        NULL */
  const char *last_error;            /* NULL when the last attempt worked */
  const char *hook_error;            /* the last hook run's failures, or NULL */
  const char *versions_note;         /* old versions kept beyond the retention, and why
                                        (Windows: an HTTP.sys binding uses one), or NULL */
  bool hook_due;                     /* recorded, not yet run */
  time_t installed_at, not_after;
};

/* Load dir/installed.json. A missing file gives an empty state; a corrupt one is moved
 * aside to installed.json.corrupt with a warning and an empty state is returned. */
KVVM_API enum kvvm_err kvvm_installed_load(const char *dir, struct kvvm_installed **out);
/* Write atomically (dir created 0700) when anything changed since the load or last save;
 * otherwise nothing is written. */
KVVM_API enum kvvm_err kvvm_installed_save(struct kvvm_installed *st);
KVVM_API void kvvm_installed_free(struct kvvm_installed *st);
/* The record for url in store_dir; false when there is none. */
KVVM_API bool kvvm_installed_get(struct kvvm_installed *st, const char *url,
                                 const char *store_dir, struct kvvm_installed_cert *out);
/* Every record, in the order they were first made (for `kvvm status`). Returns the count;
 * free *out (the array only). */
KVVM_API size_t kvvm_installed_list(struct kvvm_installed *st,
                                    struct kvvm_installed_cert **out);
/* Record (why) or clear (NULL) the last error of a certificate, e.g. a fetch that failed;
 * makes the record when there is none. */
KVVM_API void kvvm_installed_set_error(struct kvvm_installed *st, const char *url,
                                       const char *store_dir, const char *why);
/* The failures of a certificate's last hook run (NULL when none; valid until the state
 * changes or is parked), and in *due whether its hooks are due again. A parked record is
 * parsed only when it has failures to tell. */
KVVM_API const char *kvvm_installed_hook_error(struct kvvm_installed *st, const char *url,
                                               const char *store_dir, bool *due);
/* The failures of the last once-per-pass hook run, or NULL. */
KVVM_API const char *kvvm_installed_pass_hook_error(const struct kvvm_installed *st);
/* Put the records in use back in their compact form (a line of JSON text each: about a
 * fifth of the memory of the parsed objects, which a thousand certificates make a few MB).
 * A record is parsed again when it is next used; views and record pointers taken before
 * this are no longer valid. */
KVVM_API void kvvm_installed_park(struct kvvm_installed *st);
/* What the last direct fetch of a certificate's installed version saw, for the steady
 * pass's listing (listing.h): Key Vault's created and updated times of that version and
 * when the pass that asked for it started. Kept in the record's "seen" with the version it
 * describes; false (and zeros) when there is none for this version, e.g. a record written
 * by an older kvvm. */
KVVM_API bool kvvm_installed_get_seen(struct kvvm_installed *st, const char *url,
                                      const char *store_dir, const char *version,
                                      int64_t *created, int64_t *updated, int64_t *asked_at);
KVVM_API void kvvm_installed_set_seen(struct kvvm_installed *st, const char *url,
                                      const char *store_dir, const char *version,
                                      int64_t created, int64_t updated, int64_t asked_at);
/* What kvvm remembers of a vault's listing, in the top-level "vaults": when it last
 * refused to list (0: not refused) and how many pages its last listing had (0: unknown). */
KVVM_API void kvvm_installed_get_vault(struct kvvm_installed *st, const char *host,
                                       int64_t *refused_at, size_t *pages);
KVVM_API void kvvm_installed_set_vault(struct kvvm_installed *st, const char *host,
                                       int64_t refused_at, size_t pages);

/* The format number of the loaded file (0 when new). */
KVVM_API int kvvm_installed_format(const struct kvvm_installed *st);

#endif
