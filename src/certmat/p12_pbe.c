/* Bag decryption: the PKCS#12 v1 schemes (RFC 7292 Appendix C: 3DES, 2-key 3DES, RC2,
 * RC4, all keyed by the PKCS#12 KDF over SHA-1) and PBES2 (RFC 8018: PBKDF2 with HMAC-SHA1
 * to SHA-512, AES-CBC or DES-EDE3-CBC).
 *
 * mbedTLS 2.28 reads only some of these (no AES in PBES2, no RC2, and none with long or
 * UTF-8 passwords), so everything is composed here from its ciphers and our derivations.
 * The OID is checked before anything else so that an unsupported scheme is named, not
 * reported as a wrong password. */
#include <string.h>

#include <mbedtls/arc4.h>
#include <mbedtls/cipher.h>
#include <mbedtls/oid.h>
#include <mbedtls/platform_util.h>

#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/p12.h"
#include "certmat/p12_int.h"

#define MAX_KEY 32
#define MAX_IV 16

enum pbe1_kind { PBE1_CBC, PBE1_RC2, PBE1_RC4 };

/* RFC 7292 Appendix C. */
static const struct pbe1 {
  const char *oid;
  size_t oid_len;
  const char *name;
  enum pbe1_kind kind;
  mbedtls_cipher_type_t cipher;   /* PBE1_CBC */
  size_t key_len;
  unsigned rc2_bits;              /* PBE1_RC2: the effective key length */
} pbe1_schemes[] = {
#define O(o) o, MBEDTLS_OID_SIZE(o)
  {O(MBEDTLS_OID_PKCS12_PBE_SHA1_DES3_EDE_CBC), "pbeWithSHAAnd3-KeyTripleDES-CBC", PBE1_CBC,
   MBEDTLS_CIPHER_DES_EDE3_CBC, 24, 0},
  {O(MBEDTLS_OID_PKCS12_PBE_SHA1_DES2_EDE_CBC), "pbeWithSHAAnd2-KeyTripleDES-CBC", PBE1_CBC,
   MBEDTLS_CIPHER_DES_EDE_CBC, 16, 0},
  {O(MBEDTLS_OID_PKCS12_PBE_SHA1_RC2_128_CBC), "pbeWithSHAAnd128BitRC2-CBC", PBE1_RC2,
   MBEDTLS_CIPHER_NONE, 16, 128},
  {O(MBEDTLS_OID_PKCS12_PBE_SHA1_RC2_40_CBC), "pbeWithSHAAnd40BitRC2-CBC", PBE1_RC2,
   MBEDTLS_CIPHER_NONE, 5, 40},
  {O(MBEDTLS_OID_PKCS12_PBE_SHA1_RC4_128), "pbeWithSHAAnd128BitRC4", PBE1_RC4,
   MBEDTLS_CIPHER_NONE, 16, 0},
  {O(MBEDTLS_OID_PKCS12_PBE_SHA1_RC4_40), "pbeWithSHAAnd40BitRC4", PBE1_RC4,
   MBEDTLS_CIPHER_NONE, 5, 0},
};

/* PBES2 encryption schemes; mbedTLS's own table lacks the AES ones. */
static const struct pbes2_cipher {
  const char *oid;
  size_t oid_len;
  const char *name;
  mbedtls_cipher_type_t cipher;
  size_t key_len;
} pbes2_ciphers[] = {
  {O(MBEDTLS_OID_AES "\x02"), "PBES2-AES-128-CBC", MBEDTLS_CIPHER_AES_128_CBC, 16},
  {O(MBEDTLS_OID_AES "\x16"), "PBES2-AES-192-CBC", MBEDTLS_CIPHER_AES_192_CBC, 24},
  {O(MBEDTLS_OID_AES "\x2a"), "PBES2-AES-256-CBC", MBEDTLS_CIPHER_AES_256_CBC, 32},
  {O(MBEDTLS_OID_DES_EDE3_CBC), "PBES2-DES-EDE3-CBC", MBEDTLS_CIPHER_DES_EDE3_CBC, 24},
  {O(MBEDTLS_OID_DES_CBC), "PBES2-DES-CBC", MBEDTLS_CIPHER_DES_CBC, 8},
#undef O
};

static bool oid_is(const mbedtls_asn1_buf *oid, const char *der, size_t len)
{
  return oid->len == len && memcmp(oid->p, der, len) == 0;
}

