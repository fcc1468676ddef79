/* kv, the parts without a server: vault hosts and their clouds, secret URLs, the 401
 * challenge (resource= or scope=, domain check), the SecretBundle, and requests refused
 * before anything is sent. Fetches against the emulator are in test_kv_emu. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt.h"
#include "kvvm/kv.h"
#include "kvvm/mem.h"

static void hosts_and_clouds(void)
{
  char why[300] = "";
  KT_STREQ(kvvm_kv_resource_for_host("myvault.vault.azure.net", why, sizeof why),
           "https://vault.azure.net");
  KT_STREQ(kvvm_kv_resource_for_host("myvault.vault.azure.cn", why, sizeof why),
           "https://vault.azure.cn");
  KT_STREQ(kvvm_kv_resource_for_host("myvault.vault.usgovcloudapi.net", why, sizeof why),
           "https://vault.usgovcloudapi.net");
  KT_STREQ(kvvm_kv_resource_for_host("myvault.vault.microsoftazure.de", why, sizeof why),
           "https://vault.microsoftazure.de");
  KT_CHECK(kvvm_kv_resource_for_host("myhsm.managedhsm.azure.net", why, sizeof why) == NULL);
  KT_CONTAINS(why, "managed HSM, which holds keys, not secrets");
  KT_CHECK(kvvm_kv_resource_for_host("vault.azure.net.evil.com", why, sizeof why) == NULL);
  KT_CONTAINS(why, "is not a Key Vault host");
  KT_CHECK(kvvm_kv_resource_for_host(".vault.azure.net", why, sizeof why) == NULL);
  KT_CHECK(kvvm_kv_resource_for_host("my_vault.vault.azure.net", why, sizeof why) == NULL);
  KT_CHECK(kvvm_kv_resource_for_host("myvault.vault.azure.net:443", why, sizeof why) == NULL);
}

static void secret_urls(void)
{
  char *host, *name, *version, why[400];
  KT_CHECK(kvvm_kv_check_url("https://myvault.vault.azure.net/secrets/web-cert", &host, &name,
                             &version, why, sizeof why) == KVVM_OK);
  KT_STREQ(host, "myvault.vault.azure.net");
  KT_STREQ(name, "web-cert");
  KT_CHECK(version == NULL);
  free(host), free(name);
  KT_CHECK(kvvm_kv_check_url("https://myvault.vault.azure.cn/secrets/web/0a1b2c3d4e5f60718293a4b5c6d7e8f9",
                             &host, &name, &version, why, sizeof why) == KVVM_OK);
  KT_STREQ(version, "0a1b2c3d4e5f60718293a4b5c6d7e8f9");
  free(host), free(name), free(version);
}

static void secret_urls_refused(void)
{
  static const struct {
    const char *url, *words;
  } bad[] = {
      {"http://myvault.vault.azure.net/secrets/web", "does not start with https://"},
      {"https://myvault.vault.azure.net/secrets/web?api-version=1", "query or fragment"},
      {"https://myvault.vault.azure.net/certificates/web", "is not https://<vault>/secrets/"},
      {"https://myvault.vault.azure.net/secrets/", "names no valid secret"},
      {"https://myvault.vault.azure.net/secrets/we_b", "names no valid secret"},
      {"https://myvault.vault.azure.net/secrets/web/a/b", "invalid version segment"},
      {"https://myvault.vault.azure.net/secrets/web/.x", "invalid version segment"},
      /* What Key Vault issues only: "pfx" would name the exported .pfx file. */
      {"https://myvault.vault.azure.net/secrets/web/pfx", "invalid version segment"},
      {"https://myvault.vault.azure.net/secrets/web/0123abcd", "invalid version segment"},
      {"https://myhsm.managedhsm.azure.net/secrets/web", "managed HSM"},
      {"https://example.com/secrets/web", "is not a Key Vault host"},
      {"https://myvault.vault.azure.net:8443/secrets/web", "is not a Key Vault host"},
      {"https://user@myvault.vault.azure.net/secrets/web", "is not a Key Vault host"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char *host = NULL, *name = NULL, *version = NULL, why[400] = "";
    KT_CHECK(kvvm_kv_check_url(bad[i].url, &host, &name, &version, why, sizeof why) ==
             KVVM_E_SETTINGS);
    KT_CHECK(!host && !name && !version);
    KT_CONTAINS(why, bad[i].words);
  }
}

