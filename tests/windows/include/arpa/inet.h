/* Test build only: certmat_bundle.c includes <arpa/inet.h> for inet_ntop until its POSIX
 * headers move out (Windows issue I); Winsock has the same function. */
#include <ws2tcpip.h>