/* CBC with PKCS#7 padding through mbedTLS (AES, DES, 3DES). */
static enum kvvm_err cbc_decrypt(struct p12_ctx *c, mbedtls_cipher_type_t type,
                                 const unsigned char *key, const unsigned char *iv,
                                 size_t iv_len, const unsigned char *in, size_t len,
                                 unsigned char **out, size_t *out_len)
{
  const mbedtls_cipher_info_t *info = mbedtls_cipher_info_from_type(type);
  mbedtls_cipher_context_t ctx;
  size_t n1 = 0, n2 = 0, cap = len + 32;
  unsigned char *buf = kvvm_xmalloc(cap);
  int ret;

  mbedtls_cipher_init(&ctx);
  ret = mbedtls_cipher_setup(&ctx, info);
  if (ret == 0 && iv_len != (size_t)mbedtls_cipher_get_iv_size(&ctx))
    ret = -1;   /* the file's IV does not fit the cipher */
  if (ret == 0)
    ret = mbedtls_cipher_setkey(&ctx, key, (int)info->key_bitlen, MBEDTLS_DECRYPT);
  if (ret == 0)
    ret = mbedtls_cipher_set_padding_mode(&ctx, MBEDTLS_PADDING_PKCS7);
  if (ret == 0)
    ret = mbedtls_cipher_set_iv(&ctx, iv, iv_len);
  if (ret == 0)
    ret = mbedtls_cipher_update(&ctx, in, len, buf, &n1);
  if (ret == 0)
    ret = mbedtls_cipher_finish(&ctx, buf + n1, &n2);
  mbedtls_cipher_free(&ctx);   /* zeroises the key schedule */
  if (ret != 0) {
    kvvm_free_secret(buf, cap);
    return p12_undecryptable(c);
  }
  *out = buf;
  *out_len = n1 + n2;
  return KVVM_OK;
}

/* RC2-CBC with PKCS#7 padding, our own RC2 (rc2.c). */
static enum kvvm_err rc2_decrypt(struct p12_ctx *c, const struct pbe1 *s,
                                 const unsigned char *key, unsigned char iv[8],
                                 const unsigned char *in, size_t len, unsigned char **out,
                                 size_t *out_len)
{
  struct kvvm_rc2 rc2;
  if (len == 0 || len % 8 != 0)
    return p12_undecryptable(c);
  unsigned char *buf = kvvm_xmalloc(len);
  kvvm_rc2_setkey(&rc2, key, s->key_len, s->rc2_bits);
  kvvm_rc2_cbc_decrypt(&rc2, iv, in, len, buf);
  kvvm_rc2_wipe(&rc2);
  unsigned pad = buf[len - 1];
  bool ok = pad >= 1 && pad <= 8;
  for (size_t i = 0; ok && i < pad; i++)
    ok = buf[len - 1 - i] == pad;
  if (!ok) {
    kvvm_free_secret(buf, len);
    return p12_undecryptable(c);
  }
  *out = buf;
  *out_len = len - pad;
  return KVVM_OK;
}

/* RC4 is a stream cipher: no IV, no padding; a wrong key shows only when parsing fails. */
static void rc4_decrypt(const unsigned char *key, size_t key_len, const unsigned char *in,
                        size_t len, unsigned char **out, size_t *out_len)
{
  mbedtls_arc4_context rc4;
  unsigned char *buf = kvvm_xmalloc(len);
  mbedtls_arc4_init(&rc4);
  mbedtls_arc4_setup(&rc4, key, (unsigned)key_len);
  mbedtls_arc4_crypt(&rc4, len, in, buf);
  mbedtls_arc4_free(&rc4);
  *out = buf;
  *out_len = len;
}

/* pkcs-12PbeParams ::= SEQUENCE { salt OCTET STRING, iterations INTEGER } */
static enum kvvm_err pbe1_params(struct p12_ctx *c, const mbedtls_asn1_buf *params,
                                 mbedtls_asn1_buf *salt, unsigned long *iter)
{
  unsigned char *p = params->p, *end = p + params->len;
  if (params->tag != (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) ||
      mbedtls_asn1_get_tag(&p, end, &salt->len, MBEDTLS_ASN1_OCTET_STRING) != 0)
    return p12_corrupt(c, "PBE parameters");
  salt->p = p;
  p += salt->len;
  enum kvvm_err err = p12_get_iter(c, &p, end, false, iter);
  if (err == KVVM_OK && p != end)
    err = p12_corrupt(c, "PBE parameters");
  return err;
}

