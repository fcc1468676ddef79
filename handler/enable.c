/* The agent's enableCommand: a thin main over the core library. */
#include "kvvm/cmd.h"

int main(int argc, char **argv) { return kvvm_cmd_main(KVVM_CMD_ENABLE, argc, argv); }