static void challenges(void)
{
  char *res = NULL, why[300];
  const char *host = "myvault.vault.azure.net";
  KT_CHECK(kvvm_kv_check_challenge("Bearer authorization=\"https://login.microsoftonline.com/"
                                   "72f988bf\", resource=\"https://vault.azure.net\"", host, &res,
                                   why, sizeof why) == KVVM_OK);
  KT_STREQ(res, "https://vault.azure.net");
  free(res);
  KT_CHECK(kvvm_kv_check_challenge("Bearer authorization=\"https://login.microsoftonline.com/t\","
                                   " scope=\"https://vault.azure.net/.default\"", host, &res,
                                   why, sizeof why) == KVVM_OK);
  KT_STREQ(res, "https://vault.azure.net");
  free(res);
  /* scope wins over resource, as in the SDKs */
  KT_CHECK(kvvm_kv_check_challenge("Bearer resource=\"https://other.net\", "
                                   "scope=\"https://vault.azure.cn/.default\"",
                                   "v1.vault.azure.cn", &res, why, sizeof why) == KVVM_OK);
  KT_STREQ(res, "https://vault.azure.cn");
  free(res);
  KT_CHECK(kvvm_kv_check_challenge("bearer resource=https://vault.azure.net", host, &res, why,
                                   sizeof why) == KVVM_OK);
  free(res);
}

static void challenges_refused(void)
{
  static const char *const bad[] = {
      ("Bearer authorization=\"https://login.microsoftonline.com/t\", "
       "resource=\"https://evil.example.com\""),
      "Bearer resource=\"https://vault.azure.net.evil.com\"",
      "Bearer resource=\"http://vault.azure.net\"",
      "Bearer resource=\"https://vault.azure.cn\"",
      "Bearer authorization=\"https://login.microsoftonline.com/t\"",
      "Basic realm=\"x\"",
      "Bearerresource=\"https://vault.azure.net\"",
      "Bearer resource=\"https://vault.azure.net",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char *res = (char *)1, why[300] = "";
    KT_CHECK(kvvm_kv_check_challenge(bad[i], "myvault.vault.azure.net", &res, why, sizeof why) ==
             KVVM_E_AUTH);
    KT_CHECK(res == NULL);
    KT_CHECK(why[0] != '\0');
  }
  char *res, why[300];
  KT_CHECK(kvvm_kv_check_challenge(NULL, "myvault.vault.azure.net", &res, why, sizeof why) ==
           KVVM_E_AUTH);
  KT_CONTAINS(why, "no Bearer challenge");
  KT_CHECK(kvvm_kv_check_challenge("Bearer resource=\"https://evil.example.com\"",
                                   "myvault.vault.azure.net", &res, why, sizeof why) ==
           KVVM_E_AUTH);
  KT_CONTAINS(why, "names resource https://evil.example.com, which is not the domain of "
                   "myvault.vault.azure.net: refused");
}

static enum kvvm_err parse(const char *json, struct kvvm_secret *s, char *why)
{
  return kvvm_kv_parse_bundle(json, strlen(json), s, why, 300);
}

