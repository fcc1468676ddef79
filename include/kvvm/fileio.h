/* Files and folders, the careful way: bounded reads, atomic writes (temp in the same folder,
 * write all, fsync, mode on the descriptor, rename, fsync the folder), folders created with
 * an exact mode, advisory locks. The POSIX implementation is fileio_posix.c. */
#ifndef KVVM_FILEIO_H
#define KVVM_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "kvvm/err.h"

/* Every temp file kvvm creates starts with this, so a sweep finds what a crash left. */
#define KVVM_TEMP_PREFIX ".kvvm-tmp."

/* Read a whole regular file of at most max bytes into a new NUL-terminated buffer.
 * KVVM_E_NOENT if it does not exist (not logged: callers decide), KVVM_E_IO otherwise. */
KVVM_API enum kvvm_err kvvm_file_read(const char *path, size_t max, char **out, size_t *len);
/* Replace path atomically with data; the new file gets `mode`. A reader sees the old or
 * the new content, never a mix; a crash leaves one of the two. */
KVVM_API enum kvvm_err kvvm_file_write_atomic(const char *path, const void *data, size_t len,
                                              mode_t mode);
/* The same with the content written by fill(fd, ctx) (0: written, else failed with errno),
 * for content too big to build in memory first. */
KVVM_API enum kvvm_err kvvm_file_write_atomic_with(const char *path, mode_t mode,
                                                   int (*fill)(int fd, void *ctx), void *ctx);
/* Create dir and missing parents; folders created get `mode`, existing ones are left alone. */
KVVM_API enum kvvm_err kvvm_dir_ensure(const char *path, mode_t mode);
KVVM_API bool kvvm_path_exists(const char *path);
/* Write all of data to fd, through short writes and EINTR; 0, or -1 with errno set. */
KVVM_API int kvvm_fd_write_all(int fd, const void *data, size_t len);
/* A new string "a/b" (one slash between). */
KVVM_API char *kvvm_path_join(const char *a, const char *b);
/* The folder part of path, as a new string ("." if none). */
KVVM_API char *kvvm_path_dirname(const char *path);
/* Remove files in dir whose names start with prefix (stale temp files). Returns the count. */
KVVM_API int kvvm_dir_sweep_prefix(const char *dir, const char *prefix);

/* Open (creating 0600) and lock path. exclusive + nonblock: KVVM_E_LOCKED if held.
 * On success *fd holds the lock until closed. */
KVVM_API enum kvvm_err kvvm_lock_open(const char *path, bool exclusive, bool nonblock, int *fd);
/* True when another process holds a lock on path (probed without keeping it). */
KVVM_API bool kvvm_lock_is_held(const char *path);

#endif
