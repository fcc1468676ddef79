/* The program's version, set by the build from manifest/extension.mk. It is shown, never
 * used to find files: the package folder and name come from the agent at run time. */
#ifndef KVVM_VERSION_H
#define KVVM_VERSION_H

#include "kvvm/err.h"

KVVM_API const char *kvvm_version(void);

#endif
