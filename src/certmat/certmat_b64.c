/* Base64 for the PKCS#12 values and the PEM files. Why not mbedtls_base64_*: they are
 * constant time through a function call per range test per character, which made decoding
 * each PFX and encoding each PEM a visible part of the first sync's CPU (about 50 us per
 * certificate). These are constant time in the data too (range tests done with arithmetic,
 * no table indexed by a secret character, no branch on one), with the compiler free to
 * inline them. The decoder accepts exactly what mbedtls_base64_decode accepts from text
 * without whitespace, and gives the same bytes (test_certmat compares the two). */
#include <stdint.h>

#include "certmat/certmat_int.h"

/* All ones when lo <= c <= hi, else 0; c, lo, hi in 0..255 (a difference below zero sets
 * the top bit). */
static uint32_t in_range(uint32_t c, uint32_t lo, uint32_t hi)
{
  return (((c - lo) | (hi - c)) >> 31) - 1u;
}

/* The value 0..63 of c, or 64 and up when c is not in the alphabet ('=' included). */
static uint32_t dec_value(uint32_t c)
{
  uint32_t v = 64;
  v += in_range(c, 'A', 'Z') & (c - 'A' - 64);
  v += in_range(c, 'a', 'z') & (c - 'a' + 26 - 64);
  v += in_range(c, '0', '9') & (c - '0' + 52 - 64);
  v += in_range(c, '+', '+') & (62 - 64);
  v += in_range(c, '/', '/') & (63 - 64);
  return v;
}

/* The character of v (0..63): 'A' + v moved by the offset of v's range (mod 256). */
static unsigned char enc_char(uint32_t v)
{
  uint32_t c = v + 'A';
  c += in_range(v, 26, 51) & (uint32_t)('a' - 26 - 'A');
  c += in_range(v, 52, 61) & (uint32_t)('0' - 52 - 'A' + 256);
  c += in_range(v, 62, 62) & (uint32_t)('+' - 62 - 'A' + 256);
  c += in_range(v, 63, 63) & (uint32_t)('/' - 63 - 'A' + 256);
  return (unsigned char)c;
}

/* How many characters before the padding, or SIZE_MAX when the padding is malformed: at
 * most two '=', nothing but '=' after the first (mbedTLS's rule). Where the padding
 * starts is the length of the data, which is not secret. */
static size_t data_len(const unsigned char *src, size_t n)
{
  size_t d = n;
  while (d > 0 && src[d - 1] == '=')
    d--;
  if (n - d > 2)
    return SIZE_MAX;
  return d;
}

/* Three bytes from the four characters at s, of which the last pad are '='; the bits of
 * the characters that are not in the alphabet go into *bad. */
static void dec_quad(const unsigned char *s, size_t pad, unsigned char *dst, uint32_t *bad)
{
  uint32_t x = 0;
  for (size_t k = 0; k < 4; k++) {
    uint32_t v = dec_value(s[k]);
    *bad |= k < 4 - pad ? v >> 6 : 0;
    x = x << 6 | (v & 63);
  }
  dst[0] = (unsigned char)(x >> 16);
  dst[1] = (unsigned char)(x >> 8);
  dst[2] = (unsigned char)x;
}

int kvvm_certmat_b64_dec(unsigned char *dst, size_t cap, size_t *olen, const unsigned char *src,
                         size_t n)
{
  size_t d = data_len(src, n), quads = n / 4, out = 0;
  uint32_t bad = 0;
  *olen = 0;
  if (d == SIZE_MAX || quads * 3 > cap)
    return -1;
  /* Whole groups of four only: mbedTLS drops a last partial group without a word, but
   * still refuses a character in it that is not base64. */
  for (size_t q = 0; q < quads; q++) {
    size_t pad = 4 * q + 4 > d ? 4 * q + 4 - d : 0;
    dec_quad(src + 4 * q, pad, dst + out, &bad);
    out += 3 - pad;
  }
  for (size_t i = 4 * quads; i < d; i++)
    bad |= dec_value(src[i]) >> 6;
  if (bad)
    return -1;
  *olen = out;
  return 0;
}

void kvvm_certmat_b64_enc(unsigned char *dst, const unsigned char *src, size_t n)
{
  size_t i = 0;
  for (; i + 3 <= n; i += 3, dst += 4) {
    uint32_t x = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
    for (int k = 0; k < 4; k++)
      dst[k] = enc_char(x >> (18 - 6 * k) & 63);
  }
  if (i < n) {
    uint32_t x = (uint32_t)src[i] << 16 | (i + 1 < n ? (uint32_t)src[i + 1] << 8 : 0);
    dst[0] = enc_char(x >> 18 & 63);
    dst[1] = enc_char(x >> 12 & 63);
    dst[2] = i + 1 < n ? enc_char(x >> 6 & 63) : '=';
    dst[3] = '=';
    dst += 4;
  }
  *dst = '\0';
}
