/* The PKCS#12 reader (src/p12_*.c) against a corpus made at test time by
 * tests/data/p12/gen.sh (openssl CLI, python3-cryptography, Java keytool, NSS pk12util):
 * every variant decodes with its MAC checked, the right number of certificates and a key
 * that matches one of them; wrong passwords fail with words that say so; damaged files
 * never crash and, where they carry a MAC, always fail. Plus the key derivations' published
 * vectors. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt.h"
#include "kvvm/certmat.h"
#include "kvvm/err.h"
#include "kvvm/log.h"
#include "kvvm/p12.h"

struct entry {
  char file[64];
  char pw[256];
  unsigned certs;
  char key[16];        /* TYPE:BITS */
  char mac[16];
  char macpw[16];      /* "-" when there is no MAC */
  char schemes[160];   /* "-" when no bag is encrypted */
  char name[64];       /* "-" without a friendlyName */
  char expect[16];     /* ok, open, iterlimit */
};

static char *corpus;
static struct entry entries[96];
static size_t n_entries;

static int generate(const char *dir)
{
  return kt_sh("sh tests/data/p12/gen.sh '%s' >/dev/null", dir);
}

static void unhex(const char *h, char *out, size_t cap)
{
  size_t n = 0;
  if (strcmp(h, "-") != 0)
    for (; h[0] && h[1] && n + 1 < cap; h += 2) {
      unsigned v;
      sscanf(h, "%2x", &v);
      out[n++] = (char)v;
    }
  out[n] = '\0';
}

static bool load_manifest(void)
{
  char path[256], line[1024], pwhex[600];
  snprintf(path, sizeof(path), "%s/manifest", corpus);
  FILE *f = fopen(path, "r");
  if (!f)
    return false;
  while (n_entries < sizeof(entries) / sizeof(entries[0]) && fgets(line, sizeof(line), f)) {
    struct entry *e = &entries[n_entries];
    if (sscanf(line, "%63[^\t]\t%599[^\t]\t%u\t%15[^\t]\t%15[^\t]\t%15[^\t]\t%159[^\t]\t%63[^\t]\t%15s",
               e->file, pwhex, &e->certs, e->key, e->mac, e->macpw, e->schemes, e->name,
               e->expect) == 9) {
      unhex(pwhex, e->pw, sizeof(e->pw));
      n_entries++;
    }
  }
  fclose(f);
  return n_entries > 0;
}

/* The whole file in a buffer of exactly its size, so ASan sees any read past the end. */
static unsigned char *slurp(const char *name, size_t *len)
{
  char path[256];
  snprintf(path, sizeof(path), "%s/%s", corpus, name);
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
  *len = fread(b, 1, (size_t)n, f);
  fclose(f);
  return b;
}

static const struct entry *find(const char *file)
{
  for (size_t i = 0; i < n_entries; i++)
    if (strcmp(entries[i].file, file) == 0)
      return &entries[i];
  return NULL;
}

static void test_corpus(void)
{
  corpus = kt_tmpdir();
  KT_CHECK(corpus != NULL);
  if (!corpus)
    return;
  /* gen.sh names the Debian package of any tool it lacks; that is a failure, not a skip. */
  KT_CHECK(generate(corpus) == 0);
  KT_CHECK(load_manifest());
  KT_CHECK(n_entries >= 50);
}

/* Every expected token of the comma-separated list appears in the summary's list. */
static bool has_schemes(const char *want, const char *got)
{
  char buf[160];
  if (strcmp(want, "-") == 0)
    return got[0] == '\0';
  snprintf(buf, sizeof(buf), "%s", want);
  for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
    if (!strstr(got, t))
      return false;
  return true;
}

