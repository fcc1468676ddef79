/* Password forms and the two password-based key derivations PKCS#12 files use.
 *
 * Ours, not mbedTLS's: mbedtls_pkcs12_derivation refuses passwords of 32 characters or
 * more and mbedtls_pkcs12_pbe widens bytes as Latin-1, so UTF-8 passwords derive the wrong
 * keys; and mbedtls_pkcs5_pbkdf2_hmac redoes the HMAC key setup (two extra compressions)
 * on every iteration, which doubles the cost of the derivation that dominates decoding an
 * OpenSSL 3 or Key Vault PFX. */
#include <stdint.h>
#include <string.h>

#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/p12.h"
#include "kvvm/sha256.h"
#include "certmat/p12_int.h"

#define MD_MAX_BLOCK 128

/* The hash's input block size, which both derivations need and mbedTLS 2.28 does not say. */
static size_t md_block_size(mbedtls_md_type_t md)
{
  return md == MBEDTLS_MD_SHA384 || md == MBEDTLS_MD_SHA512 ? 128 : 64;
}

/* One code point from UTF-8; 0 when the bytes are not shortest-form UTF-8 of a scalar. */
static size_t utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
  static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
  size_t n = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3
           : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
  if (n == 0 || n > len)
    return 0;
  uint32_t v = n == 1 ? s[0] : s[0] & (0x7f >> n);
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    v = (v << 6) | (s[i] & 0x3f);
  }
  if (v < min[n - 1] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
    return 0;
  *cp = v;
  return n;
}

static void put16(unsigned char *o, uint32_t u)
{
  o[0] = (unsigned char)(u >> 8);
  o[1] = (unsigned char)(u & 0xff);
}

/* Characters beyond U+FFFF become surrogate pairs, as OpenSSL writes them. */
bool p12_utf8_to_bmp(const unsigned char *s, size_t len, unsigned char **bmp, size_t *bmp_len)
{
  unsigned char *o = kvvm_xmalloc(2 * len + 2);   /* UTF-16 never takes more */
  size_t n = 0;
  for (size_t i = 0; i < len;) {
    uint32_t cp;
    size_t k = utf8_next(s + i, len - i, &cp);
    if (!k) {
      kvvm_free_secret(o, 2 * len + 2);
      return false;
    }
    if (cp > 0xffff) {
      put16(o + n, 0xd800 + ((cp - 0x10000) >> 10));
      put16(o + n + 2, 0xdc00 + ((cp - 0x10000) & 0x3ff));
      n += 4;
    } else {
      put16(o + n, cp);
      n += 2;
    }
    i += k;
  }
  put16(o + n, 0);
  *bmp = o;
  *bmp_len = n + 2;
  return true;
}

void p12_latin1_to_bmp(const unsigned char *s, size_t len, unsigned char **bmp,
                       size_t *bmp_len)
{
  unsigned char *o = kvvm_xmalloc(2 * len + 2);
  for (size_t i = 0; i < len; i++)
    put16(o + 2 * i, s[i]);
  put16(o + 2 * len, 0);
  *bmp = o;
  *bmp_len = 2 * len + 2;
}

/* dst[0..dst_len) = src repeated (RFC 7292 B.2 steps 2 and 3). */
static void fill_repeat(unsigned char *dst, size_t dst_len, const unsigned char *src,
                        size_t src_len)
{
  for (size_t i = 0; i < dst_len; i++)
    dst[i] = src[i % src_len];
}

/* I_j = (I_j + B + 1) mod 2^(8v), big-endian (B.2 step 6C). */
static void add_block(unsigned char *ij, const unsigned char *b, size_t v)
{
  unsigned carry = 1;
  for (size_t k = v; k-- > 0;) {
    carry += ij[k] + b[k];
    ij[k] = (unsigned char)(carry & 0xff);
    carry >>= 8;
  }
}

static size_t round_up(size_t n, size_t v)
{
  return (n + v - 1) / v * v;
}

/* A = H^iter(D || I) (B.2 step 6A). With SHA-256 each repeat is one block: one compression
 * (kvvm/sha256.h) instead of mbedTLS's three calls. */
