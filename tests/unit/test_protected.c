/* Protected settings: decrypted with the agent's <THUMB>.crt/.prv when present (made here by
 * `openssl cms -encrypt`, as the fabric does), never kept, and never a reason to refuse. */
#include <stdlib.h>

#include "kt.h"
#include "kvvm/fileio.h"
#include "kvvm/mem.h"
#include "kvvm/settings.h"

static char *dir;
static char thumb[41];
static char *b64;

/* A transport certificate as the agent writes it, and {"token":"hush"} encrypted for it. */
static int make_fixture(void)
{
  dir = kt_tmpdir();
  if (!dir ||
      kt_sh("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=transport -days 2 "
            "-keyout k.pem -out c.pem 2>/dev/null && "
            "T=$(openssl x509 -in c.pem -noout -fingerprint -sha1 | sed 's/.*=//; s/://g') && "
            "cp c.pem $T.crt && cp k.pem $T.prv && printf %%s $T > thumb && "
            "printf '{\"token\":\"hush\"}' | openssl cms -encrypt -binary -outform DER -aes256 "
            "c.pem | base64 -w0 > b64",
            dir) != 0)
    return -1;
  char *p = kvvm_path_join(dir, "thumb"), *t = NULL, *q = kvvm_path_join(dir, "b64");
  int rc = kvvm_file_read(p, 64, &t, NULL) == KVVM_OK && strlen(t) == 40 &&
                   kvvm_file_read(q, 65536, &b64, NULL) == KVVM_OK
               ? 0 : -1;
  if (t)
    memcpy(thumb, t, 41);
  free(t);
  free(p);
  free(q);
  return rc;
}

static struct kvvm_config *parse(const char *tp, const char *certs_dir)
{
  char *text = kvvm_xasprintf(
      "{\"runtimeSettings\":[{\"handlerSettings\":{\"publicSettings\":{"
      "\"secretsManagementSettings\":{\"observedCertificates\":"
      "[\"https://vault1.vault.azure.net/secrets/c\"]}},"
      "\"protectedSettings\":\"%s\",\"protectedSettingsCertThumbprint\":\"%s\"}}]}",
      b64, tp);
  struct kvvm_settings_opts opts = {.default_store_root = "/store", .certs_dir = certs_dir};
  struct kvvm_config *cfg = NULL;
  char why[512] = "";
  if (kvvm_settings_parse(text, strlen(text), &opts, &cfg, why, sizeof(why)) != KVVM_OK)
    fprintf(stderr, "  unexpected: %s\n", why);
  free(text);
  return cfg;
}

static const char *warning_with(const struct kvvm_config *cfg, const char *words)
{
  for (char **w = cfg ? cfg->warnings : NULL; w && *w; w++)
    if (strstr(*w, words))
      return *w;
  return NULL;
}

static void decrypts_and_ignores(void)
{
  struct kvvm_config *cfg = parse(thumb, dir);
  KT_CHECK(cfg && cfg->has_protected);
  KT_CHECK(warning_with(cfg, "1 key(s) are ignored") != NULL);
  char *canon = cfg ? kvvm_config_to_json(cfg) : NULL;
  KT_CHECK(canon && !strstr(canon, "hush") && !strstr(canon, "token"));
  free(canon);
  kvvm_config_free(cfg);
}

/* The wrong certificate: a warning that says so, and the settings still work. */
static void undecryptable_is_a_warning(void)
{
  struct kvvm_config *cfg = parse("0000000000000000000000000000000000000000", dir);
  KT_CHECK(cfg != NULL);
  KT_CHECK(warning_with(cfg, "could not be decrypted") != NULL);
  kvvm_config_free(cfg);
}

/* Without the agent's folder nothing is decrypted (kvvm check-settings on a copy). */
static void not_decrypted_without_certs_dir(void)
{
  struct kvvm_config *cfg = parse(thumb, NULL);
  KT_CHECK(cfg && cfg->has_protected && !warning_with(cfg, "protectedSettings"));
  kvvm_config_free(cfg);
}

int main(void)
{
  if (make_fixture() != 0) {
    printf("protected: 0 passed, 1 failed (openssl could not make the fixture)\n");
    return 1;
  }
  static const struct kt_case cases[] = {KT_CASE(decrypts_and_ignores),
                                         KT_CASE(undecryptable_is_a_warning),
                                         KT_CASE(not_decrypted_without_certs_dir)};
  int rc = KT_RUN("protected", cases);
  kt_rmtree(dir);
  free(dir);
  free(b64);
  return rc;
}
