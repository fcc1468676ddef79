/* Test build only: see arpa/inet.h beside this file. */
#include <winsock2.h>
