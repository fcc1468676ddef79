/* Default locations on this platform, each overridable by a documented variable:
 * KVVM_STATE_DIR (state that survives updates), KVVM_STORE_ROOT (the default certificate
 * store root), KVVM_HOOKS_DIR (renewal hooks). */
#ifndef KVVM_PATHS_H
#define KVVM_PATHS_H

#include "kvvm/err.h"
#include "kvvm/settings.h"

KVVM_API const char *kvvm_paths_state_dir(void);
KVVM_API const char *kvvm_paths_store_root(void);
KVVM_API const char *kvvm_paths_hooks_dir(void);
/* What the store backend of this platform installs into (kvvm_settings_opts.store_kind). */
KVVM_API enum kvvm_store_kind kvvm_paths_store_kind(void);
/* The absolute path of the running executable, as a new string (NULL if unknown). */
KVVM_API char *kvvm_paths_self_exe(void);

#endif
