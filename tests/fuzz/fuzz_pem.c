/* libFuzzer: the PEM reader and the bundle builder take whatever text a Key Vault secret
 * holds; what they accept must also write back out. */
#include <stddef.h>
#include <stdint.h>

#include "kvvm/certmat.h"
#include "kvvm/mem.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  fuzz_quiet();
  struct kvvm_bundle *b = NULL;
  char why[256];
  if (kvvm_certmat_from_pem((const char *)data, size, &b, why, sizeof(why)) == KVVM_OK) {
    char *pem = NULL;
    size_t len = 0;
    if (kvvm_bundle_to_pem(b, &pem, &len) == KVVM_OK)
      kvvm_free_secret(pem, len);
  }
  kvvm_bundle_free(b);
  return 0;
}
