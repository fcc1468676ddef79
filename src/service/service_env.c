/* The environment kvvmd is given. The agent runs enable with proxy variables and the
 * testing aids in its environment, but kvvmd is started by the service manager (systemd,
 * Windows' SCM), which knows nothing of them: enable hands this list on (Linux: the unit's
 * environment file; Windows: kvvmd.env in the package folder). */
#include <stdbool.h>
#include <string.h>

#include "kvvm/mem.h"
#include "kvvm/service.h"

/* Names compared ignoring case: Windows' are case-insensitive ("Https_Proxy" is the same
 * variable), and a stray case on Linux carries a variable nothing reads, which is harmless. */
static bool name_is(const char *entry, const char *name)
{
  size_t n = strlen(name);
  for (size_t i = 0; i < n; i++) {
    char a = entry[i], b = name[i];
    if (a >= 'a' && a <= 'z')
      a = (char)(a - 'a' + 'A');
    if (a != b)
      return false;
  }
  return true;
}

/* Proxies as curl reads them (IMDS never goes through one: http.c's concern, not the
 * environment's), the identity endpoints Azure Arc and App Service-style hosts set, and every
 * KVVM_* testing aid. */
static bool carried(const char *entry)
{
  static const char *const names[] = {"HTTP_PROXY=", "HTTPS_PROXY=", "NO_PROXY=", "ALL_PROXY=",
                                      "IDENTITY_ENDPOINT=", "IMDS_ENDPOINT=", NULL};
  if (name_is(entry, "KVVM_") && strchr(entry, '='))
    return true;
  for (const char *const *n = names; *n; n++)
    if (name_is(entry, *n))
      return true;
  return false;
}

char **kvvm_service_env(const char *const *env)
{
  size_t n = 0, cap = 8;
  char **out = kvvm_xcalloc(cap, sizeof(*out));
  for (const char *const *e = env; e && *e; e++) {
    if (!carried(*e))
      continue;
    if (n + 1 >= cap)
      out = kvvm_xrealloc(out, (cap *= 2) * sizeof(*out));
    out[n++] = kvvm_xstrdup(*e);
  }
  out[n] = NULL;
  return out;
}
