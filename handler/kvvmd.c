/* The service: a thin main over the core library. */
#include "kvvm/daemon.h"

int main(int argc, char **argv) { return kvvm_daemon_main(argc, argv); }
