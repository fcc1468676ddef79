/* SHA-256 one block at a time (kvvm/sha256.h): the x86 SHA extensions when the CPU has them,
 * mbedTLS's portable compression otherwise. Only the key derivations use this; every other
 * hash in kvvm goes through mbedTLS's md layer. */
#include <stdatomic.h>
#include <string.h>

#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include "kvvm/sha256.h"

#if defined(__GNUC__) && defined(__x86_64__)
#define KVVM_SHA_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

void kvvm_sha256_init(uint32_t state[8])
{
  memcpy(state, iv, sizeof(iv));
}

void kvvm_sha256_compress_portable(uint32_t state[8], const unsigned char block[KVVM_SHA256_BLOCK])
{
  mbedtls_sha256_context c;
  mbedtls_sha256_init(&c);
  memcpy(c.state, state, sizeof(c.state));
  mbedtls_internal_sha256_process(&c, block);   /* cannot fail for SHA-256 */
  memcpy(state, c.state, sizeof(c.state));
  mbedtls_sha256_free(&c);   /* zeroises the copy of the state */
}

#ifdef KVVM_SHA_X86
static const uint32_t k256[64] = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

/* The state after a block: the ABEF, CDGH registers plus init, back in state order. */
__attribute__((target("sha,sse4.1,ssse3"), always_inline))
static inline void final_x86(const uint32_t init[8], __m128i abef, __m128i cdgh, __m128i *lo,
                             __m128i *hi)
{
  __m128i dcba = _mm_loadu_si128((const __m128i *)(const void *)&init[0]);
  __m128i efgh = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(const void *)&init[4]),
                                   0x1b);
  __m128i cdab = _mm_shuffle_epi32(dcba, 0xb1);
  abef = _mm_add_epi32(abef, _mm_alignr_epi8(cdab, efgh, 8));
  cdgh = _mm_add_epi32(cdgh, _mm_blend_epi16(efgh, cdab, 0xf0));
  __m128i feba = _mm_shuffle_epi32(abef, 0x1b), dchg = _mm_shuffle_epi32(cdgh, 0xb1);
  *lo = _mm_blend_epi16(feba, dchg, 0xf0);
  *hi = _mm_alignr_epi8(dchg, feba, 8);
}

/* The instructions work on the state as two registers, ABEF and CDGH (A in the top lane).
 * sha256rnds2 is latency-bound: one chain leaves the unit idle most cycles, so n independent
 * lanes go through each round group together (n a constant after inlining, the lane loops
 * unrolled). Each lane goes from st[l] over blk[l] into st_out[l] (a state) or, when
 * st_out is NULL, into dg_out[l][0..31] (the digest: the derivations' next message, with no
 * round trip through the state's words). */
__attribute__((target("sha,sse4.1,ssse3"), always_inline))
static inline void lanes_x86(unsigned n, const uint32_t *const st[],
                             const unsigned char *const blk[], uint32_t *const st_out[],
                             unsigned char *const dg_out[])
{
  const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i abef[KVVM_SHA256_LANES], cdgh[KVVM_SHA256_LANES], w[KVVM_SHA256_LANES][4];

#pragma GCC unroll 3
  for (unsigned l = 0; l < n; l++) {
    __m128i dcba = _mm_loadu_si128((const __m128i *)(const void *)&st[l][0]);
    __m128i efgh = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(const void *)&st[l][4]),
                                     0x1b);
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xb1);
    abef[l] = _mm_alignr_epi8(cdab, efgh, 8);
    cdgh[l] = _mm_blend_epi16(efgh, cdab, 0xf0);
  }
  /* w[l][g % 4] holds message words 4g .. 4g+3; a round group needs only the last four. */
  for (int g = 0; g < 16; g++) {
    __m128i k = _mm_loadu_si128((const __m128i *)(const void *)&k256[4 * g]);
#pragma GCC unroll 3
    for (unsigned l = 0; l < n; l++) {
      __m128i *cur = &w[l][g % 4];
      if (g < 4) {
        *cur = _mm_shuffle_epi8(
            _mm_loadu_si128((const __m128i *)(const void *)(blk[l] + 16 * g)), bswap);
      } else {   /* W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16], four at a time */
        __m128i m1 = w[l][(g - 1) % 4], m2 = w[l][(g - 2) % 4];
        *cur = _mm_sha256msg1_epu32(*cur, w[l][(g - 3) % 4]);
        *cur = _mm_add_epi32(*cur, _mm_alignr_epi8(m1, m2, 4));
        *cur = _mm_sha256msg2_epu32(*cur, m1);
      }
      __m128i m = _mm_add_epi32(*cur, k);
      /* Two rounds each. After the first pair the old ABEF is the new CDGH, so after the
       * second both names hold again. */
      cdgh[l] = _mm_sha256rnds2_epu32(cdgh[l], abef[l], m);
      abef[l] = _mm_sha256rnds2_epu32(abef[l], cdgh[l], _mm_shuffle_epi32(m, 0x0e));
    }
  }
