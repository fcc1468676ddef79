/* SHA-256 one block at a time (src/sha256.c): the CPU path and the portable path give the
 * same states for random states and blocks, and a padded 32-byte block (kvvm_sha256_pad32,
 * kvvm_sha256_digest) gives the digests mbedTLS computes for the message shapes the key
 * derivations hash (32 bytes alone; a 64-byte HMAC pad block then 32 bytes); lanes stepped
 * together (kvvm_sha256_step_lanes) match each lane's portable compression. The derivations built on it are checked against
 * published vectors in test_p12.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/sha256.h>

#include "kt.h"
#include "kvvm/sha256.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void)   /* xorshift64*: repeatable inputs, no libc rand state */
{
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 0x2545f4914f6cdd1dULL) >> 32);
}

static void fill(unsigned char *b, size_t n)
{
  for (size_t i = 0; i < n; i++)
    b[i] = (unsigned char)rnd();
}

static void test_cpu_matches_portable(void)
{
  printf("  this CPU %s the SHA extensions\n", kvvm_sha256_has_cpu() ? "has" : "lacks");
  int differ = 0;
  for (int n = 0; n < 5000; n++) {
    uint32_t a[8], b[8];
    unsigned char block[64];
    for (int i = 0; i < 8; i++)
      a[i] = b[i] = rnd();
    fill(block, sizeof(block));
    kvvm_sha256_compress(a, block);
    kvvm_sha256_compress_portable(b, block);
    differ += memcmp(a, b, sizeof(a)) != 0;
  }
  KT_CHECK(differ == 0);
}

/* 1 to 7 lanes stepped at once (whole groups of three, then two or one) against the
 * portable compression of each lane alone and its digest, on random states and blocks. */
static void test_lanes_match_portable(void)
{
  int differ = 0;
  for (int n = 0; n < 2000; n++) {
    uint32_t init[7][8], st[8];
    const uint32_t *ip[7];
    unsigned char block[7][64], want[32], *blk[7];
    unsigned lanes = 1 + (unsigned)n % 7;
    for (unsigned l = 0; l < lanes; l++) {
      for (int i = 0; i < 8; i++)
        init[l][i] = rnd();
      fill(block[l], sizeof(block[l]));
      ip[l] = init[l];
      blk[l] = block[l];
    }
    unsigned char orig[7][64];
    memcpy(orig, block, sizeof(orig));
    kvvm_sha256_step_lanes(lanes, ip, blk);
    for (unsigned l = 0; l < lanes; l++) {
      memcpy(st, init[l], sizeof(st));
      kvvm_sha256_compress_portable(st, orig[l]);
      kvvm_sha256_digest(st, want);
      differ += memcmp(block[l], want, 32) != 0 || memcmp(block[l] + 32, orig[l] + 32, 32) != 0;
    }
  }
  KT_CHECK(differ == 0);
}

/* The empty message: a known digest, through init + one compression of the padding. */
static void test_empty_message(void)
{
  static const unsigned char want[32] = {
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
  unsigned char block[64] = {0x80};
  uint32_t st[8];
  kvvm_sha256_init(st);
  kvvm_sha256_compress(st, block);
  unsigned char got[32];
  kvvm_sha256_digest(st, got);
  KT_CHECK(memcmp(got, want, 32) == 0);
}

/* The last 32 bytes of a message of total bytes, hashed from state st as the derivations do. */
static void last32(uint32_t st[8], const unsigned char *msg, uint64_t total, unsigned char out[32])
{
  unsigned char block[64];
  memcpy(block, msg, 32);
  kvvm_sha256_pad32(block, total);
  kvvm_sha256_compress(st, block);
  kvvm_sha256_digest(st, out);
}

static void test_padded_block_matches_mbedtls(void)
{
  int differ = 0;
  for (int n = 0; n < 500; n++) {
    unsigned char msg[96], want[32], got[32];
    uint32_t st[8];
    fill(msg, sizeof(msg));
    /* 32 bytes: the PKCS#12 KDF's A = H(A). */
    mbedtls_sha256_ret(msg, 32, want, 0);
    kvvm_sha256_init(st);
    last32(st, msg, 32, got);
    differ += memcmp(got, want, 32) != 0;
    /* 64 + 32 bytes: an HMAC half, the keyed pad block then the 32-byte value. */
    mbedtls_sha256_ret(msg, 96, want, 0);
    kvvm_sha256_init(st);
    kvvm_sha256_compress(st, msg);
    last32(st, msg + 64, 96, got);
    differ += memcmp(got, want, 32) != 0;
  }
  KT_CHECK(differ == 0);
}

/* The digest may be written over the block it came from: the derivations feed it back. */
static void test_digest_in_place(void)
{
  unsigned char block[64], want[32];
  uint32_t st[8];
  fill(block, 32);
  mbedtls_sha256_ret(block, 32, want, 0);
  kvvm_sha256_pad32(block, 32);
  kvvm_sha256_init(st);
  kvvm_sha256_compress(st, block);
  kvvm_sha256_digest(st, block);
  KT_CHECK(memcmp(block, want, 32) == 0);
}

int main(void)
{
  static const struct kt_case cases[] = {
    {"the CPU path matches the portable one on 5000 random blocks", test_cpu_matches_portable},
    {"1 to 7 lanes stepped together match the portable path lane by lane",
     test_lanes_match_portable},
    {"the empty message hashes to SHA-256's known digest", test_empty_message},
    {"a padded 32-byte block matches mbedTLS for 32- and 96-byte messages",
     test_padded_block_matches_mbedtls},
    {"the digest can be written over the block it came from", test_digest_in_place},
  };
  return kt_main("sha256", cases, sizeof(cases) / sizeof(cases[0]));
}