static void bundle_fields(void)
{
  struct kvvm_secret s;
  char why[300];
  KT_CHECK(parse("{\"value\":\"MIIK\",\"contentType\":\"application/x-pkcs12\","
                 "\"id\":\"https://myvault.vault.azure.net/secrets/web/0a1b2c3d4e5f60718293a4b5c6d7e8f9\","
                 "\"attributes\":{\"enabled\":true,\"nbf\":1700000000,\"exp\":1800000000,"
                 "\"created\":1690000000,\"updated\":1690000001,\"recoveryLevel\":\"R\"},"
                 "\"tags\":{},\"kid\":\"https://myvault.vault.azure.net/keys/web/0a1b2c3d4e5f60718293a4b5c6d7e8f9\","
                 "\"managed\":true}", &s, why) == KVVM_OK);
  KT_STREQ(s.value, "MIIK");
  KT_CHECK(s.value_len == 4);
  KT_STREQ(s.content_type, "application/x-pkcs12");
  KT_STREQ(s.version, "0a1b2c3d4e5f60718293a4b5c6d7e8f9");
  KT_STREQ(s.kid, "https://myvault.vault.azure.net/keys/web/0a1b2c3d4e5f60718293a4b5c6d7e8f9");
  KT_CHECK(s.enabled && s.managed);
  KT_CHECK(s.nbf == 1700000000 && s.exp == 1800000000);
  KT_CHECK(s.created == 1690000000 && s.updated == 1690000001);
  kvvm_kv_secret_clear(&s);
  KT_CHECK(s.value == NULL && s.version == NULL);
  /* Minimal: no attributes means enabled; a disabled one may come without a value. */
  KT_CHECK(parse("{\"value\":\"x\",\"id\":\"https://v.vault.azure.net/secrets/n/0a1b2c3d4e5f60718293a4b5c6d7e8f9\"}", &s,
                 why) == KVVM_OK);
  KT_CHECK(s.enabled && !s.managed && s.nbf == 0 && !s.content_type && !s.kid);
  kvvm_kv_secret_clear(&s);
  KT_CHECK(parse("{\"id\":\"https://v.vault.azure.net/secrets/n/0a1b2c3d4e5f60718293a4b5c6d7e8f9\","
                 "\"attributes\":{\"enabled\":false}}", &s, why) == KVVM_OK);
  KT_CHECK(!s.enabled && s.value == NULL);
  kvvm_kv_secret_clear(&s);
}

/* Key Vault's error body as quoted: line breaks as one space, controls as '?', a token it
 * echoes withheld, a long message cut after a whole word and saying so. */
static void error_quoted(void)
{
  struct kvvm_kv_error e;
  const char *rbac = "{\"error\":{\"code\":\"Forbidden\",\"message\":\"Caller is not authorized."
                     "\\r\\nAction: 'x/getSecret/action'\\r\\n\\r\\nVault: v;location=eastus"
                     "\\r\\n\\u0007\",\"innererror\":{\"code\":\"ForbiddenByRbac\"}}}";
  kvvm_kv_parse_error(rbac, strlen(rbac), "tok", &e);
  KT_STREQ(e.code, "Forbidden");
  KT_STREQ(e.inner, "ForbiddenByRbac");
  KT_STREQ(e.message, "Caller is not authorized. Action: 'x/getSecret/action' Vault: "
           "v;location=eastus ?");
  const char *echo = "{\"error\":{\"code\":\"Unauthorized\",\"message\":\"bad token abc.def\"}}";
  kvvm_kv_parse_error(echo, strlen(echo), "abc.def", &e);
  KT_STREQ(e.message, "(withheld: it quotes the token)");
  KT_STREQ(e.inner, "");
  char body[4096], words[3000] = "";
  for (int i = 0; strlen(words) < 2000; i++)
    snprintf(words + strlen(words), sizeof words - strlen(words), "word%d ", i);
  snprintf(body, sizeof body, "{\"error\":{\"code\":\"Forbidden\",\"message\":\"%s\"}}", words);
  kvvm_kv_parse_error(body, strlen(body), NULL, &e);
  size_t n = strlen(e.message);
  KT_CHECK(n <= KVVM_KV_QUOTE_MAX + strlen(" ... (cut)") && n > KVVM_KV_QUOTE_MAX - 12);
  KT_CHECK(strcmp(e.message + n - strlen(" ... (cut)"), " ... (cut)") == 0);
  KT_CHECK(strncmp(e.message, words, n - strlen(" ... (cut)")) == 0 &&
           words[n - strlen(" ... (cut)")] == ' ');  /* the cut falls between words */
  kvvm_kv_parse_error("not json", 8, NULL, &e);
  KT_CHECK(!e.code[0] && !e.inner[0] && !e.message[0]);
}

