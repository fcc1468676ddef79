/* Protected settings: CMS EnvelopedData made by `openssl cms -encrypt` (AES-128/192/256,
 * 3DES, PKCS#1 v1.5 and OAEP, issuer+serial and key-id recipients, several recipients)
 * decrypted with the certificate and key as the agent writes them; wrong certificate or
 * key and damaged data give words, never a crash. Fixtures: tests/data/certmat/gen.sh. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt.h"
#include "kvvm/cms.h"
#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"

static char *fx, *crt, *prv, *msg;

static char *slurp(const char *name, size_t *len)
{
  char *p = kvvm_path_join(fx, name), *text = NULL;
  if (kvvm_file_read(p, 1 << 20, &text, len) != KVVM_OK)
    fprintf(stderr, "  cannot read fixture %s\n", p);
  free(p);
  return text;
}

static enum kvvm_err decrypt(const unsigned char *der, size_t len, const char *key,
                             unsigned char **plain, size_t *plain_len, char *why, size_t whylen)
{
  return kvvm_cms_decrypt(der, len, crt, key, plain, plain_len, why, whylen);
}

static void round_trip(const char *name)
{
  size_t len = 0, plain_len = 0;
  char *der = slurp(name, &len), why[256] = "";
  unsigned char *plain = NULL;
  KT_CHECK(der && decrypt((unsigned char *)der, len, prv, &plain, &plain_len, why, sizeof why) ==
                      KVVM_OK);
  KT_CHECK(plain && plain_len == strlen(msg) && memcmp(plain, msg, plain_len) == 0);
  if (!plain)
    fprintf(stderr, "  %s: %s\n", name, why);
  kvvm_free_secret(plain, plain_len);
  free(der);
}

static void every_cipher(void)
{
  round_trip("cms-aes256.der");
  round_trip("cms-aes128.der");
  round_trip("cms-aes192.der");
  round_trip("cms-des3.der");
}

static void oaep_and_keyid(void)
{
  round_trip("cms-oaep.der");
  round_trip("cms-oaep256.der");
  round_trip("cms-keyid.der");
  round_trip("cms-two.der"); /* ours is the second of two recipients */
}

/* As the settings carry it: base64 with line breaks. */
static void base64_form(void)
{
  char why[256] = "";
  KT_CHECK(kt_sh("openssl base64 -in %s/cms-oaep.der -out %s/cms.b64", fx, fx) == 0);
  size_t len = 0, plain_len = 0;
  char *b64 = slurp("cms.b64", &len);
  unsigned char *plain = NULL;
  KT_CHECK(b64 && strchr(b64, '\n'));
  KT_CHECK(kvvm_cms_decrypt_base64(b64, len, crt, prv, &plain, &plain_len, why, sizeof why) ==
           KVVM_OK);
  KT_CHECK(plain && plain_len == strlen(msg) && !memcmp(plain, msg, plain_len) &&
           plain[plain_len] == '\0');
  kvvm_free_secret(plain, plain_len);
  KT_CHECK(kvvm_cms_decrypt_base64("@@@", 3, crt, prv, &plain, &plain_len, why, sizeof why) ==
           KVVM_E_CERT && !plain);
  KT_CONTAINS(why, "protectedSettings is not valid base64");
  free(b64);
}

static void expect(const char *name, const char *key, enum kvvm_err want, const char *words)
{
  size_t len = 0, plain_len = 0;
  char *der = slurp(name, &len), why[256] = "";
  unsigned char *plain = NULL;
  KT_CHECK(der && decrypt((unsigned char *)der, len, key, &plain, &plain_len, why, sizeof why) ==
                      want);
  KT_CHECK(plain == NULL && plain_len == 0);
  KT_CONTAINS(why, words);
  free(der);
}

static void wrong_certificate_or_key(void)
{
  char *other = kvvm_path_join(fx, "other.prv"), *missing = kvvm_path_join(fx, "none.prv");
  expect("cms-other.der", prv, KVVM_E_CERT, "encrypted for another certificate");
  expect("cms-aes256.der", other, KVVM_E_CERT, "does not match the certificate");
  expect("cms-aes256.der", missing, KVVM_E_NOENT, "cannot read the private key");
  expect("msg.json", prv, KVVM_E_CERT, "not readable CMS");
  expect("rsa2048.pfx", prv, KVVM_E_CERT, "not readable CMS");
  expect("cms-data.der", prv, KVVM_E_CERT, "unsupported CMS content type");
  free(other);
  free(missing);
}

/* Every truncation fails; a flipped bit in every byte never crashes, and where it still
 * decrypts (CBC has no integrity) the result is no longer than the ciphertext. */
static void damaged_data(void)
{
  size_t len = 0, plain_len = 0;
  char *der = slurp("cms-aes256.der", &len), why[256];
  unsigned char *plain = NULL, *copy = kvvm_xmalloc(len ? len : 1);
  int truncated_ok = 0, flips_bad = 0;
  for (size_t n = 0; der && n < len; n++) {
    memcpy(copy, der, n);
    if (decrypt(copy, n, prv, &plain, &plain_len, why, sizeof why) != KVVM_E_CERT || plain)
      truncated_ok++;
  }
  for (size_t i = 0; der && i < len; i++) {
    memcpy(copy, der, len);
    copy[i] ^= (unsigned char)(1u << (i % 8));
    enum kvvm_err rc = decrypt(copy, len, prv, &plain, &plain_len, why, sizeof why);
    if ((rc != KVVM_OK && rc != KVVM_E_CERT) || (rc == KVVM_OK && plain_len > len) ||
        (rc != KVVM_OK && plain))
      flips_bad++;
    kvvm_free_secret(plain, plain_len);
    plain = NULL;
  }
  KT_CHECK(der && truncated_ok == 0 && flips_bad == 0);
  free(copy);
  free(der);
}

int main(void)
{
  kvvm_log_set_stderr_level((enum kvvm_log_level)(KVVM_LOG_ERR + 1));
  fx = kt_tmpdir();
  if (!fx || kt_sh("sh tests/data/certmat/gen.sh %s", fx) != 0) {
    fprintf(stderr, "cannot generate the fixtures\n");
    return 1;
  }
  crt = kvvm_path_join(fx, "recip.crt");
  prv = kvvm_path_join(fx, "recip.prv");
  msg = slurp("msg.json", NULL);
  static const struct kt_case cases[] = {
      KT_CASE(every_cipher), KT_CASE(oaep_and_keyid), KT_CASE(base64_form),
      KT_CASE(wrong_certificate_or_key), KT_CASE(damaged_data),
  };
  int rc = KT_RUN("cms", cases);
  kt_rmtree(fx);
  free(msg);
  free(prv);
  free(crt);
  free(fx);
  return rc;
}
