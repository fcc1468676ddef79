/* identity, the parts without a server: token answers (strings, numbers, expires_on vs
 * expires_in), the Arc realm header, the Arc key file checks on real temp files, the
 * listener ownership check on real sockets (as root and as nobody), and the words that name
 * an identity. The token flows run against the emulator in test_kv_emu. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "kt.h"
#include "kvvm/fileio.h"
#include "kvvm/identity.h"
#include "kvvm/mem.h"

static enum kvvm_err parse(const char *body, char **tok, time_t *exp, char *why)
{
  return kvvm_identity_parse_token(body, strlen(body), 1000, tok, exp, why, 200);
}

static void token_answers(void)
{
  char *tok = NULL, why[200];
  time_t exp = 0;
  KT_CHECK(parse("{\"access_token\":\"eyJ.a.b\",\"expires_in\":\"3599\","
                 "\"expires_on\":\"1506484173\",\"token_type\":\"Bearer\"}", &tok, &exp,
                 why) == KVVM_OK);
  KT_STREQ(tok, "eyJ.a.b");
  /* Both: expires_in wins, so this machine's clock being off does not matter. */
  KT_CHECK(exp == 1000 + 3599);
  free(tok);
  KT_CHECK(parse("{\"access_token\":\"t\",\"expires_in\":3599,\"expires_on\":1506484173}",
                 &tok, &exp, why) == KVVM_OK);
  KT_CHECK(exp == 1000 + 3599);
  free(tok);
  KT_CHECK(parse("{\"access_token\":\"t\",\"expires_on\":1506484173}", &tok, &exp, why) ==
           KVVM_OK);
  KT_CHECK(exp == 1506484173);
  free(tok);
  KT_CHECK(parse("{\"access_token\":\"t\",\"expires_in\":\"600\"}", &tok, &exp, why) ==
           KVVM_OK);
  KT_CHECK(exp == 1600);
  free(tok);
  /* An unreadable expires_in falls back to expires_on. */
  KT_CHECK(parse("{\"access_token\":\"t\",\"expires_in\":\"soon\","
                 "\"expires_on\":1506484173}", &tok, &exp, why) == KVVM_OK);
  KT_CHECK(exp == 1506484173);
  free(tok);
}

static void token_answers_refused(void)
{
  static const char *const bad[] = {
      "not json", "[]", "{\"expires_in\":60}", "{\"access_token\":\"\",\"expires_in\":60}",
      "{\"access_token\":\"a b\",\"expires_in\":60}",
      "{\"access_token\":\"a\\r\\nX-Evil: 1\",\"expires_in\":60}",
      "{\"access_token\":\"t\"}", "{\"access_token\":\"t\",\"expires_in\":\"-5\"}",
      "{\"access_token\":5,\"expires_in\":60}"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char *tok = NULL, why[200] = "";
    time_t exp = 0;
    KT_CHECK(parse(bad[i], &tok, &exp, why) == KVVM_E_NET);
    KT_CHECK(tok == NULL);
    KT_CONTAINS(why, "the token answer");
  }
}

static void realm_header(void)
{
  char *p;
  KT_STREQ(p = kvvm_identity_parse_realm("Basic realm=/var/opt/azcmagent/tokens/a.key"),
           "/var/opt/azcmagent/tokens/a.key");
  free(p);
  KT_STREQ(p = kvvm_identity_parse_realm("basic  realm=\"/t/b.key\""), "/t/b.key");
  free(p);
  KT_STREQ(p = kvvm_identity_parse_realm("Basic realm=/t/c.key, charset=\"UTF-8\""), "/t/c.key");
  free(p);
  KT_CHECK(kvvm_identity_parse_realm("Bearer realm=/t/a.key") == NULL);
  KT_CHECK(kvvm_identity_parse_realm("Basic realm=") == NULL);
  KT_CHECK(kvvm_identity_parse_realm("Basic realm=\"/t/a.key") == NULL);
  KT_CHECK(kvvm_identity_parse_realm("Basicrealm=/t/a.key") == NULL);
  KT_CHECK(kvvm_identity_parse_realm(NULL) == NULL);
}