static enum kvvm_err pbe1_decrypt(struct p12_ctx *c, const struct pbe1 *s,
                                  const mbedtls_asn1_buf *params, const unsigned char *in,
                                  size_t len, unsigned char **out, size_t *out_len)
{
  mbedtls_asn1_buf salt = {0, 0, NULL};
  unsigned long iter = 0;
  unsigned char key[MAX_KEY], iv[8];
  enum kvvm_err err = pbe1_params(c, params, &salt, &iter);

  if (err == KVVM_OK)
    err = p12_kdf(MBEDTLS_MD_SHA1, c->bmp, c->bmp_len, salt.p, salt.len, 1, iter, key,
                  s->key_len);
  if (err == KVVM_OK && s->kind != PBE1_RC4)
    err = p12_kdf(MBEDTLS_MD_SHA1, c->bmp, c->bmp_len, salt.p, salt.len, 2, iter, iv, 8);
  if (err == KVVM_OK) {
    if (s->kind == PBE1_CBC)
      err = cbc_decrypt(c, s->cipher, key, iv, 8, in, len, out, out_len);
    else if (s->kind == PBE1_RC2)
      err = rc2_decrypt(c, s, key, iv, in, len, out, out_len);
    else
      rc4_decrypt(key, s->key_len, in, len, out, out_len);
  }
  mbedtls_platform_zeroize(key, sizeof(key));
  mbedtls_platform_zeroize(iv, sizeof(iv));
  return err;
}

/* PBKDF2-params ::= SEQUENCE { salt OCTET STRING, iterationCount INTEGER,
 *   keyLength INTEGER OPTIONAL, prf AlgorithmIdentifier DEFAULT hmacWithSHA1 } */
static enum kvvm_err pbkdf2_params(struct p12_ctx *c, const mbedtls_asn1_buf *params,
                                   mbedtls_asn1_buf *salt, unsigned long *iter, int *key_len,
                                   mbedtls_md_type_t *prf)
{
  unsigned char *p = params->p, *end = p + params->len;
  mbedtls_asn1_buf prf_oid, prf_params;
  enum kvvm_err err;

  *key_len = -1;
  *prf = MBEDTLS_MD_SHA1;
  if (params->tag != (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) ||
      mbedtls_asn1_get_tag(&p, end, &salt->len, MBEDTLS_ASN1_OCTET_STRING) != 0)
    return p12_corrupt(c, "PBKDF2 parameters");   /* also the unused otherSource salt */
  salt->p = p;
  p += salt->len;
  if ((err = p12_get_iter(c, &p, end, false, iter)) != KVVM_OK)
    return err;
  if (p < end && *p == MBEDTLS_ASN1_INTEGER && mbedtls_asn1_get_int(&p, end, key_len) != 0)
    return p12_corrupt(c, "PBKDF2 key length");
  if (p < end) {
    if (mbedtls_asn1_get_alg(&p, end, &prf_oid, &prf_params) != 0 || p != end)
      return p12_corrupt(c, "PBKDF2 parameters");
    if ((*prf = p12_md_of(&prf_oid, true)) == MBEDTLS_MD_NONE)
      return p12_unsupported(c, "algorithm", &prf_oid);
  }
  return KVVM_OK;
}

static enum kvvm_err pbes2_scheme(struct p12_ctx *c, const mbedtls_asn1_buf *enc_oid,
                                  const mbedtls_asn1_buf *enc_params,
                                  const struct pbes2_cipher **cipher)
{
  for (size_t i = 0; i < sizeof(pbes2_ciphers) / sizeof(pbes2_ciphers[0]); i++)
    if (oid_is(enc_oid, pbes2_ciphers[i].oid, pbes2_ciphers[i].oid_len))
      *cipher = &pbes2_ciphers[i];
  if (!*cipher)
    return p12_unsupported(c, "algorithm", enc_oid);
  if (enc_params->tag != MBEDTLS_ASN1_OCTET_STRING || enc_params->len > MAX_IV)
    return p12_corrupt(c, "PBES2 IV");
  return KVVM_OK;
}

/* PBES2-params ::= SEQUENCE { keyDerivationFunc AlgorithmIdentifier {PBKDF2},
 *   encryptionScheme AlgorithmIdentifier } */
