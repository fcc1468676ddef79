/* kvvm_service_env: what enable hands on to kvvmd, whatever the case of the names. */
#include "kt.h"
#include "kvvm/mem.h"
#include "kvvm/service.h"

static size_t count(char **v)
{
  size_t n = 0;
  while (v[n])
    n++;
  return n;
}

static void keeps_proxies_endpoints_and_aids(void)
{
  static const char *const env[] = {
      "https_proxy=http://p:3128", "HTTPS_PROXY=http://q:3128", "Http_Proxy=http://r:1",
      "NO_PROXY=169.254.169.254", "all_proxy=socks5://s", "IDENTITY_ENDPOINT=http://h:40342/x",
      "IMDS_ENDPOINT=http://h:40342", "KVVM_CA_FILE=C:\\ca.pem", "kvvm_state_dir=/tmp/s",
      "PATH=/bin", "HOME=/root", "KVVM_NOEQUALS", "IDENTITY_ENDPOINTX=1", "HTTP_PROXYX=1",
      "KVV_X=1", NULL};
  char **out = kvvm_service_env(env);
  KT_CHECK(count(out) == 9);
  KT_STREQ(out[0], "https_proxy=http://p:3128");
  KT_STREQ(out[2], "Http_Proxy=http://r:1");
  KT_STREQ(out[5], "IDENTITY_ENDPOINT=http://h:40342/x");
  KT_STREQ(out[7], "KVVM_CA_FILE=C:\\ca.pem");
  KT_STREQ(out[8], "kvvm_state_dir=/tmp/s");
  kvvm_strv_free(out);
}

static void empty_and_null(void)
{
  static const char *const none[] = {"HOME=/", NULL};
  char **out = kvvm_service_env(none);
  KT_CHECK(out && count(out) == 0);
  kvvm_strv_free(out);
  out = kvvm_service_env(NULL);
  KT_CHECK(out && count(out) == 0);
  kvvm_strv_free(out);
}

int main(void)
{
  static const struct kt_case cases[] = {KT_CASE(keeps_proxies_endpoints_and_aids),
                                         KT_CASE(empty_and_null)};
  return KT_RUN("service_env", cases);
}