#ifndef _WIN32
static char *make_file(const char *dir, const char *name, const char *text, mode_t mode)
{
  char *path = kvvm_path_join(dir, name);
  KT_CHECK(kt_write(path, text) == 0 && chmod(path, mode) == 0);
  return path;
}

static enum kvvm_err read_key(const char *path, const char *dir, char *why, char **key)
{
  size_t len = 0;
  enum kvvm_err rc = kvvm_identity_arc_read_key(path, dir, key, &len, why, 300);
  if (rc == KVVM_OK)
    KT_CHECK(len == strlen(*key));
  return rc;
}

static void arc_key_accepted(void)
{
  char *dir = kt_tmpdir(), *key = NULL, why[300];
  char *good = make_file(dir, "a1.key", "0123abcd\n", 0640);
  KT_CHECK(read_key(good, dir, why, &key) == KVVM_OK);
  KT_STREQ(key, "0123abcd");  /* the trailing newline is not sent */
  free(key);
  /* A name that resolves into the folder is judged by where it resolves. */
  char *dotted = kvvm_xasprintf("%s/../%s/a1.key", dir, strrchr(dir, '/') + 1);
  KT_CHECK(read_key(dotted, dir, why, &key) == KVVM_OK);
  free(key);
  free(dotted);
  free(good);
  kt_rmtree(dir);
  free(dir);
}

static void expect_refused(const char *path, const char *dir, const char *words)
{
  char why[300] = "", *key = (char *)1;
  KT_CHECK(read_key(path, dir, why, &key) == KVVM_E_AUTH);
  KT_CHECK(key == NULL);
  KT_CONTAINS(why, words);
}

static void arc_key_refused(void)
{
  char *dir = kt_tmpdir(), *other = kt_tmpdir();
  char *txt = make_file(dir, "a.txt", "k", 0640);
  char *outside = make_file(other, "o.key", "k", 0640);
  char *link = kvvm_path_join(dir, "l.key");
  char *foreign = make_file(dir, "f.key", "k", 0640);
  char *empty = make_file(dir, "e.key", "", 0640);
  char *big = kvvm_path_join(dir, "b.key"), *sub = kvvm_path_join(dir, "sub");
  char *nested = kvvm_path_join(sub, "n.key"), *ctl = make_file(dir, "c.key", "a\tb", 0640);
  char filler[5000];
  memset(filler, 'x', sizeof filler - 1);
  filler[sizeof filler - 1] = '\0';
  KT_CHECK(kt_write(big, filler) == 0);
  KT_CHECK(symlink(outside, link) == 0 && chown(foreign, 1234, 1234) == 0);
  KT_CHECK(mkdir(sub, 0700) == 0 && kt_write(nested, "k") == 0);
  expect_refused(txt, dir, "does not end in .key");
  expect_refused(outside, dir, "is not a file in the Arc tokens folder");
  expect_refused(link, dir, "is not a file in the Arc tokens folder");
  expect_refused(nested, dir, "is not a file in the Arc tokens folder");
  expect_refused(foreign, dir, "owned by uid 1234 gid 1234, neither root nor himds");
  expect_refused(empty, dir, "holds 0 bytes");
  expect_refused(big, dir, "holds 4999 bytes");
  expect_refused(ctl, dir, "control characters");
  expect_refused(sub, dir, "does not end in .key");
  expect_refused("/nonexistent/x.key", dir, "cannot be resolved");
  char *items[] = {txt, outside, link, foreign, empty, big, sub, nested, ctl};
  for (size_t i = 0; i < sizeof items / sizeof *items; i++)
    free(items[i]);
  kt_rmtree(dir);
  kt_rmtree(other);
  free(dir);
  free(other);
}

