/* kvvm, the operator's command line: status, check-settings, sync-now, --version. */
#ifndef KVVM_CLI_H
#define KVVM_CLI_H

#include "kvvm/err.h"

/* Returns the process exit code. */
KVVM_API int kvvm_cli_main(int argc, char **argv);

#endif
