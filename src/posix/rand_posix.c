/* kvvm_rand_bytes from getrandom(2). */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "kvvm/log.h"
#include "kvvm/rand.h"

enum kvvm_err kvvm_rand_bytes(void *buf, size_t n)
{
  unsigned char *p = buf;
  while (n) {
    /* GRND_NONBLOCK: kvvmd may start early in boot, and a wait for entropy there would hold
     * up a stop or a pass for a jitter value. Large requests may come back short: loop. */
    ssize_t r = getrandom(p, n, GRND_NONBLOCK);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      KVVM_WARN("random bytes: getrandom: %s", r < 0 ? strerror(errno) : "no data");
      return KVVM_E_IO;
    }
    p += r;
    n -= (size_t)r;
  }
  return KVVM_OK;
}
