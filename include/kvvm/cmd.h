/* The one runner behind the five handler commands: find HandlerEnvironment.json, open the
 * log, run the command's step, map the result to an exit code (the Azure handlers' cmd
 * table, in C). */
#ifndef KVVM_CMD_H
#define KVVM_CMD_H

#include "kvvm/err.h"

enum kvvm_cmd_op { KVVM_CMD_INSTALL, KVVM_CMD_ENABLE, KVVM_CMD_DISABLE, KVVM_CMD_UPDATE,
                   KVVM_CMD_UNINSTALL };

/* Returns the process exit code. */
KVVM_API int kvvm_cmd_main(enum kvvm_cmd_op op, int argc, char **argv);

#endif
