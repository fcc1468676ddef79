/* libFuzzer: Key Vault's answers (secret bundles) and challenges come from the network. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/kv.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  fuzz_quiet();
  struct kvvm_secret s;
  char why[256];
  memset(&s, 0, sizeof(s));
  kvvm_kv_parse_bundle((const char *)data, size, &s, why, sizeof(why));
  kvvm_kv_secret_clear(&s);
  /* The same bytes as a WWW-Authenticate header value. */
  char *hdr = malloc(size + 1), *res = NULL;
  memcpy(hdr, data, size);
  hdr[size] = '\0';
  if (kvvm_kv_check_challenge(hdr, "myvault.vault.azure.net", &res, why, sizeof(why)) == KVVM_OK)
    free(res);
  free(hdr);
  return 0;
}
