/* The platform half of the log (src/posix/log_posix.c, src/windows/log_windows.c): the files
 * of the log folder, the lock that orders writers and rotation, stderr, the wall clock and
 * the process id. log.c keeps the policy: what a line holds, when to rotate, which
 * generation goes where, how a failure is reported.
 *
 * These functions never log (they sit beneath the log) and never allocate on the write path.
 * A failure comes back as a platform error code (an errno value, or a Win32 error) that
 * kvvm_log_os_strerror puts in words; `what` names the step that failed. File names are
 * relative to the folder given to kvvm_log_os_open. */
#ifndef KVVM_LOG_INT_H
#define KVVM_LOG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVVM_LOG_NAME "kvvm.log"
/* Folder paths at most this long (bytes, NUL included), so every name fits beside them. */
#define KVVM_LOG_DIR_CAP 4000

/* One writer at a time within the process (a pass worker has two threads): held around a
 * line's append, rotation and stderr copy. */
void kvvm_log_os_enter(void);
void kvvm_log_os_leave(void);

/* Create dir when missing (and its parents; on POSIX mode 0700), then open kvvm.log and
 * kvvm.log.lock in it, refusing anything but a regular file (a planted link is never
 * written through). 0, or an error code with *what set. */
int kvvm_log_os_open(const char *dir, const char **what);
void kvvm_log_os_close(void);

/* Append one line with a single write, under the lock (shared where the system makes one
 * append one line, as POSIX O_APPEND does; else exclusive), to the file that is kvvm.log
 * now (another process may have rotated since the last line). *size: the file's size before
 * the line. A line is written whole or counted as failed. */
int kvvm_log_os_append(const char *line, size_t n, uint64_t *size, const char **what);

/* The lock, exclusively: no line is being appended while it is held. */
int kvvm_log_os_lock_rotation(void);
void kvvm_log_os_unlock_rotation(void);

/* The size of a file of the folder, without following a link; false when it is absent. */
bool kvvm_log_os_size(const char *name, uint64_t *size);
/* Rename within the folder, replacing `to`; remove a file. 0 or an error code. */
int kvvm_log_os_rename(const char *from, const char *to);
int kvvm_log_os_remove(const char *name);
/* gzip src into dst (created or truncated) and flush dst to disk, so a rename of it into
 * place is never followed by a crash that leaves a torn file. 0, or an error code with
 * *what set. */
int kvvm_log_os_gzip(const char *src, const char *dst, const char **what);

/* Write to the process's stderr; failures are dropped (nowhere is left to report them). */
void kvvm_log_os_stderr(const char *s, size_t n);
/* "2026-11-24T21:42:05.123Z " (UTC, milliseconds, a space) into buf; its length. */
size_t kvvm_log_os_stamp(char *buf, size_t cap);
long kvvm_log_os_pid(void);
const char *kvvm_log_os_strerror(int err, char *buf, size_t n);

#endif
