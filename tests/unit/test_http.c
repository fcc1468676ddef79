/* http: Retry-After, the testing aids' checks, scheme rules, and requests against a tiny
 * HTTP server in a thread: headers captured, size cap, timeout, keep-alive reuse, parallel
 * requests, proxy used for Key Vault and never for identity. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifndef _WIN32
#include <sys/stat.h>
#include <unistd.h>
#endif

#include "kt.h"
#include "kt_net.h"
#include "kvvm/clock.h"
#include "kvvm/fileio.h"
#include "kvvm/http.h"
#include "kvvm/mem.h"

/* A thread that accepts up to `conns` connections and answers every request on each with
 * `reply` (keep-alive unless the reply says close). It notes "accepted" for each connection
 * and the first line of each request; finish_server stops it and returns the notes. */
struct server {
  int port;
  kt_sock lfd;
  int conns;
  const char *reply;
  volatile int stop;
  char notes[8192];
  size_t n;
  struct kt_thread t;
};

static void note(struct server *s, const char *text, size_t len)
{
  if (len > sizeof s->notes - 2 - s->n)
    len = sizeof s->notes - 2 - s->n;
  memcpy(s->notes + s->n, text, len);
  s->n += len;
  s->notes[s->n++] = '\n';
  s->notes[s->n] = '\0';
}

/* Reads one request head; returns its length or 0 at EOF or when told to stop. */
static size_t read_head(struct server *s, kt_sock c, char *buf, size_t cap)
{
  size_t n = 0;
  while (n + 1 < cap) {
    while (!kt_sock_wait(c, 50))
      if (s->stop)
        return 0;
    if (recv(c, buf + n, 1, 0) != 1)
      return 0;
    n++;
    buf[n] = '\0';
    if (n >= 4 && !memcmp(buf + n - 4, "\r\n\r\n", 4))
      return n;
  }
  return 0;
}

static void serve_conn(struct server *s, kt_sock c)
{
  char head[4096];
  while (read_head(s, c, head, sizeof head)) {
    note(s, head, strcspn(head, "\r"));
    if (send(c, s->reply, (int)strlen(s->reply), 0) < 0 || strstr(s->reply, "Connection: close"))
      break;
  }
  kt_sock_close(c);
}

static void server_body(void *p)
{
  struct server *s = p;
  for (int n = 0; n < s->conns && !s->stop;) {
    if (!kt_sock_wait(s->lfd, 50))
      continue;
    kt_sock c = accept(s->lfd, NULL, NULL);
    if (c == KT_NO_SOCK)
      break;
    note(s, "accepted", 8);
    serve_conn(s, c);
    n++;
  }
}

static struct server *serve(const char *reply, int conns)
{
  struct server *s = kvvm_xcalloc(1, sizeof *s);
  s->reply = reply;
  s->conns = conns;
  s->lfd = kt_listen("127.0.0.1", &s->port);
  if (s->lfd != KT_NO_SOCK && kt_thread_start(&s->t, server_body, s) != 0) {
    kt_sock_close(s->lfd);
    s->lfd = KT_NO_SOCK;
  }
  return s;
}

/* Everything the server noted, after it ended (told to stop if still waiting). */
static char *finish_server(struct server *s)
{
  static char buf[8192];
  s->stop = 1;
  if (s->lfd != KT_NO_SOCK) {
    kt_thread_join(&s->t);
    kt_sock_close(s->lfd);
  }
  memcpy(buf, s->notes, sizeof buf);
  free(s);
  return buf;
}

static char *url_for(int port, const char *path)
{
  return kvvm_xasprintf("http://127.0.0.1:%d%s", port, path);
}