struct pbes2 {
  const struct pbes2_cipher *cipher;
  mbedtls_asn1_buf salt, iv;
  unsigned long iter;
  mbedtls_md_type_t prf;
};

static enum kvvm_err pbes2_read(struct p12_ctx *c, const mbedtls_asn1_buf *params,
                                struct pbes2 *s)
{
  unsigned char *p = params->p, *end = p + params->len;
  mbedtls_asn1_buf kdf_oid, kdf_params, enc_oid;
  int key_len = -1;
  enum kvvm_err err;

  memset(s, 0, sizeof(*s));
  if (params->tag != (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) ||
      mbedtls_asn1_get_alg(&p, end, &kdf_oid, &kdf_params) != 0 ||
      mbedtls_asn1_get_alg(&p, end, &enc_oid, &s->iv) != 0 || p != end)
    return p12_corrupt(c, "PBES2 parameters");
  if (!oid_is(&kdf_oid, MBEDTLS_OID_PKCS5_PBKDF2, MBEDTLS_OID_SIZE(MBEDTLS_OID_PKCS5_PBKDF2)))
    return p12_unsupported(c, "algorithm", &kdf_oid);
  if ((err = pbes2_scheme(c, &enc_oid, &s->iv, &s->cipher)) != KVVM_OK ||
      (err = pbkdf2_params(c, &kdf_params, &s->salt, &s->iter, &key_len, &s->prf)) != KVVM_OK)
    return err;
  if (key_len >= 0 && (size_t)key_len != s->cipher->key_len)
    return p12_corrupt(c, "PBKDF2 key length");
  return KVVM_OK;
}

static enum kvvm_err pbes2_decrypt(struct p12_ctx *c, const mbedtls_asn1_buf *params,
                                   const unsigned char *in, size_t len, unsigned char **out,
                                   size_t *out_len, const char **scheme)
{
  struct pbes2 s;
  unsigned char key[MAX_KEY];
  enum kvvm_err err = pbes2_read(c, params, &s);

  if (err != KVVM_OK)
    return err;
  *scheme = s.cipher->name;
  if (!(s.prf == MBEDTLS_MD_SHA256 &&
        p12_job_take(c, false, 0, c->pw, c->pw_len, s.salt.p, s.salt.len, s.iter, key,
                     s.cipher->key_len)))
    err = p12_pbkdf2(s.prf, c->pw, c->pw_len, s.salt.p, s.salt.len, s.iter, key,
                     s.cipher->key_len);
  if (err == KVVM_OK)
    err = cbc_decrypt(c, s.cipher->cipher, key, s.iv.p, s.iv.len, in, len, out, out_len);
  mbedtls_platform_zeroize(key, sizeof(key));
  return err;
}

bool p12_plan_decrypt(struct p12_ctx *scratch, struct p12_ctx *c, const mbedtls_asn1_buf *oid,
                      const mbedtls_asn1_buf *params)
{
  struct pbes2 s;
  return oid_is(oid, MBEDTLS_OID_PKCS5_PBES2, MBEDTLS_OID_SIZE(MBEDTLS_OID_PKCS5_PBES2)) &&
         pbes2_read(scratch, params, &s) == KVVM_OK && s.prf == MBEDTLS_MD_SHA256 &&
         p12_job_add(c, false, 0, c->pw, c->pw_len, s.salt.p, s.salt.len, s.iter,
                     s.cipher->key_len);
}

enum kvvm_err p12_decrypt(struct p12_ctx *c, const mbedtls_asn1_buf *oid,
                          const mbedtls_asn1_buf *params, const unsigned char *in, size_t len,
                          unsigned char **out, size_t *out_len, const char **scheme)
{
  if (oid_is(oid, MBEDTLS_OID_PKCS5_PBES2, MBEDTLS_OID_SIZE(MBEDTLS_OID_PKCS5_PBES2)))
    return pbes2_decrypt(c, params, in, len, out, out_len, scheme);
  for (size_t i = 0; i < sizeof(pbe1_schemes) / sizeof(pbe1_schemes[0]); i++) {
    const struct pbe1 *s = &pbe1_schemes[i];
    if (oid_is(oid, s->oid, s->oid_len)) {
      *scheme = s->name;
      return pbe1_decrypt(c, s, params, in, len, out, out_len);
    }
  }
  return p12_unsupported(c, "algorithm", oid);
}