static int kdf_hash(mbedtls_md_context_t *ctx, const unsigned char *d, size_t v,
                    const unsigned char *ii, size_t ii_len, unsigned long iter,
                    unsigned char *a, size_t u)
{
  /* || both sequences the calls and stops at the first failure. */
  int ret = mbedtls_md_starts(ctx) || mbedtls_md_update(ctx, d, v) ||
            mbedtls_md_update(ctx, ii, ii_len) || mbedtls_md_finish(ctx, a);
  if (ret == 0 && mbedtls_md_get_type(ctx->md_info) == MBEDTLS_MD_SHA256) {
    uint32_t st[8];
    unsigned char block[KVVM_SHA256_BLOCK];
    memcpy(block, a, KVVM_SHA256_SIZE);
    kvvm_sha256_pad32(block, KVVM_SHA256_SIZE);
    for (unsigned long r = 1; r < iter; r++) {
      kvvm_sha256_init(st);
      kvvm_sha256_compress(st, block);
      kvvm_sha256_digest(st, block);
    }
    memcpy(a, block, KVVM_SHA256_SIZE);
    mbedtls_platform_zeroize(st, sizeof(st));
    mbedtls_platform_zeroize(block, sizeof(block));
    return 0;
  }
  for (unsigned long r = 1; ret == 0 && r < iter; r++)
    ret = mbedtls_md_starts(ctx) || mbedtls_md_update(ctx, a, u) || mbedtls_md_finish(ctx, a);
  return ret;
}

/* RFC 7292 Appendix B.2, for passwords of any length; bmp may be empty (bmp_len 0). */
enum kvvm_err p12_kdf(mbedtls_md_type_t md, const unsigned char *bmp, size_t bmp_len,
                      const unsigned char *salt, size_t salt_len, unsigned char id,
                      unsigned long iter, unsigned char *out, size_t out_len)
{
  const mbedtls_md_info_t *info = mbedtls_md_info_from_type(md);
  size_t v = md_block_size(md), u = mbedtls_md_get_size(info);
  size_t s_len = round_up(salt_len, v), ii_len = s_len + round_up(bmp_len, v);
  unsigned char *ii = kvvm_xmalloc(ii_len);
  unsigned char d[MD_MAX_BLOCK], a[MBEDTLS_MD_MAX_SIZE], b[MD_MAX_BLOCK];
  mbedtls_md_context_t ctx;
  enum kvvm_err err = KVVM_OK;

  mbedtls_md_init(&ctx);
  memset(d, id, v);
  fill_repeat(ii, s_len, salt, salt_len);
  fill_repeat(ii + s_len, ii_len - s_len, bmp, bmp_len);
  if (mbedtls_md_setup(&ctx, info, 0) != 0) {
    err = KVVM_E_INTERNAL;
    goto out;
  }
  for (size_t off = 0; off < out_len; off += u) {
    if (kdf_hash(&ctx, d, v, ii, ii_len, iter, a, u) != 0) {
      err = KVVM_E_INTERNAL;
      goto out;
    }
    memcpy(out + off, a, out_len - off < u ? out_len - off : u);
    if (off + u >= out_len)
      break;
    fill_repeat(b, v, a, u);
    for (size_t j = 0; j < ii_len; j += v)
      add_block(ii + j, b, v);
  }
out:
  if (err)
    KVVM_ERR("PKCS#12 key derivation failed inside mbedTLS");
  mbedtls_md_free(&ctx);
  mbedtls_platform_zeroize(a, sizeof(a));
  mbedtls_platform_zeroize(b, sizeof(b));
  kvvm_free_secret(ii, ii_len);
  return err;
}

/* HMAC's keyed states, hashed once: inner = H state after (K ^ ipad), outer after
 * (K ^ opad). Each PBKDF2 iteration then clones them instead of re-keying. */