static bool check_summary(const struct entry *e, const struct kvvm_p12_summary *s)
{
  char key[32];
  snprintf(key, sizeof(key), "%s:%u", s->key_type, s->key_bits);
  bool ok = s->n_certs == e->certs && s->n_keys == 1 && s->key_cert >= 0 &&
            strcmp(key, e->key) == 0 && strcmp(s->mac, e->mac) == 0 &&
            strcmp(s->mac_password[0] ? s->mac_password : "-", e->macpw) == 0 &&
            has_schemes(e->schemes, s->schemes) &&
            strcmp(s->friendly_name[0] ? s->friendly_name : "-", e->name) == 0 &&
            s->local_key_id_len > 0;
  if (!ok)
    fprintf(stderr, "  %s: certs %u key %s matches cert %d, keys %u, mac %s (%s), "
            "schemes \"%s\", name \"%s\", localKeyId %zu bytes\n", e->file, s->n_certs, key,
            s->key_cert, s->n_keys, s->mac, s->mac_password, s->schemes, s->friendly_name,
            s->local_key_id_len);
  return ok;
}

static enum kvvm_err inspect(const char *file, const char *pw, struct kvvm_p12_summary *s,
                             char *why, size_t whylen)
{
  size_t len;
  unsigned char *b = slurp(file, &len);
  if (!b) {
    snprintf(why, whylen, "cannot read %s", file);
    return KVVM_E_IO;
  }
  enum kvvm_err err = kvvm_p12_inspect(b, len, pw, s, why, whylen);
  free(b);
  return err;
}

static void test_every_variant_reads(void)
{
  KT_CHECK(n_entries > 0);
  for (size_t i = 0; i < n_entries; i++) {
    const struct entry *e = &entries[i];
    struct kvvm_p12_summary s;
    char why[256] = "";
    if (strcmp(e->expect, "iterlimit") == 0)
      continue;
    enum kvvm_err err = inspect(e->file, e->pw, &s, why, sizeof(why));
    if (err != KVVM_OK)
      fprintf(stderr, "  %s: %s\n", e->file, why);
    KT_CHECK(err == KVVM_OK && check_summary(e, &s));
  }
}

static void test_wrong_password_fails(void)
{
  KT_CHECK(n_entries > 0);
  for (size_t i = 0; i < n_entries; i++) {
    const struct entry *e = &entries[i];
    struct kvvm_p12_summary s;
    char why[256] = "";
    if (strcmp(e->expect, "iterlimit") == 0)
      continue;
    enum kvvm_err err = inspect(e->file, e->pw[0] ? "" : "not-the-password", &s, why,
                                sizeof(why));
    if (strcmp(e->expect, "open") == 0) {
      KT_CHECK(err == KVVM_OK);   /* nothing protects it: any password reads it */
      continue;
    }
    if (err != KVVM_E_CERT || !strstr(why, "wrong password"))
      fprintf(stderr, "  %s with a wrong password: %d \"%s\"\n", e->file, (int)err, why);
    KT_CHECK(err == KVVM_E_CERT);
    KT_CONTAINS(why, "wrong password or corrupt file");
  }
}

static void test_mac_mismatch_words(void)
{
  struct kvvm_p12_summary s;
  char why[256] = "";
  KT_CHECK(inspect("ossl-default-rsa.p12", "Passw0rd?", &s, why, sizeof(why)) == KVVM_E_CERT);
  KT_STREQ(why, "wrong password or corrupt file (MAC mismatch)");
}

static void test_iteration_limit(void)
{
  struct kvvm_p12_summary s;
  char why[256] = "";
  const struct entry *e = find("ossl-iter-toomany.p12");
  KT_CHECK(e != NULL && strcmp(e->expect, "iterlimit") == 0);
  if (!e)
    return;
  KT_CHECK(inspect(e->file, e->pw, &s, why, sizeof(why)) == KVVM_E_CERT);
  KT_STREQ(why, "iteration count 1000001 exceeds the limit 1000000");
}

/* Key Vault's PFX has an empty password: NULL reads as "", and a file whose MAC was made
 * with the two-byte terminator (OpenSSL) or with zero length (cryptography) both verify. */
