/* Every key type Key Vault issues, in every container it hands back: RSA 2048/3072/4096 and
 * EC P-256, P-384, P-521 and P-256K, with named curves and with the parameters written out
 * in full, as PEM (PKCS#8 and RSA/EC PRIVATE KEY) and PKCS#12 (openssl 3's defaults and
 * -legacy, Key Vault's own algorithms); each read, then written as PEM and PKCS#12 and read
 * back by the openssl CLI (tests/data/certmat/keycheck.sh). And the exact words for keys
 * kvvm cannot use. Fixtures: tests/data/certmat/gen_keys.sh, run once into a temp folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt.h"
#include "kvvm/certmat.h"
#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"

static char *fx; /* the fixture folder */

struct kind {
  const char *name, *type, *curve; /* curve: the name openssl prints for an EC key */
  unsigned bits;
};

static const struct kind kinds[] = {
    {"rsa2048", "RSA", NULL, 2048},      {"rsa3072", "RSA", NULL, 3072},
    {"rsa4096", "RSA", NULL, 4096},      {"p256", "EC", "prime256v1", 256},
    {"p384", "EC", "secp384r1", 384},    {"p521", "EC", "secp521r1", 521},
    {"p256k", "EC", "secp256k1", 256},   {"p256-x", "EC", "prime256v1", 256},
    {"p384-x", "EC", "secp384r1", 384},  {"p521-x", "EC", "secp521r1", 521},
    {"p256k-x", "EC", "secp256k1", 256},
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

/* The containers: file suffix, and whether it is PEM (key first, as Key Vault converts). */
static const struct {
  const char *suffix;
  bool pem;
} forms[] = {{".p8", true}, {".sec1", true}, {".pfx", false}, {".legacy.pfx", false}};
#define NFORMS (sizeof forms / sizeof forms[0])

static char *slurp(const char *name, size_t *len)
{
  char *p = kvvm_path_join(fx, name), *text = NULL;
  if (kvvm_file_read(p, 1 << 20, &text, len) != KVVM_OK)
    fprintf(stderr, "  cannot read fixture %s\n", p);
  free(p);
  return text;
}

/* name + suffix read as a bundle: PEM is the key then the certificate. */
static enum kvvm_err load(const char *name, const char *suffix, bool pem,
                          struct kvvm_bundle **b, char *why, size_t whylen)
{
  char *f = kvvm_xasprintf("%s%s", name, suffix), *crtf = kvvm_xasprintf("%s.crt", name);
  size_t len = 0, clen = 0;
  char *data = slurp(f, &len), *crt = pem ? slurp(crtf, &clen) : NULL;
  enum kvvm_err rc = KVVM_E_CERT;
  if (data && pem) {
    char *text = kvvm_xasprintf("%s%s", data, crt ? crt : "");
    rc = kvvm_certmat_from_pem(text, strlen(text), b, why, whylen);
    free(text);
  } else if (data) {
    rc = kvvm_certmat_from_pkcs12((const unsigned char *)data, len, "", b, why, whylen);
  }
  kvvm_free_secret(data, len);
  free(crt);
  free(f);
  free(crtf);
  return rc;
}

static int keycheck(const char *file, const struct kind *k)
{
  return kt_sh("sh tests/data/certmat/keycheck.sh %s/%s %s/%s.crt %s", fx, file, fx, k->name,
               k->curve ? k->curve : "");
}

/* What kvvm writes, read by openssl: the PEM file, and the PKCS#12 turned into PEM. */
static void written_read_by_openssl(const struct kind *k, const struct kvvm_bundle *b)
{
  char *pem = NULL, *path = kvvm_path_join(fx, "out.pem");
  unsigned char *pfx = NULL;
  size_t plen = 0, xlen = 0;
  KT_CHECK(kvvm_bundle_to_pem(b, &pem, &plen) == KVVM_OK);
  KT_CHECK(pem && kvvm_file_write_atomic(path, pem, plen, 0600) == KVVM_OK);
  KT_CHECK(keycheck("out.pem", k) == 0);
  free(path);
  path = kvvm_path_join(fx, "out.pfx");
  KT_CHECK(kvvm_bundle_to_pkcs12(b, &pfx, &xlen) == KVVM_OK);
  KT_CHECK(pfx && kvvm_file_write_atomic(path, pfx, xlen, 0600) == KVVM_OK);
  KT_CHECK(kt_sh("cd %s && openssl pkcs12 -in out.pfx -passin pass: -nodes -out p12.pem "
                 "2>/dev/null", fx) == 0);
  KT_CHECK(keycheck("p12.pem", k) == 0);
  kvvm_free_secret(pem, plen);
  kvvm_free_secret(pfx, xlen);
  free(path);
}

/* Each key type in each container: read, the facts right, the thumbprint the original
 * certificate's (a certificate with explicit parameters keeps its own bytes), written
 * out and read back by openssl with the curve named. */
static void every_key_type_installs(void)
{
  for (size_t i = 0; i < NKINDS; i++) {
    const struct kind *k = &kinds[i];
    char *shaf = kvvm_xasprintf("%s.sha1", k->name), *sha = slurp(shaf, NULL);
    if (sha)
      sha[strcspn(sha, "\n")] = '\0';
    for (size_t f = 0; f < NFORMS; f++) {
      struct kvvm_bundle *b = NULL;
      char why[512] = "";
      KT_CHECK(load(k->name, forms[f].suffix, forms[f].pem, &b, why, sizeof why) == KVVM_OK);
      if (!b) {
        fprintf(stderr, "  %s%s: %s\n", k->name, forms[f].suffix, why);
        continue;
      }
      const struct kvvm_cert_facts *facts = kvvm_bundle_facts(b);
      KT_STREQ(facts->key_type, k->type);
      KT_CHECK(facts->key_bits == k->bits);
      KT_STREQ(facts->thumbprint, sha);
      written_read_by_openssl(k, b);
      kvvm_bundle_free(b);
    }
    free(sha);
    free(shaf);
  }
}

/* A leaf with explicit parameters signed by a CA: kvvm reads it through a named copy, yet
 * the signature is checked over the bytes the CA signed, so the chain reaches the CA. */
static void explicit_leaf_signature_checks(void)
{
  struct kvvm_bundle *b = NULL;
  char why[512] = "", note[512] = "x";
  KT_CHECK(load("ca-p256k-x", ".p8", true, &b, why, sizeof why) == KVVM_OK);
  if (!b) {
    fprintf(stderr, "  %s\n", why);
    return;
  }
  char *trust = kvvm_path_join(fx, "ca.crt");
  KT_CHECK(kvvm_certmat_chain_gap(b, trust, note, sizeof note) == KVVM_OK);
  KT_STREQ(note, "");
  free(trust);
  kvvm_bundle_free(b);
}

#define SUPPORTED \
  "kvvm takes RSA keys and EC keys on a named curve (P-256, P-384, P-521, P-256K and others)"

/* A key kvvm cannot use is named, in the key and in the certificate, in both containers. */
static void unsupported_keys_named(void)
{
  static const struct {
    const char *name, *suffix, *crt; /* crt: the certificate after a PEM key */
    bool pem;
    const char *want;
  } cases[] = {
      {"ed25519", ".p8", "rsa2048", true, "the private key in PEM block 1 (\"PRIVATE KEY\"): "
       "unsupported key: Ed25519; " SUPPORTED},
      {"ed448", ".p8", "rsa2048", true, "the private key in PEM block 1 (\"PRIVATE KEY\"): "
       "unsupported key: Ed448; " SUPPORTED},
      {"dsa", ".p8", "rsa2048", true, "the private key in PEM block 1 (\"PRIVATE KEY\"): "
       "unsupported key: DSA; " SUPPORTED},
      {"secp160r1", ".p8", "rsa2048", true, "the private key in PEM block 1 (\"PRIVATE KEY\"): "
       "unsupported key: EC curve secp160r1; " SUPPORTED},
      {"secp160r1-x", ".p8", "rsa2048", true, "the private key in PEM block 1 (\"PRIVATE "
       "KEY\"): unsupported key: EC with explicit parameters of an unknown curve (a 160-bit "
       "prime field); " SUPPORTED},
      {"ed25519", ".crt", NULL, true, "the certificate in PEM block 1 (\"CERTIFICATE\") has an "
       "unsupported key: Ed25519; " SUPPORTED},
      {"dsa", ".crt", NULL, true, "the certificate in PEM block 1 (\"CERTIFICATE\") has an "
       "unsupported key: DSA; " SUPPORTED},
      {"ed25519", ".legacy.pfx", NULL, false, "the certificate at ContentInfo 1, SafeBag 1 "
       "has an unsupported key: Ed25519; " SUPPORTED},
      {"ed448", ".pfx", NULL, false, "the certificate at ContentInfo 1, SafeBag 1 has an "
       "unsupported key: Ed448; " SUPPORTED},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct kvvm_bundle *b = NULL;
    char why[512] = "";
    char *f = kvvm_xasprintf("%s%s", cases[i].name, cases[i].suffix);
    size_t len = 0, clen = 0;
    char *data = slurp(f, &len);
    char *crt = NULL;
    if (cases[i].crt) {
      char *cf = kvvm_xasprintf("%s.crt", cases[i].crt);
      crt = slurp(cf, &clen);
      free(cf);
    }
    char *text = kvvm_xasprintf("%s%s", data ? data : "", crt ? crt : "");
    enum kvvm_err rc = cases[i].pem
                           ? kvvm_certmat_from_pem(text, strlen(text), &b, why, sizeof why)
                           : kvvm_certmat_from_pkcs12((const unsigned char *)data, len, "", &b,
                                                      why, sizeof why);
    KT_CHECK(rc == KVVM_E_CERT && !b);
    KT_STREQ(why, cases[i].want);
    kvvm_bundle_free(b);
    kvvm_free_secret(data, len);
    free(crt);
    free(text);
    free(f);
  }
}

int main(void)
{
  kvvm_log_set_stderr_level(getenv("KT_LOG") ? KVVM_LOG_ERR : (enum kvvm_log_level)(KVVM_LOG_ERR + 1));
  fx = kt_tmpdir();
  if (!fx || kt_sh("sh tests/data/certmat/gen_keys.sh %s", fx) != 0) {
    fprintf(stderr, "cannot generate the fixtures\n");
    return 1;
  }
  static const struct kt_case cases[] = {
      KT_CASE(every_key_type_installs),
      KT_CASE(unsupported_keys_named),
      KT_CASE(explicit_leaf_signature_checks),
  };
  int rc = KT_RUN("certmat_keys", cases);
  kt_rmtree(fx);
  free(fx);
  return rc;
}
