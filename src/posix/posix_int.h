/* What the POSIX platform files share (src/posix/ and src/linux/ only: no portable file
 * includes this). */
#ifndef KVVM_POSIX_INT_H
#define KVVM_POSIX_INT_H

#include <stddef.h>

/* Write all of data to fd, through short writes and EINTR; 0, or -1 with errno set. */
int kvvm_fd_write_all(int fd, const void *data, size_t len);

#endif
