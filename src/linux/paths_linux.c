/* Default locations on Linux. The store root is Microsoft's Linux extension's, so
 * application configs written for it keep working. */
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "kvvm/mem.h"
#include "kvvm/paths.h"

static const char *env_or(const char *name, const char *dflt)
{
  const char *v = getenv(name);
  return (v && v[0] == '/') ? v : dflt;
}

const char *kvvm_paths_state_dir(void) { return env_or("KVVM_STATE_DIR", "/var/lib/kvvm"); }

const char *kvvm_paths_store_root(void)
{
  return env_or("KVVM_STORE_ROOT", "/var/lib/waagent/Microsoft.Azure.KeyVault.Store");
}

const char *kvvm_paths_hooks_dir(void) { return env_or("KVVM_HOOKS_DIR", "/etc/kvvm/hooks.d"); }

/* Where the distributions keep the system's trusted roots as one PEM bundle: Debian and
 * Ubuntu, RHEL and its kin, SUSE, Alpine and others. */
const char *kvvm_paths_trust_file(void)
{
  static const char *const known[] = {"/etc/ssl/certs/ca-certificates.crt",
                                      "/etc/pki/tls/certs/ca-bundle.crt",
                                      "/etc/ssl/ca-bundle.pem", "/etc/ssl/cert.pem"};
  const char *v = getenv("KVVM_TRUST_FILE");
  if (v && v[0] == '/')
    return v;
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (access(known[i], R_OK) == 0)
      return known[i];
  return NULL;
}

const char *kvvm_paths_metrics_dir(void)
{
  return env_or("KVVM_METRICS_DIR", "/var/lib/prometheus/node-exporter");
}

enum kvvm_store_kind kvvm_paths_store_kind(void) { return KVVM_STORE_FILES; }

bool kvvm_paths_update_uninstalls_first(void) { return false; }

char *kvvm_paths_self_exe(void)
{
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0)
    return NULL;
  buf[n] = '\0';
  return kvvm_xstrdup(buf);
}
