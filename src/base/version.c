#include "kvvm/version.h"

const char *kvvm_version(void) { return KVVM_VERSION_STRING; }