static void retry_after_values(void)
{
  time_t at = 1445412480;  /* Wed, 21 Oct 2015 07:28:00 GMT */
  KT_CHECK(kvvm_http_retry_after_s("5", 0) == 5);
  KT_CHECK(kvvm_http_retry_after_s(" 10 ", 0) == 10);
  KT_CHECK(kvvm_http_retry_after_s("0", 0) == 0);
  KT_CHECK(kvvm_http_retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT", at - 30) == 30);
  KT_CHECK(kvvm_http_retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT", at + 30) == 0);
  KT_CHECK(kvvm_http_retry_after_s("soon", 0) == -1);
  KT_CHECK(kvvm_http_retry_after_s("-5", 0) == -1);
  KT_CHECK(kvvm_http_retry_after_s("", 0) == -1);
  KT_CHECK(kvvm_http_retry_after_s(NULL, 0) == -1);
  KT_CHECK(kvvm_http_retry_after_s("99999999999999", 0) > 1000000);
}

static void connect_to_values(void)
{
  char why[300];
  KT_CHECK(kvvm_http_check_connect_to("a.vault.azure.net:443:127.0.0.1:4000", why,
                                      sizeof why) == KVVM_OK);
  KT_CHECK(kvvm_http_check_connect_to("a.vault.azure.net:443:127.0.0.1:1,"
                                      "b.vault.azure.cn:443:[::1]:2", why, sizeof why) == KVVM_OK);
  static const char *const bad[] = {"", "a:443:127.0.0.1", "a:0:b:1", "a:443:b:70000",
                                    "a b:443:c:1", "a:443:b:1:x", "a:443:b:1,", ":443:b:1",
                                    "a:443:[::1:2"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    why[0] = '\0';
    KT_CHECK(kvvm_http_check_connect_to(bad[i], why, sizeof why) == KVVM_E_SETTINGS);
    KT_CONTAINS(why, "KVVM_CONNECT_TO");
  }
}

static void ca_file_rules(void)
{
  char *dir = kt_tmpdir(), why[400], *pem = NULL;
  char *good = kvvm_path_join(dir, "ca.pem"), *link = kvvm_path_join(dir, "link.pem");
  KT_CHECK(kt_write(good, "-----BEGIN CERTIFICATE-----\n") == 0);
#ifndef _WIN32
  KT_CHECK(chmod(good, 0644) == 0);
  KT_CHECK(kvvm_http_check_ca_file(good, &pem, why, sizeof why) == KVVM_OK);
  KT_STREQ(pem, "-----BEGIN CERTIFICATE-----\n");
  free(pem), pem = NULL;
  KT_CHECK(chmod(good, 0664) == 0);
  KT_CHECK(kvvm_http_check_ca_file(good, &pem, why, sizeof why) == KVVM_E_SETTINGS);
  KT_CONTAINS(why, "writable by group or others");
  KT_CHECK(chmod(good, 0644) == 0 && chown(good, 1234, 1234) == 0);
  KT_CHECK(kvvm_http_check_ca_file(good, &pem, why, sizeof why) == KVVM_E_SETTINGS);
  KT_CONTAINS(why, "owned by uid 1234, not root");
  KT_CHECK(symlink(good, link) == 0);
  KT_CHECK(kvvm_http_check_ca_file(link, &pem, why, sizeof why) == KVVM_E_SETTINGS);
  KT_CONTAINS(why, "symbolic link");
#else
  (void)link;
  /* Windows trusts a file owned by SYSTEM or Administrators, which a test cannot make under
   * wine (no file owners); test_fileio_windows checks those rules. */
  KT_SKIP("a CA file accepted, and refused by owner, mode or symlink: POSIX rules");
#endif
  KT_CHECK(kvvm_http_check_ca_file(dir, &pem, why, sizeof why) == KVVM_E_SETTINGS);
  KT_CONTAINS(why, "not a regular file");
  KT_CHECK(kvvm_http_check_ca_file("/nonexistent/ca.pem", &pem, why, sizeof why) ==
           KVVM_E_SETTINGS);
  KT_CONTAINS(why, "cannot be opened");
  KT_CHECK(pem == NULL);
  free(good);
  free(link);
  kt_rmtree(dir);
  free(dir);
}

static void scheme_per_target(void)
{
  struct kvvm_http_resp r;
  struct kvvm_http_req kv = {KVVM_HTTP_KEYVAULT, "http://myvault.vault.azure.net/", NULL, 0, 0, 0};
  struct kvvm_http_req id = {KVVM_HTTP_IDENTITY, "https://127.0.0.1/", NULL, 0, 0, 0};
  KT_CHECK(kvvm_http_get(&kv, &r) == KVVM_OK);
  KT_CHECK(r.fail == KVVM_HTTP_REFUSED && r.status == 0);
  KT_CONTAINS(r.error, "https://");
  kvvm_http_resp_clear(&r);
  KT_CHECK(kvvm_http_get(&id, &r) == KVVM_OK);
  KT_CHECK(r.fail == KVVM_HTTP_REFUSED);
  KT_CONTAINS(r.error, "http://");
  kvvm_http_resp_clear(&r);
}

static void headers_and_body(void)
{
  struct server *s = serve("HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n"
                          "www-authenticate:  Basic realm=/x/y.key \r\nRetry-After: 7\r\n"
                          "Connection: close\r\n\r\nhello", 1);
  char *url = url_for(s->port, "/metadata/identity/oauth2/token?a=b");
  const char *hdrs[] = {"Metadata: true", NULL};
  struct kvvm_http_req req = {KVVM_HTTP_IDENTITY, url, hdrs, 0, 5000, 0};
  struct kvvm_http_resp r;
  KT_CHECK(kvvm_http_get(&req, &r) == KVVM_OK);
  KT_CHECK(r.fail == KVVM_HTTP_OK && r.status == 401 && r.len == 5);
  KT_STREQ(r.body, "hello");
  KT_STREQ(r.www_authenticate, "Basic realm=/x/y.key");
  KT_STREQ(r.retry_after, "7");
  KT_STREQ(r.peer_ip, "127.0.0.1");
  KT_CHECK(r.peer_port == s->port && r.local_port > 0);
  KT_CONTAINS(finish_server(s), "GET /metadata/identity/oauth2/token?a=b HTTP/1.1");
  kvvm_http_resp_clear(&r);
  free(url);
}

static void size_cap(void)
{
  struct server *s = serve("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n"
                          "0123456789012345678901234567890123456789012345678901234567890123456789"
                          "012345678901234567890123456789", 1);
  char *url = url_for(s->port, "/");
  struct kvvm_http_req req = {KVVM_HTTP_IDENTITY, url, NULL, 0, 5000, 50};
  struct kvvm_http_resp r;
  kvvm_http_get(&req, &r);
  KT_CHECK(r.fail == KVVM_HTTP_TOO_BIG);
  KT_CONTAINS(r.error, "larger");
  finish_server(s);
  kvvm_http_resp_clear(&r);
  free(url);
}

static double now_s(void) { return (double)kvvm_clock_mono_ms() / 1000.0; }

static void total_timeout(void)
{
  struct server *s = serve("", 1);  /* reads the request, never answers */
  char *url = url_for(s->port, "/");
  struct kvvm_http_req req = {KVVM_HTTP_IDENTITY, url, NULL, 0, 500, 0};
  struct kvvm_http_resp r;
  double t0 = now_s();
  kvvm_http_get(&req, &r);
  double took = now_s() - t0;
  KT_CHECK(r.fail == KVVM_HTTP_TRANSIENT && r.status == 0);
  KT_CHECK(took >= 0.45 && took < 3.0);
  finish_server(s);
  kvvm_http_resp_clear(&r);
  free(url);
}

/* Three requests in a row ride one kept-alive connection. */
static void connection_reused(void)
{
  struct server *s = serve("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 3);
  char *url = url_for(s->port, "/");
  struct kvvm_http_req req = {KVVM_HTTP_IDENTITY, url, NULL, 0, 5000, 0};
  for (int i = 0; i < 3; i++) {
    struct kvvm_http_resp r;
    kvvm_http_get(&req, &r);
    KT_CHECK(r.fail == KVVM_HTTP_OK && r.status == 200);
    kvvm_http_resp_clear(&r);
  }
  const char *seen = finish_server(s), *second = strstr(seen, "accepted");
  KT_CHECK(second && !strstr(second + 1, "accepted"));
  free(url);
}

static int finished;

static void count_done(void *user, const struct kvvm_http_resp *r)
{
  (void)user;
  finished += r->fail == KVVM_HTTP_OK && r->status == 200 && !strcmp(r->body, "ok");
}

static void parallel_requests(void)
{
  struct server *s = serve("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                          5);
  char *url = url_for(s->port, "/");
  struct kvvm_http_req req = {KVVM_HTTP_IDENTITY, url, NULL, 0, 5000, 0};
  finished = 0;
  for (int i = 0; i < 5; i++)
    kvvm_http_start(&req, count_done, NULL);
  for (int spins = 0; kvvm_http_step(200) > 0 && spins < 100; spins++)
    ;
  KT_CHECK(finished == 5);
  finish_server(s);
  free(url);
}

/* A proxy that records what it was asked and refuses. */
static void proxy_only_for_key_vault(void)
{
  struct server *proxy = serve("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n"
                              "Connection: close\r\n\r\n", 1);
  struct server *direct = serve("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                               "Connection: close\r\n\r\nok", 1);
  char *proxy_url = url_for(proxy->port, ""), *url = url_for(direct->port, "/");
  kt_setenv("http_proxy", proxy_url);
  kt_setenv("https_proxy", proxy_url);
  struct kvvm_http_req id = {KVVM_HTTP_IDENTITY, url, NULL, 0, 5000, 0};
  struct kvvm_http_req kv = {KVVM_HTTP_KEYVAULT, "https://myvault.vault.azure.net/secrets/x",
                             NULL, 0, 5000, 0};
  struct kvvm_http_resp r;
  kvvm_http_get(&id, &r);
  KT_CHECK(r.fail == KVVM_HTTP_OK && r.status == 200);
  kvvm_http_resp_clear(&r);
  kvvm_http_get(&kv, &r);
  KT_CHECK(r.fail != KVVM_HTTP_OK);
  kvvm_http_resp_clear(&r);
  kt_unsetenv("http_proxy");
  kt_unsetenv("https_proxy");
  KT_CONTAINS(finish_server(proxy), "CONNECT myvault.vault.azure.net:443 HTTP/1.1");
  KT_CONTAINS(finish_server(direct), "GET / HTTP/1.1");
  free(proxy_url);
  free(url);
}

/* A refused testing aid fails every request with the reason; it is read once per init. */
static void refused_aid_fails_requests(void)
{
  kvvm_http_shutdown();
  kt_setenv("KVVM_CA_FILE", "/nonexistent/ca.pem");
  KT_CHECK(kvvm_http_test_overrides());
  struct kvvm_http_req kv = {KVVM_HTTP_KEYVAULT, "https://myvault.vault.azure.net/", NULL, 0, 0, 0};
  struct kvvm_http_resp r;
  KT_CHECK(kvvm_http_get(&kv, &r) == KVVM_E_SETTINGS);
  KT_CHECK(r.fail == KVVM_HTTP_REFUSED);
  KT_CONTAINS(r.error, "KVVM_CA_FILE /nonexistent/ca.pem cannot be opened");
  kvvm_http_resp_clear(&r);
  kt_unsetenv("KVVM_CA_FILE");
  kvvm_http_shutdown();
  kt_setenv("KVVM_CONNECT_TO", "nonsense");
  KT_CHECK(kvvm_http_get(&kv, &r) == KVVM_E_SETTINGS);
  KT_CONTAINS(r.error, "KVVM_CONNECT_TO entry \"nonsense\"");
  kvvm_http_resp_clear(&r);
  kt_unsetenv("KVVM_CONNECT_TO");
  kvvm_http_shutdown();
  KT_CHECK(!kvvm_http_test_overrides());
}

int main(void)
{
  static const struct kt_case cases[] = {
    KT_CASE(retry_after_values),
    KT_CASE(connect_to_values),
    KT_CASE(ca_file_rules),
    KT_CASE(scheme_per_target),
    KT_CASE(headers_and_body),
    KT_CASE(size_cap),
    KT_CASE(total_timeout),
    KT_CASE(connection_reused),
    KT_CASE(parallel_requests),
    KT_CASE(proxy_only_for_key_vault),
    KT_CASE(refused_aid_fails_requests),
  };
  kt_unsetenv("KVVM_CA_FILE");
  kt_unsetenv("KVVM_CONNECT_TO");
  if (kt_net_init() != 0)
    return 1;
  int rc = KT_RUN("http", cases);
  kvvm_http_shutdown();
  return rc;
}