static void test_empty_password(void)
{
  struct kvvm_p12_summary s;
  char why[256] = "";
  KT_CHECK(inspect("ossl-emptypw.p12", NULL, &s, why, sizeof(why)) == KVVM_OK);
  KT_STREQ(s.mac_password, "utf16");
  KT_CHECK(inspect("py-noenc-rsa.p12", NULL, &s, why, sizeof(why)) == KVVM_OK);
  KT_STREQ(s.mac_password, "zero-length");
  KT_CHECK(inspect("py-noenc-rsa.p12", "x", &s, why, sizeof(why)) == KVVM_E_CERT);
}

/* Replace the first occurrence of pattern's last byte (after the pattern) with b. */
static bool patch(unsigned char *buf, size_t len, const unsigned char *pat, size_t plen,
                  unsigned char b)
{
  for (size_t i = 0; i + plen <= len; i++)
    if (memcmp(buf + i, pat, plen) == 0) {
      buf[i + plen - 1] = b;
      return true;
    }
  return false;
}

static void expect_patched(const char *file, const unsigned char *pat, size_t plen,
                           unsigned char b, const char *words)
{
  size_t len;
  unsigned char *buf = slurp(file, &len);
  struct kvvm_p12_summary s;
  char why[256] = "";
  KT_CHECK(buf && patch(buf, len, pat, plen, b));
  if (buf)
    KT_CHECK(kvvm_p12_inspect(buf, len, "Passw0rd!", &s, why, sizeof(why)) == KVVM_E_CERT);
  KT_CONTAINS(why, words);
  free(buf);
}

/* Without a MAC the damage reaches the parser: the algorithm and content type are named. */
static void test_unsupported_named(void)
{
  static const unsigned char aes256cbc[] = {0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
                                            0x03, 0x04, 0x01, 0x2a};
  static const unsigned char data[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
                                       0x0d, 0x01, 0x07, 0x01};
  expect_patched("ossl-nomac.p12", aes256cbc, sizeof(aes256cbc), 0x2e,
                 "unsupported algorithm AES-256-GCM (OID 2.16.840.1.101.3.4.1.46)");
  expect_patched("ossl-nomac.p12", data, sizeof(data), 0x03,
                 "unsupported content type envelopedData (public-key privacy mode) "
                 "(OID 1.2.840.113549.1.7.3)");
}

static void test_trailing_bytes_refused(void)
{
  size_t len;
  unsigned char *b = slurp("small-mac.p12", &len);
  struct kvvm_p12_summary s;
  char why[256] = "";
  KT_CHECK(b != NULL);
  if (!b)
    return;
  unsigned char *longer = calloc(1, len + 1);
  KT_CHECK(longer != NULL);
  if (longer) {
    memcpy(longer, b, len);
    KT_CHECK(kvvm_p12_inspect(longer, len + 1, "Passw0rd!", &s, why, sizeof(why)) ==
             KVVM_E_CERT);
    KT_CONTAINS(why, "truncated or corrupt PKCS#12 at PFX");
  }
  free(longer);
  free(b);
}

/* Every prefix of the file, each in a buffer of exactly that size. */
static unsigned truncations(const char *file, const char *pw, bool must_fail)
{
  size_t len;
  unsigned char *b = slurp(file, &len);
  unsigned bad = 0;
  if (!b)
    return 1;
  for (size_t n = 0; n < len; n++) {
    unsigned char *t = malloc(n ? n : 1);
    struct kvvm_p12_summary s;
    char why[256];
    memcpy(t, b, n);
    if (kvvm_p12_inspect(t, n, pw, &s, why, sizeof(why)) == KVVM_OK && must_fail) {
      fprintf(stderr, "  %s cut to %zu bytes was accepted\n", file, n);
      bad++;
    }
    free(t);
  }
  free(b);
  return bad;
}

