/* RC2 (src/rc2.c) on the eight test vectors of RFC 2268 section 5, which cover key lengths
 * of 1 to 33 bytes and effective key lengths of 63 to 129 bits, and CBC on a ciphertext
 * made by `openssl enc -rc2-cbc` (128-bit key and effective length). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "kt.h"
#include "kvvm/p12.h"

static size_t unhex(const char *h, unsigned char *out)
{
  size_t n = 0;
  for (; h[0] && h[1]; h += 2) {
    unsigned v;
    sscanf(h, "%2x", &v);
    out[n++] = (unsigned char)v;
  }
  return n;
}

static void test_rfc2268_vectors(void)
{
  static const struct {
    const char *key;
    unsigned bits;
    const char *plain, *cipher;
  } v[] = {
    {"0000000000000000", 63, "0000000000000000", "ebb773f993278eff"},
    {"ffffffffffffffff", 64, "ffffffffffffffff", "278b27e42e2f0d49"},
    {"3000000000000000", 64, "1000000000000001", "30649edf9be7d2c2"},
    {"88", 64, "0000000000000000", "61a8a244adacccf0"},
    {"88bca90e90875a", 64, "0000000000000000", "6ccf4308974c267f"},
    {"88bca90e90875a7f0f79c384627bafb2", 64, "0000000000000000", "1a807d272bbe5db1"},
    {"88bca90e90875a7f0f79c384627bafb2", 128, "0000000000000000", "2269552ab0f85ca6"},
    {"88bca90e90875a7f0f79c384627bafb216f80a6f85920584c42fceb0be255daf1e", 129,
     "0000000000000000", "5b78d3a43dfff1f1"},
  };
  for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
    unsigned char key[64], plain[8], cipher[8], out[8];
    size_t klen = unhex(v[i].key, key);
    struct kvvm_rc2 rc2;
    unhex(v[i].plain, plain);
    unhex(v[i].cipher, cipher);
    kvvm_rc2_setkey(&rc2, key, klen, v[i].bits);
    kvvm_rc2_decrypt_block(&rc2, cipher, out);
    if (memcmp(out, plain, 8) != 0)
      fprintf(stderr, "  vector %zu (key %s, %u bits) fails\n", i + 1, v[i].key, v[i].bits);
    KT_CHECK(memcmp(out, plain, 8) == 0);
  }
}

static void test_cbc_against_openssl(void)
{
  unsigned char key[16], iv[8], cipher[56], out[56];
  struct kvvm_rc2 rc2;
  static const char plain[] = "The quick brown fox jumps over the lazy dog!!!!!";
  unhex("000102030405060708090a0b0c0d0e0f", key);
  unhex("0001020304050607", iv);
  unhex("51df6d8de1cdba0b93864f4847846a6462b7727270debd068bec21ef70e4db1bc4282477c6c6e71a"
        "dfff3b14d52d8d4af742d5b568dc8143", cipher);
  kvvm_rc2_setkey(&rc2, key, 16, 128);
  kvvm_rc2_cbc_decrypt(&rc2, iv, cipher, sizeof(cipher), out);
  KT_CHECK(memcmp(out, plain, 48) == 0);
  KT_CHECK(memcmp(out + 48, "\x08\x08\x08\x08\x08\x08\x08\x08", 8) == 0);   /* PKCS#7 pad */
  KT_CHECK(memcmp(iv, cipher + 48, 8) == 0);   /* the IV carries on to the next call */

  /* In place, in two calls: the same plaintext. */
  unhex("0001020304050607", iv);
  kvvm_rc2_cbc_decrypt(&rc2, iv, cipher, 24, cipher);
  kvvm_rc2_cbc_decrypt(&rc2, iv, cipher + 24, 32, cipher + 24);
  KT_CHECK(memcmp(cipher, out, sizeof(out)) == 0);
  kvvm_rc2_wipe(&rc2);
  static const struct kvvm_rc2 zero;
  KT_CHECK(memcmp(&rc2, &zero, sizeof(zero)) == 0);
}

int main(void)
{
  static const struct kt_case cases[] = {
    KT_CASE(test_rfc2268_vectors),
    KT_CASE(test_cbc_against_openssl),
  };
  return KT_RUN("rc2", cases);
}
