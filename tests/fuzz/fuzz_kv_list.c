/* libFuzzer: a page of a vault's listing comes from the network (kv_list.h). Whatever it
 * holds, it is read or refused as a whole, and a nextLink kept is on the vault itself. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/kv_list.h"
#include "fuzz_common.h"

#define HOST "myvault.vault.azure.net"
#define NEXT "https://" HOST "/secrets?"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  fuzz_quiet();
  struct kvvm_kv_listing l;
  char why[256], *next = NULL;
  memset(&l, 0, sizeof(l));
  if (kvvm_kv_parse_page((const char *)data, size, HOST, &l, &next, why, sizeof(why)) ==
          KVVM_OK && next && strncmp(next, NEXT, sizeof NEXT - 1) != 0)
    abort();
  free(next);
  kvvm_kv_listing_clear(&l);
  return 0;
}