static void test_truncation_every_length(void)
{
  KT_CHECK(truncations("small-mac.p12", "Passw0rd!", true) == 0);
  KT_CHECK(truncations("small-legacy.p12", "Passw0rd!", true) == 0);
  KT_CHECK(truncations("small-ber.p12", "Passw0rd!", true) == 0);
  /* No MAC, no encryption: a cut inside a bag may still read; it must not crash. */
  truncations("small-open.p12", "", false);
}

/* One bit flipped at every byte offset (the bit moves with the offset). */
static unsigned flips(const char *file, const char *pw, bool must_fail)
{
  size_t len;
  unsigned char *b = slurp(file, &len);
  unsigned bad = 0;
  if (!b)
    return 1;
  for (size_t i = 0; i < len; i++) {
    struct kvvm_p12_summary s;
    char why[256];
    b[i] ^= (unsigned char)(1u << (i % 8));
    if (kvvm_p12_inspect(b, len, pw, &s, why, sizeof(why)) == KVVM_OK && must_fail) {
      fprintf(stderr, "  %s with byte %zu flipped was accepted\n", file, i);
      bad++;
    }
    b[i] ^= (unsigned char)(1u << (i % 8));
  }
  free(b);
  return bad;
}

static void test_bit_flips(void)
{
  KT_CHECK(flips("small-mac.p12", "Passw0rd!", true) == 0);
  KT_CHECK(flips("small-legacy.p12", "Passw0rd!", true) == 0);
  KT_CHECK(flips("small-ber.p12", "Passw0rd!", true) == 0);
  flips("small-open.p12", "", false);
  flips("ossl-nomac.p12", "Passw0rd!", false);
}

static bool hex_is(const unsigned char *b, size_t n, const char *hex)
{
  char got[300];
  for (size_t i = 0; i < n && 2 * i + 2 < sizeof(got); i++)
    snprintf(got + 2 * i, 3, "%02x", b[i]);
  got[2 * n < sizeof(got) ? 2 * n : 0] = '\0';
  if (strcmp(got, hex) != 0)
    fprintf(stderr, "  got %s\n  want %s\n", got, hex);
  return strcmp(got, hex) == 0;
}

/* RFC 6070 (SHA-1) and the same inputs through the other hashes (values from Python's
 * hashlib.pbkdf2_hmac), including a password longer than the hash block. */
static void test_pbkdf2_vectors(void)
{
  static const struct {
    const char *md, *pw, *salt;
    size_t pwlen, saltlen;
    unsigned iter;
    size_t n;
    const char *hex;
  } v[] = {
    {"SHA1", "password", "salt", 8, 4, 1, 20, "0c60c80f961f0e71f3a9b524af6012062fe037a6"},
    {"SHA1", "password", "salt", 8, 4, 4096, 20, "4b007901b765489abead49d926f721d065a429c1"},
    {"SHA1", "passwordPASSWORDpassword", "saltSALTsaltSALTsaltSALTsaltSALTsalt", 24, 36, 4096,
     25, "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038"},
    {"SHA1", "pass\0word", "sa\0lt", 9, 5, 4096, 16, "56fa6aa75548099dcc37d7f03425e0c3"},
    {"SHA256", "password", "salt", 8, 4, 1, 32,
     "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"},
    {"SHA256", "password", "salt", 8, 4, 4096, 32,
     "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"},
    {"SHA224", "password", "salt", 8, 4, 3, 40,
     "947cf079cfc7f2016dcd7ec418840443edaabb90c496f98cabeec4bfb1a5a4aaff68cca92cf05a6d"},
    {"SHA384", "password", "salt", 8, 4, 2, 48,
     "54f775c6d790f21930459162fc535dbf04a939185127016a04176a0730c6f1f4fb48832ad1261baadd2cedd"
     "50814b1c8"},
    {"SHA512", "password", "salt", 8, 4, 1, 64,
     "867f70cf1ade02cff3752599a3a53dc4af34c7a669815ae5d513554e1c8cf252c02d470a285a0501bad999bf"
     "e943c08f050235d7d68b1da55e63f73b60a57fce"},
  };
  unsigned char out[80];
  for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
    KT_CHECK(kvvm_p12_pbkdf2(v[i].md, v[i].pw, v[i].pwlen, v[i].salt, v[i].saltlen, v[i].iter,
                             out, v[i].n) == KVVM_OK);
    KT_CHECK(hex_is(out, v[i].n, v[i].hex));
  }
  char longpw[200];
  memset(longpw, 'x', sizeof(longpw));
  KT_CHECK(kvvm_p12_pbkdf2("SHA256", longpw, sizeof(longpw), "salt", 4, 3, out, 70) == KVVM_OK);
  KT_CHECK(hex_is(out, 70, "287c49d10c76a257901dd1040c538f08b846734d343bbe2e0330f601abf41c81fc74"
                           "fde8c7eccb8f4498d4c6e7beaa53d6a09b6499f2535e96d103495e13287c04bd7a6"
                           "88e92"));
  KT_CHECK(kvvm_p12_pbkdf2("SHA3", "pw", 2, "salt", 4, 1, out, 16) == KVVM_E_USAGE);
}

