/* Default locations on this platform, each overridable by a documented variable:
 * KVVM_STATE_DIR (state that survives updates), KVVM_STORE_ROOT (the default certificate
 * store root), KVVM_HOOKS_DIR (renewal hooks), KVVM_TRUST_FILE (trusted roots). */
#ifndef KVVM_PATHS_H
#define KVVM_PATHS_H

#include <stdbool.h>

#include "kvvm/err.h"

KVVM_API const char *kvvm_paths_state_dir(void);
KVVM_API const char *kvvm_paths_store_root(void);
KVVM_API const char *kvvm_paths_hooks_dir(void);
/* The system's trusted roots as one PEM file (KVVM_TRUST_FILE, else the distribution's),
 * for the chain check of files stores; NULL when there is none (and on Windows). */
KVVM_API const char *kvvm_paths_trust_file(void);
/* node_exporter's textfile collector folder as the distribution packages it (Debian's
 * prometheus-node-exporter: /var/lib/prometheus/node-exporter; KVVM_METRICS_DIR), the
 * default of metricsTextfileDir; NULL when this system has none (Windows). */
KVVM_API const char *kvvm_paths_metrics_dir(void);
/* What certificates are installed into on this system (kvvm_settings_opts.store_kind): files
 * in folders (Linux), or the Windows certificate store, where certificateStoreLocation can
 * only name LocalMachine or CurrentUser and the Linux-only keys are ignored with a warning. */
enum kvvm_store_kind { KVVM_STORE_FILES, KVVM_STORE_WINDOWS };
KVVM_API enum kvvm_store_kind kvvm_paths_store_kind(void);
/* Does the guest agent run the old version's uninstall before the new version's update?
 * Windows' does (Disable, Uninstall, Update, Install, Enable), the new package already
 * unpacked beside the old one; Linux's runs update first. */
KVVM_API bool kvvm_paths_update_uninstalls_first(void);
/* The absolute path of the running executable, as a new string (NULL if unknown). */
KVVM_API char *kvvm_paths_self_exe(void);

#endif
