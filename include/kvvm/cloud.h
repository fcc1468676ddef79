/* The Azure clouds Key Vault lives in (keyvault.md §3.5): vault DNS suffixes and the token
 * audience of each, and the managed HSM suffixes (refused: they hold keys, not secrets).
 * One table for the settings checks and the Key Vault client. */
#ifndef KVVM_CLOUD_H
#define KVVM_CLOUD_H

#include <stdbool.h>
#include <stddef.h>
#include "kvvm/err.h"

#define KVVM_CLOUD_SUFFIXES \
  ".vault.azure.net, .vault.azure.cn, .vault.usgovcloudapi.net or .vault.microsoftazure.de"

/* The audience for a vault host (case-insensitive suffix match), or NULL. When it returns
 * non-NULL, *label_len is the length of the part before the suffix (the vault name). */
KVVM_API const char *kvvm_cloud_resource(const char *host, size_t *label_len);
/* True for a managed HSM host of any cloud. */
KVVM_API bool kvvm_cloud_is_hsm(const char *host);

#endif
