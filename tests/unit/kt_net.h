/* Loopback sockets for the tests' small servers and clients, in each system's words. */
#ifndef KT_NET_H
#define KT_NET_H

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

#include "kt_os.h"

#ifdef _WIN32
typedef SOCKET kt_sock;
#define KT_NO_SOCK INVALID_SOCKET

static inline int kt_net_init(void)
{
  WSADATA w;
  return WSAStartup(MAKEWORD(2, 2), &w) == 0 ? 0 : -1;
}

static inline void kt_sock_close(kt_sock s) { closesocket(s); }
#else
typedef int kt_sock;
#define KT_NO_SOCK (-1)

static inline int kt_net_init(void) { return 0; }

static inline void kt_sock_close(kt_sock s) { close(s); }
#endif

/* A socket listening on ip (port 0: any free one, set in *port), or KT_NO_SOCK. */
static inline kt_sock kt_listen(const char *ip, int *port)
{
  struct sockaddr_in a = {.sin_family = AF_INET};
  socklen_t len = sizeof a;
  kt_sock s = socket(AF_INET, SOCK_STREAM, 0);
  if (s == KT_NO_SOCK)
    return s;
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1 ||
      bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 16) != 0 ||
      getsockname(s, (struct sockaddr *)&a, &len) != 0) {
    kt_sock_close(s);
    return KT_NO_SOCK;
  }
  *port = ntohs(a.sin_port);
  return s;
}

/* Whether s has something to read (or a connection to accept) within ms. */
static inline int kt_sock_wait(kt_sock s, long ms)
{
  fd_set rd;
  FD_ZERO(&rd);
  FD_SET(s, &rd);
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  return select((int)s + 1, &rd, NULL, NULL, &tv) > 0;
}

#endif