static int hmac_pads(mbedtls_md_context_t *inner, mbedtls_md_context_t *outer,
                     mbedtls_md_type_t md, const unsigned char *pw, size_t pw_len)
{
  const mbedtls_md_info_t *info = mbedtls_md_info_from_type(md);
  size_t bs = md_block_size(md);
  unsigned char key[MD_MAX_BLOCK], pad[MD_MAX_BLOCK];
  int ret = 0;

  memset(key, 0, sizeof(key));
  if (pw_len > bs)
    ret = mbedtls_md(info, pw, pw_len, key);   /* RFC 2104: long keys are hashed first */
  else if (pw_len)
    memcpy(key, pw, pw_len);
  for (size_t i = 0; i < bs; i++)
    pad[i] = key[i] ^ 0x36;
  ret = ret || mbedtls_md_starts(inner) || mbedtls_md_update(inner, pad, bs);
  for (size_t i = 0; i < bs; i++)
    pad[i] = key[i] ^ 0x5c;
  ret = ret || mbedtls_md_starts(outer) || mbedtls_md_update(outer, pad, bs);
  mbedtls_platform_zeroize(key, sizeof(key));
  mbedtls_platform_zeroize(pad, sizeof(pad));
  return ret;
}

/* u = HMAC(key, data) from the keyed states; u may alias data. */
static int hmac_once(mbedtls_md_context_t *work, const mbedtls_md_context_t *inner,
                     const mbedtls_md_context_t *outer, const unsigned char *data,
                     size_t len, unsigned char *u, size_t n)
{
  return mbedtls_md_clone(work, inner) || mbedtls_md_update(work, data, len) ||
         mbedtls_md_finish(work, u) || mbedtls_md_clone(work, outer) ||
         mbedtls_md_update(work, u, n) || mbedtls_md_finish(work, u);
}

/* HMAC-SHA256's keyed states as raw SHA-256 states, for the one-block iterations below. */
struct sha256_pads {
  uint32_t inner[8], outer[8];
};

void p12_sha256_pads(uint32_t inner[8], uint32_t outer[8], const unsigned char *pw,
                     size_t pw_len)
{
  unsigned char key[KVVM_SHA256_BLOCK], pad[KVVM_SHA256_BLOCK];
  memset(key, 0, sizeof(key));
  if (pw_len > sizeof(key))
    mbedtls_sha256_ret(pw, pw_len, key, 0);   /* RFC 2104: long keys are hashed first */
  else if (pw_len)
    memcpy(key, pw, pw_len);
  for (size_t i = 0; i < sizeof(pad); i++)
    pad[i] = key[i] ^ 0x36;
  kvvm_sha256_init(inner);
  kvvm_sha256_compress(inner, pad);
  for (size_t i = 0; i < sizeof(pad); i++)
    pad[i] = key[i] ^ 0x5c;
  kvvm_sha256_init(outer);
  kvvm_sha256_compress(outer, pad);
  mbedtls_platform_zeroize(key, sizeof(key));
  mbedtls_platform_zeroize(pad, sizeof(pad));
}

/* U_2 .. U_iter folded into t: each U_j = HMAC(U_{j-1}) is one 32-byte message after a
 * keyed block, so two compressions. */
static void sha256_iterate(const struct sha256_pads *k, const unsigned char u[KVVM_SHA256_SIZE],
                           unsigned long iter, unsigned char *t)
{
  uint32_t st[8];
  unsigned char block[KVVM_SHA256_BLOCK];   /* U, then padding: both halves hash 96 bytes */
  memcpy(block, u, KVVM_SHA256_SIZE);
  kvvm_sha256_pad32(block, KVVM_SHA256_BLOCK + KVVM_SHA256_SIZE);
  for (unsigned long j = 1; j < iter; j++) {
    memcpy(st, k->inner, sizeof(st));
    kvvm_sha256_compress(st, block);
    kvvm_sha256_digest(st, block);
    memcpy(st, k->outer, sizeof(st));
    kvvm_sha256_compress(st, block);
    kvvm_sha256_digest(st, block);
    for (size_t b = 0; b < KVVM_SHA256_SIZE; b++)
      t[b] ^= block[b];
  }
  mbedtls_platform_zeroize(st, sizeof(st));
  mbedtls_platform_zeroize(block, sizeof(block));
}

/* T_i = U_1 ^ ... ^ U_iter, U_1 = PRF(salt || INT(i)), U_j = PRF(U_{j-1}) (RFC 8018 5.2).
 * fast: SHA-256's keyed states, when the PRF is HMAC-SHA256. */