#pragma GCC unroll 3
  for (unsigned l = 0; l < n; l++) {
    __m128i lo, hi;
    final_x86(st[l], abef[l], cdgh[l], &lo, &hi);
    if (!st_out) {
      lo = _mm_shuffle_epi8(lo, bswap);   /* big-endian words */
      hi = _mm_shuffle_epi8(hi, bswap);
    }
    unsigned char *out = st_out ? (unsigned char *)(void *)st_out[l] : dg_out[l];
    _mm_storeu_si128((__m128i *)(void *)out, lo);
    _mm_storeu_si128((__m128i *)(void *)(out + 16), hi);
  }
}

__attribute__((target("sha,sse4.1,ssse3")))
static void compress_x86(uint32_t state[8], const unsigned char *block)
{
  const uint32_t *init = state;
  lanes_x86(1, &init, &block, &state, NULL);
}

__attribute__((target("sha,sse4.1,ssse3")))
static void step_x86(const uint32_t *const init[], unsigned char *const blk[])
{
  lanes_x86(1, init, (const unsigned char *const *)blk, NULL, blk);
}

__attribute__((target("sha,sse4.1,ssse3")))
static void step_x86_x2(const uint32_t *const init[], unsigned char *const blk[])
{
  lanes_x86(2, init, (const unsigned char *const *)blk, NULL, blk);
}

__attribute__((target("sha,sse4.1,ssse3")))
static void step_x86_x3(const uint32_t *const init[], unsigned char *const blk[])
{
  lanes_x86(3, init, (const unsigned char *const *)blk, NULL, blk);
}

/* cpuid is a VM exit on a virtual machine: ask once. 0 unknown, 1 yes, 2 no. */
static atomic_int cpu_sha;

bool kvvm_sha256_has_cpu(void)
{
  int v = atomic_load_explicit(&cpu_sha, memory_order_relaxed);
  if (v == 0) {
    unsigned a, b, c, d;
    bool ok = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSSE3) && (c & bit_SSE4_1) &&
              __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_SHA);
    v = ok ? 1 : 2;
    atomic_store_explicit(&cpu_sha, v, memory_order_relaxed);
  }
  return v == 1;
}
#else
bool kvvm_sha256_has_cpu(void)
{
  return false;
}
#endif

void kvvm_sha256_compress(uint32_t state[8], const unsigned char block[KVVM_SHA256_BLOCK])
{
#ifdef KVVM_SHA_X86
  if (kvvm_sha256_has_cpu()) {
    compress_x86(state, block);
    return;
  }
#endif
  kvvm_sha256_compress_portable(state, block);
}

void kvvm_sha256_step_lanes_portable(unsigned n, const uint32_t *const init[],
                                      unsigned char *const blk[])
{
  for (unsigned l = 0; l < n; l++) {
    uint32_t st[8];
    memcpy(st, init[l], sizeof(st));
    kvvm_sha256_compress_portable(st, blk[l]);
    kvvm_sha256_digest(st, blk[l]);
    mbedtls_platform_zeroize(st, sizeof(st));
  }
}

void kvvm_sha256_step_lanes(unsigned n, const uint32_t *const init[],
                            unsigned char *const blk[])
{
#ifdef KVVM_SHA_X86
  if (kvvm_sha256_has_cpu()) {
    for (; n >= 3; n -= 3, init += 3, blk += 3)
      step_x86_x3(init, blk);
    if (n == 2)
      step_x86_x2(init, blk);
    else if (n == 1)
      step_x86(init, blk);
    return;
  }
#endif
  kvvm_sha256_step_lanes_portable(n, init, blk);
}

void kvvm_sha256_pad32(unsigned char block[KVVM_SHA256_BLOCK], uint64_t total)
{
  uint64_t bits = total * 8;
  memset(block + KVVM_SHA256_SIZE, 0, KVVM_SHA256_BLOCK - KVVM_SHA256_SIZE);
  block[KVVM_SHA256_SIZE] = 0x80;
  for (int i = 0; i < 8; i++)
    block[KVVM_SHA256_BLOCK - 1 - i] = (unsigned char)(bits >> (8 * i));
}

void kvvm_sha256_digest(const uint32_t state[8], unsigned char out[KVVM_SHA256_SIZE])
{
  for (int i = 0; i < 8; i++) {
    uint32_t be = __builtin_bswap32(state[i]);
    memcpy(out + 4 * i, &be, 4);
  }
}