/* Published PKCS#12 KDF vectors (BouncyCastle's and Go's x/crypto/pkcs12 tests), and a
 * password past the 31 characters mbedtls_pkcs12_derivation accepts. */
static void test_kdf_vectors(void)
{
  unsigned char out[64];
  KT_CHECK(kvvm_p12_kdf("SHA1", "smeg", "\x0a\x58\xcf\x64\x53\x0d\x82\x3f", 8, 1, 1, out, 24) ==
           KVVM_OK);
  KT_CHECK(hex_is(out, 24, "8aaae6297b6cb04642ab5b077851284eb7128f1a2a7fbca3"));
  KT_CHECK(kvvm_p12_kdf("SHA1", "smeg", "\x0a\x58\xcf\x64\x53\x0d\x82\x3f", 8, 2, 1, out, 8) ==
           KVVM_OK);
  KT_CHECK(hex_is(out, 8, "79993dfe048d3b76"));
  KT_CHECK(kvvm_p12_kdf("SHA1", "queeg", "\x16\x82\xc0\xfc\x5b\x3f\x7e\xc5", 8, 1, 1000, out,
                        24) == KVVM_OK);
  KT_CHECK(hex_is(out, 24, "483dd6e919d7de2e8e648ba8f862f3fbfbdc2bcb2c02957f"));
  KT_CHECK(kvvm_p12_kdf("SHA1", "sesame", "\xff\xff\xff\xff\xff\xff\xff\xff", 8, 1, 2048, out,
                        24) == KVVM_OK);
  KT_CHECK(hex_is(out, 24, "7cd9fd3e2b3be7691a44e3bef0f9ea0fb9b897d4e325d9d1"));
  KT_CHECK(kvvm_p12_kdf("SHA1", "\xff", "salt", 4, 1, 1, out, 8) == KVVM_E_USAGE);
}

static void test_cleanup(void)
{
  if (corpus)
    kt_rmtree(corpus);
  free(corpus);
}

int main(void)
{
  /* The reader logs each refusal once at ERR; hundreds of mutations would flood stderr. */
  kvvm_log_set_stderr_level((enum kvvm_log_level)(KVVM_LOG_ERR + 1));
  static const struct kt_case cases[] = {
    KT_CASE(test_corpus),
    KT_CASE(test_every_variant_reads),
    KT_CASE(test_wrong_password_fails),
    KT_CASE(test_mac_mismatch_words),
    KT_CASE(test_iteration_limit),
    KT_CASE(test_empty_password),
    KT_CASE(test_unsupported_named),
    KT_CASE(test_trailing_bytes_refused),
    KT_CASE(test_truncation_every_length),
    KT_CASE(test_bit_flips),
    KT_CASE(test_pbkdf2_vectors),
    KT_CASE(test_kdf_vectors),
    KT_CASE(test_cleanup),
  };
  return KT_RUN("p12", cases);
}
