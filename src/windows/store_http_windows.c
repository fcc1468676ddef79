/* HTTP.sys's SSL bindings (what `netsh http show sslcert` lists): the certificate thumbprint
 * each IP:port and hostname:port binding names, so an old version a site still serves is
 * not removed. Read through httpapi.dll's configuration calls (HTTP_INITIALIZE_CONFIG),
 * enumerating by index until ERROR_NO_MORE_ITEMS; ERROR_FILE_NOT_FOUND, "the record cannot
 * be found", ends it too: there is no record at that index (wine 8's stub answers only
 * that). Any other answer means the bindings are unknown, and the caller removes nothing
 * they might name. */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/mem.h"
#include "windows/store_int.h"
#include "windows/win_int.h"

/* mingw-w64's http.h stops at Vista: the hostname:port (SNI) records of Windows 8 and
 * Server 2012 on, laid out as the Windows SDK declares them. */
#define CONFIG_SSL_SNI ((HTTP_SERVICE_CONFIG_ID)5)  /* HttpServiceConfigSslSniCertInfo */
struct sni_key {
  SOCKADDR_STORAGE ip_port;
  PWSTR host;
};
struct sni_set {
  struct sni_key key;
  HTTP_SERVICE_CONFIG_SSL_PARAM param;
};
struct sni_query {
  HTTP_SERVICE_CONFIG_QUERY_TYPE type;
  struct sni_key key;
  DWORD token;
};

struct list {
  struct store_win_binding *b;
  size_t n;
};

static unsigned short port_of(const struct sockaddr *sa)
{
  return ntohs(sa->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
                                         : ((const struct sockaddr_in *)sa)->sin_port);
}

/* "0.0.0.0:443", "[::]:443": as netsh shows the binding. */
static char *ip_port(const struct sockaddr *sa)
{
  char ip[INET6_ADDRSTRLEN] = "?";
  if (!sa)
    return kvvm_xstrdup("?");
  const void *a = sa->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                                            : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
  inet_ntop(sa->sa_family, a, ip, sizeof ip);
  return kvvm_xasprintf(sa->sa_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, port_of(sa));
}

static void add(struct list *l, char *name, const HTTP_SERVICE_CONFIG_SSL_PARAM *p)
{
  struct store_win_binding *b;
  l->b = kvvm_xrealloc(l->b, (l->n + 1) * sizeof *l->b);
  b = &l->b[l->n++];
  b->name = name;
  b->thumbprint[0] = 0;
  for (ULONG i = 0; p->pSslHash && i < p->SslHashLength && i < 20; i++)
    snprintf(b->thumbprint + 2 * i, 3, "%02X", ((const BYTE *)p->pSslHash)[i]);
}

static void add_record(struct list *l, bool sni, const void *rec)
{
  if (!sni) {
    const HTTP_SERVICE_CONFIG_SSL_SET *s = rec;
    add(l, ip_port(s->KeyDesc.pIpPort), &s->ParamDesc);
    return;
  }
  const struct sni_set *s = rec;
  char *host = s->key.host ? kvvm_win_utf8(s->key.host) : NULL;
  add(l, kvvm_xasprintf("%s:%u", host ? host : "?", port_of((const struct sockaddr *)&s->key.ip_port)),
      &s->param);
  free(host);
}

/* Record i of the kind, added to l; ERROR_NO_MORE_ITEMS after the last. */
static ULONG query_one(bool sni, DWORD i, struct list *l)
{
  HTTP_SERVICE_CONFIG_SSL_QUERY q = {HttpServiceConfigQueryNext, {NULL}, i};
  struct sni_query qs = {HttpServiceConfigQueryNext, {{0}, NULL}, i};
  HTTP_SERVICE_CONFIG_ID id = sni ? CONFIG_SSL_SNI : HttpServiceConfigSSLCertInfo;
  void *in = sni ? (void *)&qs : (void *)&q;
  ULONG inlen = sni ? sizeof qs : sizeof q, need = 0;
  ULONG r = HttpQueryServiceConfiguration(NULL, id, in, inlen, NULL, 0, &need, NULL);
  if (r == ERROR_FILE_NOT_FOUND)
    return ERROR_NO_MORE_ITEMS;
  if (r != ERROR_INSUFFICIENT_BUFFER || !need)
    return r == NO_ERROR ? ERROR_INVALID_DATA : r;
  void *buf = kvvm_xmalloc(need);
  r = HttpQueryServiceConfiguration(NULL, id, in, inlen, buf, need, &need, NULL);
  if (r == NO_ERROR)
    add_record(l, sni, buf);
  free(buf);
  return r;
}

static ULONG query_all(bool sni, struct list *l)
{
  ULONG r;
  for (DWORD i = 0; (r = query_one(sni, i, l)) == NO_ERROR; i++)
    ;
  return r == ERROR_NO_MORE_ITEMS ? NO_ERROR : r;
}

bool store_win_http_bindings(struct store_win_binding **out, size_t *n, char *why, size_t whyn)
{
  HTTPAPI_VERSION v = HTTPAPI_VERSION_1;
  struct list l = {NULL, 0};
  char err[300];
  const char *what = "cannot reach the HTTP service (HttpInitialize)";
  ULONG r = HttpInitialize(v, HTTP_INITIALIZE_CONFIG, NULL);
  if (r == NO_ERROR) {
    what = "cannot read its SSL bindings";
    if ((r = query_all(false, &l)) == NO_ERROR)
      r = query_all(true, &l);
    HttpTerminate(HTTP_INITIALIZE_CONFIG, NULL);
  }
  if (r != NO_ERROR) {
    snprintf(why, whyn, "HTTP.sys: %s: %s", what, kvvm_win_strerror(r, err, sizeof err));
    store_win_bindings_free(l.b, l.n);
    l = (struct list){NULL, 0};
  }
  *out = l.b;
  *n = l.n;
  return r == NO_ERROR;
}

void store_win_bindings_free(struct store_win_binding *b, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(b[i].name);
  free(b);
}
