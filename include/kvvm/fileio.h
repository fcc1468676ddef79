/* Files and folders, the careful way: bounded reads, atomic writes (temp in the same folder,
 * write all, flush to disk, rename over the target), folders and their parents created,
 * advisory locks. Nothing here names an OS type: modes are POSIX permission bits carried
 * as unsigned, open files and locks are opaque. Implementations: src/posix/fileio_posix.c
 * and src/windows/fileio_windows.c (where modes are ignored: files and folders inherit the
 * protected DACL of kvvm's folders). */
#ifndef KVVM_FILEIO_H
#define KVVM_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kvvm/err.h"

/* Every temp file kvvm creates starts with this, so a sweep finds what a crash left. */
#define KVVM_TEMP_PREFIX ".kvvm-tmp."

/* Read a whole regular file of at most max bytes into a new NUL-terminated buffer.
 * KVVM_E_NOENT if it does not exist (not logged: callers decide), KVVM_E_IO otherwise. */
KVVM_API enum kvvm_err kvvm_file_read(const char *path, size_t max, char **out, size_t *len);
/* Replace path atomically with data; the new file gets `mode`. A reader sees the old or
 * the new content, never a mix; a crash leaves one of the two. On Windows a target another
 * process holds open (the agent reading a status file) is waited for, up to 5 s. */
KVVM_API enum kvvm_err kvvm_file_write_atomic(const char *path, const void *data, size_t len,
                                              unsigned mode);
/* The temp file that kvvm_file_write_atomic_with's fill callback writes to. */
struct kvvm_wfile;
/* Write all of data (through short writes and interruptions); 0, or -1 with errno set. */
KVVM_API int kvvm_wfile_write(struct kvvm_wfile *f, const void *data, size_t len);
/* kvvm_file_write_atomic with the content written by fill(f, ctx) (0: written, else failed
 * with errno), for content too big to build in memory first. */
KVVM_API enum kvvm_err kvvm_file_write_atomic_with(const char *path, unsigned mode,
                                                   int (*fill)(struct kvvm_wfile *f,
                                                               void *ctx),
                                                   void *ctx);
/* Create dir and missing parents; folders created get `mode` (on Windows a protected DACL:
 * SYSTEM and Administrators, and Users read when mode has group or other bits), existing
 * ones are left alone. */
KVVM_API enum kvvm_err kvvm_dir_ensure(const char *path, unsigned mode);
KVVM_API bool kvvm_path_exists(const char *path);
/* path itself (not what it points to) is a symbolic link (a reparse point on Windows). */
KVVM_API bool kvvm_path_is_link(const char *path);
/* Absolute on this system: "/x"; on Windows "C:\x", "C:/x" or "\\server\share\x". */
KVVM_API bool kvvm_path_is_absolute(const char *path);
/* path made absolute against the current folder, as a new string (POSIX: symbolic links
 * resolved, and the path must exist); NULL when it cannot be. */
KVVM_API char *kvvm_path_absolute(const char *path);
/* A new string "a/b" (one separator between: '\' on Windows). */
KVVM_API char *kvvm_path_join(const char *a, const char *b);
/* The folder part of path, as a new string ("." if none). */
KVVM_API char *kvvm_path_dirname(const char *path);
/* Remove files in dir whose names start with prefix (stale temp files). Returns the count. */
KVVM_API int kvvm_dir_sweep_prefix(const char *dir, const char *prefix);

/* What kvvm_file_info tells about a path (symbolic links are followed). */
struct kvvm_file_info {
  bool is_dir, is_file;   /* a folder; a regular file */
  uint64_t size;
  int64_t mtime_ns;       /* last modification, nanoseconds since the Unix epoch */
  unsigned mode;          /* POSIX permission bits; 0 on Windows (its ACLs decide) */
};
/* KVVM_E_NOENT when nothing is there (not logged), KVVM_E_IO (logged) when it cannot be
 * examined. */
KVVM_API enum kvvm_err kvvm_file_info(const char *path, struct kvvm_file_info *out);
/* The names in dir (no "." or ".."), in no particular order, as a NULL-terminated array
 * (free with kvvm_strv_free). KVVM_E_NOENT when dir does not exist; other failures are
 * logged (KVVM_E_IO). */
KVVM_API enum kvvm_err kvvm_dir_list(const char *dir, char ***names);
/* Remove a file; KVVM_OK also when it is already gone. Failures are logged (KVVM_E_IO). */
KVVM_API enum kvvm_err kvvm_file_remove(const char *path);
/* Remove an empty folder; KVVM_OK also when it is gone. KVVM_E_IO (not logged) when it is
 * not empty or cannot be removed: callers decide whether that matters. */
KVVM_API enum kvvm_err kvvm_dir_remove(const char *path);
/* Read a file only the system's administrators can have written, at most max bytes: a
 * regular file reached without a symbolic link, owned by root (Windows: SYSTEM or
 * Administrators) and not writable by anyone else. When it is not, or cannot be read,
 * KVVM_E_IO and reason says why (nothing logged: the caller words the refusal). */
KVVM_API enum kvvm_err kvvm_file_read_trusted(const char *path, size_t max, char **out,
                                              char *reason, size_t reasonlen);

/* An open lock file (opaque: a descriptor on POSIX, a handle on Windows). */
struct kvvm_lock;
/* Open (creating it, 0600) and lock path. exclusive + nonblock: KVVM_E_LOCKED if held.
 * On success *out holds the lock until kvvm_lock_close. */
KVVM_API enum kvvm_err kvvm_lock_open(const char *path, bool exclusive, bool nonblock,
                                      struct kvvm_lock **out);
/* Release the lock and close the file. NULL-safe. */
KVVM_API void kvvm_lock_close(struct kvvm_lock *l);
/* True when another process holds a lock on path (probed without keeping it). */
KVVM_API bool kvvm_lock_is_held(const char *path);

#endif
