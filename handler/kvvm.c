/* The operator's command line: a thin main over the core library. */
#include "kvvm/cli.h"

int main(int argc, char **argv) { return kvvm_cli_main(argc, argv); }