static int listen_on(const char *ip, int *port)
{
  struct sockaddr_in a = {.sin_family = AF_INET};
  socklen_t len = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  inet_pton(AF_INET, ip, &a.sin_addr);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0)
    return -1;
  *port = ntohs(a.sin_port);
  return fd;
}

static void listener_owned_by_root(void)
{
  char why[200];
  int port = 0, fd = listen_on("127.0.0.1", &port);
  KT_CHECK(fd >= 0);
  KT_CHECK(kvvm_identity_arc_listener_ok("127.0.0.1", port, why, sizeof why));
  close(fd);
  /* Nobody listens there now. */
  KT_CHECK(!kvvm_identity_arc_listener_ok("127.0.0.1", port, why, sizeof why));
  KT_CONTAINS(why, "no listening socket");
  fd = listen_on("0.0.0.0", &port);  /* the wildcard address serves 127.0.0.1 too */
  KT_CHECK(kvvm_identity_arc_listener_ok("127.0.0.1", port, why, sizeof why));
  close(fd);
  KT_CHECK(!kvvm_identity_arc_listener_ok("not an address", port, why, sizeof why));
}

/* Any local user can listen on a free port: a listener of uid 65534 is not the agent. */
static void listener_of_another_user(void)
{
  int p[2], port = 0;
  char why[200];
  KT_CHECK(pipe(p) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0)
      _exit(1);
    int fd = listen_on("127.0.0.1", &port);
    if (write(p[1], &port, sizeof port) != (ssize_t)sizeof port || fd < 0)
      _exit(1);
    pause();
    _exit(0);
  }
  KT_CHECK(read(p[0], &port, sizeof port) == (ssize_t)sizeof port && port > 0);
  KT_CHECK(!kvvm_identity_arc_listener_ok("127.0.0.1", port, why, sizeof why));
  KT_CONTAINS(why, "belongs to uid 65534, neither root nor himds");
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  close(p[0]);
  close(p[1]);
}

#else
/* identity_arc_linux.c's rules (owner uid, symlinks, /proc listeners); Windows' are
 * tests/windows/test_arc_windows.c's. */
#define ARC_LINUX "the Linux Arc key file and listener rules: test_arc_windows has Windows'"
static void arc_key_accepted(void) { KT_SKIP(ARC_LINUX); }
static void arc_key_refused(void) { KT_SKIP(ARC_LINUX); }
static void listener_owned_by_root(void) { KT_SKIP(ARC_LINUX); }
static void listener_of_another_user(void) { KT_SKIP(ARC_LINUX); }
#endif

static char client_guid[] = "00001111-aaaa-2222-bbbb-3333cccc4444";
static char resource_id[] = "/subscriptions/x/resourceGroups/rg/providers/"
                            "Microsoft.ManagedIdentity/userAssignedIdentities/id1";

static void identity_words(void)
{
  char buf[300];
  struct kvvm_config cfg = {0};
  kvvm_identity_describe(&cfg, NULL, buf, sizeof buf);
  KT_STREQ(buf, "the system-assigned identity");
  cfg.msi_client_id = client_guid;
  cfg.client_id_kind = KVVM_ID_CLIENT_ID;
  kvvm_identity_describe(&cfg, NULL, buf, sizeof buf);
  KT_STREQ(buf, "the user-assigned identity with client id 00001111-aaaa-2222-bbbb-3333cccc4444");
  cfg.msi_client_id = resource_id;
  cfg.client_id_kind = KVVM_ID_RESOURCE_ID;
  kvvm_identity_describe(&cfg, NULL, buf, sizeof buf);
  KT_CONTAINS(buf, "the user-assigned identity /subscriptions/x/");
}

static char override_key[] =
    "secretsManagementSettings.observedCertificates[1].authenticationOverride.msiClientId";

/* A certificate's authenticationOverride wins over authenticationSettings, and an override
 * without a client id means the system-assigned identity, not the default one. */
