/* Clouds: azure-cli's cloud.py (keyvault_dns, mhsm_dns, keyvault resource). */
#include <string.h>
#include <strings.h>

#include "kvvm/cloud.h"

struct cloud {
  const char *suffix;
  const char *resource;
};

static const struct cloud clouds[] = {
    {".vault.azure.net", "https://vault.azure.net"},
    {".vault.azure.cn", "https://vault.azure.cn"},
    {".vault.usgovcloudapi.net", "https://vault.usgovcloudapi.net"},
    {".vault.microsoftazure.de", "https://vault.microsoftazure.de"},
};

static const char *const hsm_suffixes[] = {
    ".managedhsm.azure.net",
    ".managedhsm.azure.cn",
    ".managedhsm.usgovcloudapi.net",
    ".managedhsm.microsoftazure.de",
};

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static bool ends_with_ci(const char *s, const char *suffix)
{
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

const char *kvvm_cloud_resource(const char *host, size_t *label_len)
{
  for (size_t i = 0; i < N_ELEMS(clouds); i++) {
    if (!ends_with_ci(host, clouds[i].suffix))
      continue;
    if (label_len)
      *label_len = strlen(host) - strlen(clouds[i].suffix);
    return clouds[i].resource;
  }
  return NULL;
}

bool kvvm_cloud_is_hsm(const char *host)
{
  for (size_t i = 0; i < N_ELEMS(hsm_suffixes); i++)
    if (ends_with_ci(host, hsm_suffixes[i]))
      return true;
  return false;
}
