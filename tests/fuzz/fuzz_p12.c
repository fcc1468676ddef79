/* libFuzzer: the PKCS#12 reader takes whatever bytes a Key Vault secret decodes to. The
 * password is Key Vault's empty one, as in the seeds (tests/fuzz/corpus/p12: one iteration
 * each, most without a MAC so that mutations reach the bags and the decryptions). */
#include <stddef.h>
#include <stdint.h>

#include "certmat/certmat_int.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  fuzz_quiet();
  struct certmat_parts parts;
  char why[256];
  certmat_parts_init(&parts);
  certmat_p12_read(data, size, "", &parts, why, sizeof(why));
  certmat_parts_free(&parts);
  return 0;
}
