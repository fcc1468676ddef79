/* kvvm_rand_bytes from BCryptGenRandom with the system-preferred RNG (no algorithm handle to
 * open or leak; available since Windows Vista). */
#include <windows.h>
#include <bcrypt.h>

#include "kvvm/log.h"
#include "kvvm/rand.h"

enum kvvm_err kvvm_rand_bytes(void *buf, size_t n)
{
  unsigned char *p = buf;
  while (n) {
    /* The length is a ULONG: ask in pieces a ULONG can hold. */
    ULONG k = n > 0x40000000u ? 0x40000000u : (ULONG)n;
    NTSTATUS st = BCryptGenRandom(NULL, p, k, BCRYPT_USE_SYSTEM_PREFERRED_RNG);
    if (!BCRYPT_SUCCESS(st)) {
      KVVM_WARN("random bytes: BCryptGenRandom: NTSTATUS 0x%08lx", (unsigned long)st);
      return KVVM_E_IO;
    }
    p += k;
    n -= k;
  }
  return KVVM_OK;
}
