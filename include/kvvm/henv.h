/* HandlerEnvironment.json: where the agent wants our logs, settings and status.
 * Only the Linux keys are relied on (logFolder, configFolder, statusFolder, heartbeatFile);
 * `version` is the schema version, never the extension's. */
#ifndef KVVM_HENV_H
#define KVVM_HENV_H

#include "kvvm/err.h"

struct kvvm_henv {
  char *root;            /* the package folder (where HandlerEnvironment.json was found) */
  char *log_dir;
  char *config_dir;
  char *status_dir;
  char *heartbeat_file;  /* may be NULL */
};

/* Parse the file's text; root is the folder it came from. */
KVVM_API enum kvvm_err kvvm_henv_parse(const char *text, const char *root,
                                       struct kvvm_henv **out);
/* Find and parse the file: $AZURE_GUEST_AGENT_EXTENSION_PATH, then the folder of the
 * executable and its parent, then the current folder. exe may be NULL. */
KVVM_API enum kvvm_err kvvm_henv_load(const char *exe, struct kvvm_henv **out);
KVVM_API void kvvm_henv_free(struct kvvm_henv *h);

#endif