static int pbkdf2_block(mbedtls_md_context_t *ctx, const struct sha256_pads *fast,
                        const unsigned char *salt, size_t salt_len, uint32_t i,
                        unsigned long iter, unsigned char *t, size_t n)
{
  mbedtls_md_context_t *inner = &ctx[0], *outer = &ctx[1], *work = &ctx[2];
  unsigned char u[MBEDTLS_MD_MAX_SIZE], be[4] = {(unsigned char)(i >> 24),
                                                 (unsigned char)(i >> 16),
                                                 (unsigned char)(i >> 8), (unsigned char)i};
  int ret = mbedtls_md_clone(work, inner) || mbedtls_md_update(work, salt, salt_len) ||
            mbedtls_md_update(work, be, 4) || mbedtls_md_finish(work, u) ||
            mbedtls_md_clone(work, outer) || mbedtls_md_update(work, u, n) ||
            mbedtls_md_finish(work, u);
  memcpy(t, u, n);
  if (ret == 0 && fast)
    sha256_iterate(fast, u, iter, t);
  for (unsigned long j = 1; ret == 0 && !fast && j < iter; j++) {
    ret = hmac_once(work, inner, outer, u, n, u, n);
    for (size_t k = 0; k < n; k++)
      t[k] ^= u[k];
  }
  mbedtls_platform_zeroize(u, sizeof(u));
  return ret;
}

enum kvvm_err p12_pbkdf2(mbedtls_md_type_t md, const unsigned char *pw, size_t pw_len,
                         const unsigned char *salt, size_t salt_len, unsigned long iter,
                         unsigned char *out, size_t out_len)
{
  const mbedtls_md_info_t *info = mbedtls_md_info_from_type(md);
  size_t n = mbedtls_md_get_size(info);
  mbedtls_md_context_t ctx[3];   /* inner, outer, work */
  unsigned char t[MBEDTLS_MD_MAX_SIZE];
  int ret = 0;

  for (int i = 0; i < 3; i++)
    mbedtls_md_init(&ctx[i]);
  for (int i = 0; i < 3; i++)
    ret = ret || mbedtls_md_setup(&ctx[i], info, 0);
  if (ret == 0)
    ret = hmac_pads(&ctx[0], &ctx[1], md, pw, pw_len);
  struct sha256_pads pads;
  if (md == MBEDTLS_MD_SHA256)
    p12_sha256_pads(pads.inner, pads.outer, pw, pw_len);
  for (uint32_t i = 1; ret == 0 && (size_t)(i - 1) * n < out_len; i++) {
    size_t off = (size_t)(i - 1) * n;
    ret = pbkdf2_block(ctx, md == MBEDTLS_MD_SHA256 ? &pads : NULL, salt, salt_len, i, iter,
                       t, n);
    memcpy(out + off, t, out_len - off < n ? out_len - off : n);
  }
  for (int i = 0; i < 3; i++)
    mbedtls_md_free(&ctx[i]);   /* zeroises the keyed states */
  mbedtls_platform_zeroize(&pads, sizeof(pads));
  mbedtls_platform_zeroize(t, sizeof(t));
  if (ret != 0) {
    KVVM_ERR("PBKDF2 failed inside mbedTLS");
    return KVVM_E_INTERNAL;
  }
  return KVVM_OK;
}

enum kvvm_err kvvm_p12_pbkdf2(const char *md, const void *pw, size_t pwlen, const void *salt,
                              size_t saltlen, unsigned iter, unsigned char *out,
                              size_t outlen)
{
  const mbedtls_md_info_t *info = mbedtls_md_info_from_string(md);
  if (!info || iter == 0)
    return KVVM_E_USAGE;
  return p12_pbkdf2(mbedtls_md_get_type(info), pw, pwlen, salt, saltlen, iter, out, outlen);
}

enum kvvm_err kvvm_p12_kdf(const char *md, const char *pw_utf8, const void *salt,
                           size_t saltlen, unsigned char id, unsigned iter,
                           unsigned char *out, size_t outlen)
{
  const mbedtls_md_info_t *info = mbedtls_md_info_from_string(md);
  unsigned char *bmp;
  size_t bmp_len;
  if (!info || iter == 0 ||
      !p12_utf8_to_bmp((const unsigned char *)pw_utf8, strlen(pw_utf8), &bmp, &bmp_len))
    return KVVM_E_USAGE;
  enum kvvm_err err = p12_kdf(mbedtls_md_get_type(info), bmp, bmp_len, salt, saltlen, id,
                              iter, out, outlen);
  kvvm_free_secret(bmp, bmp_len);
  return err;
}