static void bundle_refused(void)
{
  static const char *const bad[] = {
      "not json", "[1]", "{\"value\":\"x\"}",
      "{\"value\":\"x\",\"id\":\"https://v.vault.azure.net/secrets/n\"}",
      "{\"value\":\"x\",\"id\":\"https://v.vault.azure.net/secrets/n/\"}",
      "{\"value\":\"x\",\"id\":\"http://v.vault.azure.net/secrets/n/0a1b2c3d4e5f60718293a4b5c6d7e8f9\"}",
      "{\"value\":\"x\",\"id\":\"https://v.vault.azure.net/keys/n/1\"}",
      "{\"value\":\"x\",\"id\":5}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    struct kvvm_secret s;
    char why[300] = "";
    KT_CHECK(parse(bad[i], &s, why) == KVVM_E_NET);
    KT_CHECK(s.value == NULL && s.id == NULL);
    KT_CONTAINS(why, "the answer");
  }
}

/* Bad URLs and missing tokens are answered without a request. */
static void refused_before_sending(void)
{
  struct kvvm_kv_request reqs[] = {
      {"https://myhsm.managedhsm.azure.net/secrets/web", "t", NULL, 0},
      {"https://myvault.vault.azure.net/secrets/web", NULL, NULL, 0},
      {"http://myvault.vault.azure.net/secrets/web", "t", NULL, 0},
  };
  struct kvvm_kv_result res[3];
  KT_CHECK(kvvm_kv_fetch_many(reqs, 3, res) == KVVM_E_SETTINGS);
  KT_CHECK(res[0].err == KVVM_E_SETTINGS && res[0].tries == 0);
  KT_CONTAINS(res[0].why, "managed HSM");
  KT_CHECK(res[1].err == KVVM_E_INTERNAL);
  KT_CONTAINS(res[1].why, "no token");
  KT_CHECK(res[2].err == KVVM_E_SETTINGS);
  for (int i = 0; i < 3; i++)
    kvvm_kv_result_clear(&res[i]);
  KT_CHECK(kvvm_kv_fetch_many(NULL, 0, NULL) == KVVM_OK);
}

/* After a 429: Retry-After is never cut short, spread by up to a quarter (so a throttled
 * fleet does not come back in step), capped; without it, growing jittered backoff. */
static void throttle_delays(void)
{
  int64_t lo = INT64_MAX, hi = 0;
  for (uint64_t r = 0; r < 20000; r += 7) {
    int64_t d = kvvm_kv_throttle_ms(1, 4, r * 2654435761u);
    lo = d < lo ? d : lo;
    hi = d > hi ? d : hi;
  }
  KT_CHECK(lo >= 4000 && hi <= 5000 && hi - lo > 800);   /* spread over most of the quarter */
  KT_CHECK(kvvm_kv_throttle_ms(1, 3600, 0) == KVVM_KV_RETRY_AFTER_CAP_S * 1000);
  KT_CHECK(kvvm_kv_throttle_ms(1, 0, 0) == 100);          /* "0": never at once */
  int64_t first = 0, fifth = 0;
  for (uint64_t r = 0; r < 1000; r++) {
    int64_t a = kvvm_kv_throttle_ms(1, -1, r * 2654435761u);
    int64_t b = kvvm_kv_throttle_ms(5, -1, r * 2654435761u);
    first = a > first ? a : first;
    fifth = b > fifth ? b : fifth;
  }
  KT_CHECK(first <= 1000 && fifth > 8000 && fifth <= 16000);
}

int main(void)
{
  static const struct kt_case cases[] = {
    KT_CASE(throttle_delays),
    KT_CASE(hosts_and_clouds),
    KT_CASE(secret_urls),
    KT_CASE(secret_urls_refused),
    KT_CASE(challenges),
    KT_CASE(challenges_refused),
    KT_CASE(bundle_fields),
    KT_CASE(bundle_refused),
    KT_CASE(error_quoted),
    KT_CASE(refused_before_sending),
  };
  return KT_RUN("kv", cases);
}