static void identity_words_override(void)
{
  char buf[300];
  struct kvvm_config cfg = {.msi_client_id = client_guid, .client_id_kind = KVVM_ID_CLIENT_ID};
  struct kvvm_cert_cfg plain = {0}, other = {.id_key = override_key, .msi_client_id = resource_id,
                                             .client_id_kind = KVVM_ID_RESOURCE_ID};
  struct kvvm_cert_cfg system = {.id_key = override_key};
  kvvm_identity_describe(&cfg, &plain, buf, sizeof buf);
  KT_STREQ(buf, "the user-assigned identity with client id 00001111-aaaa-2222-bbbb-3333cccc4444");
  kvvm_identity_describe(&cfg, &other, buf, sizeof buf);
  KT_CONTAINS(buf, "the user-assigned identity /subscriptions/x/");
  kvvm_identity_describe(&cfg, &system, buf, sizeof buf);
  KT_STREQ(buf, "the system-assigned identity");
}

/* Arc: IDENTITY_ENDPOINT must be on this machine, and Arc has no user-assigned identities. */
static void arc_endpoint_rules(void)
{
  char why[300] = "", *tok = NULL;
  struct kvvm_config cfg = {0};
  kt_setenv("IDENTITY_ENDPOINT", "http://10.0.0.5:40342/metadata/identity/oauth2/token");
  KT_CHECK(kvvm_identity_token(&cfg, NULL, "https://vault.azure.net", &tok, why, sizeof why) ==
           KVVM_E_SETTINGS);
  KT_CONTAINS(why, "is not an http:// endpoint on this machine");
  kt_setenv("IDENTITY_ENDPOINT", "http://localhost:40342/metadata/identity/oauth2/token");
  cfg.msi_client_id = client_guid;
  cfg.client_id_kind = KVVM_ID_CLIENT_ID;
  KT_CHECK(kvvm_identity_token(&cfg, NULL, "https://vault.azure.net", &tok, why, sizeof why) ==
           KVVM_E_SETTINGS);
  KT_CONTAINS(why, "remove authenticationSettings.msiClientId");
  KT_CHECK(tok == NULL);
  /* An override names its own key: the error is that certificate's, not the settings'. */
  struct kvvm_cert_cfg cert = {.id_key = override_key, .msi_client_id = client_guid,
                               .client_id_kind = KVVM_ID_CLIENT_ID};
  cfg.msi_client_id = NULL;
  cfg.client_id_kind = KVVM_ID_NONE;
  KT_CHECK(kvvm_identity_token(&cfg, &cert, "https://vault.azure.net", &tok, why, sizeof why) ==
           KVVM_E_SETTINGS);
  KT_STREQ(why, "Azure Arc offers only the machine's system-assigned identity; remove "
                "secretsManagementSettings.observedCertificates[1].authenticationOverride."
                "msiClientId");
  KT_CHECK(tok == NULL);
  kt_unsetenv("IDENTITY_ENDPOINT");
}

static void tokens_dir_default(void)
{
#ifdef _WIN32
  KT_SKIP("the Linux tokens folder and its override: test_arc_windows has Windows' folder");
#else
  unsetenv("KVVM_ARC_TOKENS_DIR");
  KT_STREQ(kvvm_identity_arc_tokens_dir(), "/var/opt/azcmagent/tokens");
  setenv("KVVM_ARC_TOKENS_DIR", "/tmp/x", 1);
  KT_STREQ(kvvm_identity_arc_tokens_dir(), "/tmp/x");
  unsetenv("KVVM_ARC_TOKENS_DIR");
#endif
}

int main(void)
{
  static const struct kt_case cases[] = {
    KT_CASE(token_answers),
    KT_CASE(token_answers_refused),
    KT_CASE(realm_header),
    KT_CASE(arc_key_accepted),
    KT_CASE(arc_key_refused),
    KT_CASE(listener_owned_by_root),
    KT_CASE(listener_of_another_user),
    KT_CASE(identity_words),
    KT_CASE(identity_words_override),
    KT_CASE(arc_endpoint_rules),
    KT_CASE(tokens_dir_default),
  };
  return KT_RUN("identity", cases);
}
