/* libFuzzer: the settings parser takes whatever the agent (or a user) put in <seq>.settings. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "kvvm/settings.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  fuzz_quiet();
  struct kvvm_settings_opts opts = {.default_store_root = "/var/lib/waagent/Microsoft.Azure.KeyVault.Store"};
  struct kvvm_config *cfg = NULL;
  char why[512];
  if (kvvm_settings_parse((const char *)data, size, &opts, &cfg, why, sizeof(why)) == KVVM_OK) {
    char *canon = kvvm_config_to_json(cfg);
    free(canon);
  }
  kvvm_config_free(cfg);
  return 0;
}
