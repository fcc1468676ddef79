/* SHA-256 derivations made together (src/certmat/p12_lanes.c, kvvm_p12_derive_sha256) give,
 * lane by lane, what the single-chain derivations give (kvvm_p12_pbkdf2, kvvm_p12_kdf):
 * published PBKDF2-HMAC-SHA256 vectors, then random passwords, salts, iteration counts,
 * output lengths and mixes of 1 to 4 lanes, on the SHA instructions and on mbedTLS alone.
 * The interleaved compression itself is checked block by block in test_sha256.c. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kt.h"
#include "kvvm/err.h"
#include "kvvm/p12.h"
#include "kvvm/sha256.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static uint32_t rnd(void)   /* xorshift64*: repeatable inputs */
{
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 0x2545f4914f6cdd1dULL) >> 32);
}

static void hex(const unsigned char *b, size_t n, char *out)
{
  for (size_t i = 0; i < n; i++)
    snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* RFC 7914 section 11's PBKDF2-HMAC-SHA256 vectors (and the "password"/"salt" ones every
 * PBKDF2 test suite carries), all four as lanes of one run. */
static void vectors(int portable)
{
  static const char *want[] = {
    "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc",
    "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b",
    "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43",
    "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a",
  };
  unsigned char out[4][32];
  char got[65];
  struct kvvm_p12_derivation d[4] = {
    {0, 0, "passwd", 6, "salt", 4, 1, out[0], 32},
    {0, 0, "password", 8, "salt", 4, 1, out[1], 32},
    {0, 0, "password", 8, "salt", 4, 2, out[2], 32},
    {0, 0, "password", 8, "salt", 4, 4096, out[3], 32},
  };
  KT_CHECK(kvvm_p12_derive_sha256(d, 4, portable) == KVVM_OK);
  for (int i = 0; i < 4; i++) {
    hex(out[i], 32, got);
    KT_STREQ(got, want[i]);
  }
}

static void test_vectors_cpu(void)
{
  if (!kvvm_sha256_has_cpu()) {
    KT_SKIP("this CPU lacks the SHA extensions: the portable case covers the lanes");
    return;
  }
  vectors(0);
}

static void test_vectors_portable(void)
{
  vectors(1);
}

/* One random derivation, its single-chain answer in want. */
static void random_derivation(struct kvvm_p12_derivation *d, char *pw, unsigned char *salt,
                              unsigned char *out, unsigned char *want)
{
  d->kdf = (int)(rnd() % 2);
  d->id = (unsigned char)(1 + rnd() % 3);
  d->pw_len = rnd() % 80;   /* past the 64-byte HMAC block: hashed first */
  for (size_t i = 0; i < d->pw_len; i++)
    pw[i] = (char)(0x20 + rnd() % 0x5f);
  pw[d->pw_len] = '\0';
  d->pw = pw;
  d->salt_len = rnd() % 65;
  for (size_t i = 0; i < d->salt_len; i++)
    salt[i] = (unsigned char)rnd();
  d->salt = salt;
  d->iter = 1 + rnd() % 300;
  d->out_len = 1 + rnd() % 32;
  d->out = out;
  if (d->kdf)
    KT_CHECK(kvvm_p12_kdf("SHA256", pw, salt, d->salt_len, d->id, d->iter, want, d->out_len) ==
             KVVM_OK);
  else
    KT_CHECK(kvvm_p12_pbkdf2("SHA256", pw, d->pw_len, salt, d->salt_len, d->iter, want,
                             d->out_len) == KVVM_OK);
}

static void random_runs(int portable)
{
  int differ = 0;
  for (int run = 0; run < 200; run++) {
    struct kvvm_p12_derivation d[KVVM_P12_LANES];
    char pw[KVVM_P12_LANES][81];
    unsigned char salt[KVVM_P12_LANES][64], out[KVVM_P12_LANES][32], want[KVVM_P12_LANES][32];
    size_t n = 1 + rnd() % KVVM_P12_LANES;
    for (size_t i = 0; i < n; i++)
      random_derivation(&d[i], pw[i], salt[i], out[i], want[i]);
    KT_CHECK(kvvm_p12_derive_sha256(d, n, portable) == KVVM_OK);
    for (size_t i = 0; i < n; i++)
      differ += memcmp(out[i], want[i], d[i].out_len) != 0;
  }
  KT_CHECK(differ == 0);
}

static void test_random_cpu(void)
{
  if (!kvvm_sha256_has_cpu()) {
    KT_SKIP("this CPU lacks the SHA extensions: the portable case covers the lanes");
    return;
  }
  random_runs(0);
}

static void test_random_portable(void)
{
  random_runs(1);
}

static void test_refused(void)
{
  unsigned char out[33];
  struct kvvm_p12_derivation d[KVVM_P12_LANES + 1];
  for (size_t i = 0; i < KVVM_P12_LANES + 1; i++)
    d[i] = (struct kvvm_p12_derivation){0, 0, "pw", 2, "salt", 4, 1, out, 32};
  KT_CHECK(kvvm_p12_derive_sha256(d, KVVM_P12_LANES + 1, 0) == KVVM_E_USAGE);
  d[0].out_len = 33;   /* one hash's output at most */
  KT_CHECK(kvvm_p12_derive_sha256(d, 1, 0) == KVVM_E_USAGE);
  d[0] = (struct kvvm_p12_derivation){1, 3, "\xff", 1, "salt", 4, 1, out, 32};
  KT_CHECK(kvvm_p12_derive_sha256(d, 1, 0) == KVVM_E_USAGE);   /* not UTF-8 */
}

int main(void)
{
  static const struct kt_case cases[] = {
    KT_CASE(test_vectors_cpu),
    KT_CASE(test_vectors_portable),
    KT_CASE(test_random_cpu),
    KT_CASE(test_random_portable),
    KT_CASE(test_refused),
  };
  return KT_RUN("p12_lanes", cases);
}
