/* The writers: the Linux-compatible PEM file (leaf, chain, unrelated certificates, then the
 * key as PKCS#8) and the PKCS#12 file for keyExportable. mbedTLS 2.28 writes neither PKCS#8
 * nor PKCS#12, so both are put together here with mbedtls_asn1_write_*, which writes each
 * structure backwards from the end of a buffer (innermost and last parts first). */
#include <stdio.h>
#include <string.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/cipher.h>
#include <mbedtls/ecp.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/pkcs12.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha1.h>

#include "certmat/certmat_int.h"
#include "certmat/p12_int.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"

/* PKCS#1 of an RSA key of MBEDTLS_MPI_MAX_SIZE bytes, CRT numbers included, plus wrapping. */
#define KEY_DER_MAX (6 * MBEDTLS_MPI_MAX_SIZE + 256)

#define SEQ (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)
#define SET (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SET)
#define CTX(n) (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | (n))
#define OIDW(o) (o), MBEDTLS_OID_SIZE(o)

#define OID_DATA MBEDTLS_OID_PKCS "\x07\x01"                 /* 1.2.840.113549.1.7.1 */
#define OID_SHROUDED_KEY_BAG MBEDTLS_OID_PKCS12 "\x0a\x01\x02" /* 1.2.840.113549.1.12.10.1.2 */
#define OID_CERT_BAG MBEDTLS_OID_PKCS12 "\x0a\x01\x03"
#define OID_X509_CERT MBEDTLS_OID_PKCS9 "\x16\x01"           /* 1.2.840.113549.1.9.22.1 */
#define OID_LOCAL_KEY_ID MBEDTLS_OID_PKCS9 "\x15"            /* 1.2.840.113549.1.9.21 */
#define OID_AES256_CBC MBEDTLS_OID_AES "\x2a"                /* 2.16.840.1.101.3.4.1.42 */

/* PKCS#12 parameters. Why the key is shrouded although the password is empty (which gives
 * no secrecy at all: the file's 0600 mode and ACLs are what protect it): readers differ in
 * what they accept, and a pkcs8ShroudedKeyBag under PBES2/PBKDF2-HMAC-SHA256/AES-256-CBC is
 * the one form every current reader takes. It is OpenSSL 3's own default (read without
 * -legacy), .NET reads it on Linux and on Windows 10 1709+ and Server 2019+, and Java's
 * PKCS12 KeyStore reads private keys only from shrouded bags (a plain keyBag is skipped).
 * The certificates sit unencrypted in a Data ContentInfo, as `-certpbe NONE` and Java's
 * password-less keystores write them: encrypting them would protect nothing and only adds
 * an algorithm a reader may lack. 2048 iterations and a SHA-256 MAC are OpenSSL's values.
 * The derivations are the PKCS#12 reader's (p12_kdf.c), which take any password length. */
#define P12_ITER 2048
#define SALT_LEN 16
#define AES_KEY_LEN 32
#define AES_IV_LEN 16
#define MAC_LEN 32

/* A tag and length before the len bytes just written; returns the header's size. */
static int hdr(unsigned char **p, unsigned char *start, size_t len, unsigned char tag)
{
  int ret;
  size_t n = 0;
  MBEDTLS_ASN1_CHK_ADD(n, mbedtls_asn1_write_len(p, start, len));
  MBEDTLS_ASN1_CHK_ADD(n, mbedtls_asn1_write_tag(p, start, tag));
  return (int)n;
}

/* ECPrivateKey (RFC 5915) the way OpenSSL puts it inside PKCS#8: version 1, the private
 * number at the curve's full byte length, no [0] parameters (the AlgorithmIdentifier names
 * the curve), and the [1] public key so readers need not recompute it. */
static int write_ec_private(const mbedtls_ecp_keypair *ec, unsigned char **p,
                            unsigned char *start)
{
  unsigned char buf[MBEDTLS_ECP_MAX_PT_LEN];
  size_t n, len = 0;
  int ret = mbedtls_ecp_point_write_binary(&ec->grp, &ec->Q, MBEDTLS_ECP_PF_UNCOMPRESSED, &n,
                                           buf, sizeof buf);
  if (ret != 0)
    return ret;
  MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_bitstring(p, start, buf, n * 8));
  MBEDTLS_ASN1_CHK_ADD(len, hdr(p, start, len, CTX(1)));
  n = (ec->grp.pbits + 7) / 8;
  ret = mbedtls_mpi_write_binary(&ec->d, buf, n);
  if (ret == 0)
    ret = mbedtls_asn1_write_octet_string(p, start, buf, n);
  mbedtls_platform_zeroize(buf, sizeof buf);
  if (ret < 0)
    return ret;
  len += (size_t)ret;
  MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_int(p, start, 1));
  MBEDTLS_ASN1_CHK_ADD(len, hdr(p, start, len, SEQ));
  return (int)len;
}

/* PrivateKeyInfo (RFC 5208) at the end of buf: the PKCS#1 or SEC1 key in an OCTET STRING
 * behind its algorithm (rsaEncryption with NULL, or id-ecPublicKey with the curve OID). */
static int write_pkcs8(const mbedtls_pk_context *key, unsigned char *buf, size_t size)
{
  unsigned char *p = buf + size;
  size_t len = 0, par_len = 0;
  const char *oid;
  size_t oid_len;
  int ret;
  mbedtls_pk_type_t type = mbedtls_pk_get_type(key);
  if (type == MBEDTLS_PK_RSA) {
    mbedtls_pk_context shallow = *key; /* 2.28 wants a non-const context; nothing changes */
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_pk_write_key_der(&shallow, buf, size));
    p -= len;
  } else {
    MBEDTLS_ASN1_CHK_ADD(len, write_ec_private(mbedtls_pk_ec(*key), &p, buf));
  }
  MBEDTLS_ASN1_CHK_ADD(len, hdr(&p, buf, len, MBEDTLS_ASN1_OCTET_STRING));
  if (type != MBEDTLS_PK_RSA) {
    if ((ret = mbedtls_oid_get_oid_by_ec_grp(mbedtls_pk_ec(*key)->grp.id, &oid, &oid_len)))
      return ret;
    MBEDTLS_ASN1_CHK_ADD(par_len, mbedtls_asn1_write_oid(&p, buf, oid, oid_len));
  }
  if ((ret = mbedtls_oid_get_oid_by_pk_alg(type, &oid, &oid_len)))
    return ret;
  MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_algorithm_identifier(&p, buf, oid, oid_len,
                                                                    par_len));
  MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_int(&p, buf, 0));
  MBEDTLS_ASN1_CHK_ADD(len, hdr(&p, buf, len, SEQ));
  return (int)len;
}

/* The key as PKCS#8 DER in new memory (free with kvvm_free_secret(*der, KEY_DER_MAX)). */
static enum kvvm_err key_pkcs8(const struct kvvm_bundle *b, unsigned char **der,
                               const unsigned char **start, size_t *len)
{
  *der = kvvm_xmalloc(KEY_DER_MAX);
  int ret = write_pkcs8(&b->key, *der, KEY_DER_MAX);
  if (ret < 0) {
    KVVM_ERR("cannot write the private key as PKCS#8 (mbedTLS -0x%04x)", (unsigned)-ret);
    return KVVM_E_INTERNAL;
  }
  *start = *der + KEY_DER_MAX - ret;
  *len = (size_t)ret;
  return KVVM_OK;
}

static size_t pem_size(const char *label, size_t der_len)
{
  size_t b64 = (der_len + 2) / 3 * 4;
  return 32 + 2 * strlen(label) + b64 + (b64 + 63) / 64; /* BEGIN/END lines, body, newlines */
}

/* Our own PEM writer: mbedtls_pem_write_buffer frees its base64 copy without wiping it. */
static void pem_put(char *out, size_t *pos, const char *label, const unsigned char *der,
                    size_t len)
{
  size_t b64 = (len + 2) / 3 * 4, olen = b64;
  unsigned char *enc = kvvm_xmalloc(b64 + 1);
  kvvm_certmat_b64_enc(enc, der, len);
  *pos += (size_t)sprintf(out + *pos, "-----BEGIN %s-----\n", label);
  for (size_t i = 0; i < olen; i += 64) {
    size_t n = olen - i < 64 ? olen - i : 64;
    memcpy(out + *pos, enc + i, n);
    *pos += n;
    out[(*pos)++] = '\n';
  }
  *pos += (size_t)sprintf(out + *pos, "-----END %s-----\n", label);
  kvvm_free_secret(enc, b64 + 1);
}

/* Certificate i of the PEM order (leaf, chain, unrelated) is among parts. */
static bool part_of(const struct kvvm_bundle *b, size_t i, unsigned parts)
{
  if (i == 0)
    return parts & KVVM_PEM_LEAF;
  return (parts & (i <= b->n_chain ? KVVM_PEM_CHAIN : KVVM_PEM_UNRELATED)) != 0;
}

enum kvvm_err kvvm_bundle_to_pem_parts(const struct kvvm_bundle *b, unsigned parts, char **out,
                                       size_t *len)
{
  unsigned char *der = NULL;
  const unsigned char *key = NULL;
  size_t klen = 0, n = 1 + b->n_chain + b->n_unrelated, size = 1, pos = 0;
  enum kvvm_err rc = KVVM_OK;
  *out = NULL;
  *len = 0;
  if ((parts & KVVM_PEM_KEY) && (rc = key_pkcs8(b, &der, &key, &klen)) != KVVM_OK)
    goto out;
  for (size_t i = 0; i < n; i++)
    size += part_of(b, i, parts) ? pem_size("CERTIFICATE", b->order[i]->raw.len) : 0;
  size += key ? pem_size("PRIVATE KEY", klen) : 0;
  /* Sized once, so no realloc leaves a copy of the key behind. */
  *out = kvvm_xmalloc(size);
  (*out)[0] = '\0';
  for (size_t i = 0; i < n; i++)
    if (part_of(b, i, parts))
      pem_put(*out, &pos, "CERTIFICATE", b->order[i]->raw.p, b->order[i]->raw.len);
  if (key)
    pem_put(*out, &pos, "PRIVATE KEY", key, klen);
  *len = pos;
out:
  if (der)
    kvvm_free_secret(der, KEY_DER_MAX);
  return rc;
}

enum kvvm_err kvvm_bundle_to_pem(const struct kvvm_bundle *b, char **out, size_t *len)
{
  return kvvm_bundle_to_pem_parts(b, KVVM_PEM_LEAF | KVVM_PEM_CHAIN | KVVM_PEM_UNRELATED |
                                  KVVM_PEM_KEY, out, len);
}

/* SET OF { Attribute localKeyId { the leaf's SHA-1 } }: how readers pair key and leaf. */
static int write_keyid_attr(unsigned char **p, unsigned char *start,
                            const unsigned char *id, size_t id_len)
{
  int ret;
  size_t len = 0;
  MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_octet_string(p, start, id, id_len));
  MBEDTLS_ASN1_CHK_ADD(len, hdr(p, start, len, SET));
  MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_oid(p, start, OIDW(OID_LOCAL_KEY_ID)));
  MBEDTLS_ASN1_CHK_ADD(len, hdr(p, start, len, SEQ));
  MBEDTLS_ASN1_CHK_ADD(len, hdr(p, start, len, SET));
  return (int)len;
}

/* SafeBag { certBag, [0] CertBag { x509Certificate, [0] OCTET STRING der }, attrs } */
static int write_cert_bag(unsigned char **p, unsigned char *start,
                          const mbedtls_x509_crt *c, const unsigned char *keyid)
{
  int ret;
  size_t len = 0;
  if (keyid)
    MBEDTLS_ASN1_CHK_ADD(len, write_keyid_attr(p, start, keyid, 20));
  size_t v = 0;
  MBEDTLS_ASN1_CHK_ADD(v, mbedtls_asn1_write_octet_string(p, start, c->raw.p, c->raw.len));
  MBEDTLS_ASN1_CHK_ADD(v, hdr(p, start, v, CTX(0)));
  MBEDTLS_ASN1_CHK_ADD(v, mbedtls_asn1_write_oid(p, start, OIDW(OID_X509_CERT)));
  MBEDTLS_ASN1_CHK_ADD(v, hdr(p, start, v, SEQ));
  MBEDTLS_ASN1_CHK_ADD(v, hdr(p, start, v, CTX(0)));
  MBEDTLS_ASN1_CHK_ADD(v, mbedtls_asn1_write_oid(p, start, OIDW(OID_CERT_BAG)));
  len += v;
  MBEDTLS_ASN1_CHK_ADD(len, hdr(p, start, len, SEQ));
  return (int)len;
}

struct shroud {
  unsigned char salt[SALT_LEN];
  unsigned char iv[AES_IV_LEN];
  unsigned char *ct;  /* the encrypted PrivateKeyInfo */
  size_t ct_len;
};

/* AlgorithmIdentifier { PBES2, { { PBKDF2, { salt, iterations, hmacWithSHA256 } },
 * { aes256-CBC, iv } } } (RFC 8018 A.2, A.4). */
static int write_pbes2_alg(unsigned char **p, unsigned char *start, const struct shroud *s)
{
  int ret;
  size_t par = 0, enc = 0, kdf_par = 0, kdf = 0;
  MBEDTLS_ASN1_CHK_ADD(par, mbedtls_asn1_write_octet_string(p, start, s->iv, sizeof s->iv));
  MBEDTLS_ASN1_CHK_ADD(enc, mbedtls_asn1_write_algorithm_identifier(p, start,
                                                                    OIDW(OID_AES256_CBC), par));
  MBEDTLS_ASN1_CHK_ADD(kdf_par, mbedtls_asn1_write_algorithm_identifier(
                                    p, start, OIDW(MBEDTLS_OID_HMAC_SHA256), 0));
  MBEDTLS_ASN1_CHK_ADD(kdf_par, mbedtls_asn1_write_int(p, start, P12_ITER));
  MBEDTLS_ASN1_CHK_ADD(kdf_par, mbedtls_asn1_write_octet_string(p, start, s->salt,
                                                                sizeof s->salt));
  MBEDTLS_ASN1_CHK_ADD(kdf_par, hdr(p, start, kdf_par, SEQ));
  MBEDTLS_ASN1_CHK_ADD(kdf, mbedtls_asn1_write_algorithm_identifier(
                                p, start, OIDW(MBEDTLS_OID_PKCS5_PBKDF2), kdf_par));
  par = enc + kdf;
  MBEDTLS_ASN1_CHK_ADD(par, hdr(p, start, par, SEQ));
  return mbedtls_asn1_write_algorithm_identifier(p, start, OIDW(MBEDTLS_OID_PKCS5_PBES2), par);
}

/* SafeBag { pkcs8ShroudedKeyBag, [0] EncryptedPrivateKeyInfo { alg, ct }, attrs } */
static int write_key_bag(unsigned char **p, unsigned char *start, const struct shroud *s,
                         const unsigned char *keyid)
{
  int ret;
  size_t len = 0, v = 0;
  MBEDTLS_ASN1_CHK_ADD(len, write_keyid_attr(p, start, keyid, 20));
  MBEDTLS_ASN1_CHK_ADD(v, mbedtls_asn1_write_octet_string(p, start, s->ct, s->ct_len));
  MBEDTLS_ASN1_CHK_ADD(v, write_pbes2_alg(p, start, s));
  MBEDTLS_ASN1_CHK_ADD(v, hdr(p, start, v, SEQ));
  MBEDTLS_ASN1_CHK_ADD(v, hdr(p, start, v, CTX(0)));
  MBEDTLS_ASN1_CHK_ADD(v, mbedtls_asn1_write_oid(p, start, OIDW(OID_SHROUDED_KEY_BAG)));
  len += v;
  MBEDTLS_ASN1_CHK_ADD(len, hdr(p, start, len, SEQ));
  return (int)len;
}

/* ContentInfo { data, [0] OCTET STRING { the n bytes of SafeContents just written } };
 * returns the bytes added in front of them. */
static int wrap_data(unsigned char **p, unsigned char *start, size_t n)
{
  int ret;
  size_t len = n;
  MBEDTLS_ASN1_CHK_ADD(len, hdr(p, start, len, MBEDTLS_ASN1_OCTET_STRING));
  MBEDTLS_ASN1_CHK_ADD(len, hdr(p, start, len, CTX(0)));
  MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_oid(p, start, OIDW(OID_DATA)));
  MBEDTLS_ASN1_CHK_ADD(len, hdr(p, start, len, SEQ));
  return (int)(len - n);
}

/* AuthenticatedSafe { Data { certificate bags: leaf, then chain }, Data { key bag } } */
static int write_authsafe(const struct kvvm_bundle *b, const struct shroud *s,
                          unsigned char *buf, size_t size)
{
  unsigned char *p = buf + size, keyid[20];
  size_t len = 0, ci = 0;
  int ret;
  mbedtls_sha1_ret(b->order[0]->raw.p, b->order[0]->raw.len, keyid);
  MBEDTLS_ASN1_CHK_ADD(ci, write_key_bag(&p, buf, s, keyid));
  MBEDTLS_ASN1_CHK_ADD(ci, hdr(&p, buf, ci, SEQ));
  MBEDTLS_ASN1_CHK_ADD(ci, wrap_data(&p, buf, ci));
  len += ci;
  ci = 0;
  for (size_t i = 1 + b->n_chain; i-- > 0;)
    MBEDTLS_ASN1_CHK_ADD(ci, write_cert_bag(&p, buf, b->order[i], i == 0 ? keyid : NULL));
  MBEDTLS_ASN1_CHK_ADD(ci, hdr(&p, buf, ci, SEQ));
  MBEDTLS_ASN1_CHK_ADD(ci, wrap_data(&p, buf, ci));
  len += ci;
  MBEDTLS_ASN1_CHK_ADD(len, hdr(&p, buf, len, SEQ));
  return (int)len;
}

/* PFX { 3, ContentInfo { data, [0] OCTET STRING authsafe }, MacData { DigestInfo { sha256,
 * mac }, salt, iterations } } */
static int write_pfx(const unsigned char *as, size_t as_len, const unsigned char *mac,
                     const unsigned char *mac_salt, unsigned char *buf, size_t size)
{
  unsigned char *p = buf + size;
  size_t len = 0, di = 0, a = 0;
  int ret;
  MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_int(&p, buf, P12_ITER));
  MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_octet_string(&p, buf, mac_salt, SALT_LEN));
  MBEDTLS_ASN1_CHK_ADD(di, mbedtls_asn1_write_octet_string(&p, buf, mac, MAC_LEN));
  MBEDTLS_ASN1_CHK_ADD(di, mbedtls_asn1_write_algorithm_identifier(
                               &p, buf, OIDW(MBEDTLS_OID_DIGEST_ALG_SHA256), 0));
  MBEDTLS_ASN1_CHK_ADD(di, hdr(&p, buf, di, SEQ));
  len += di;
  MBEDTLS_ASN1_CHK_ADD(len, hdr(&p, buf, len, SEQ));
  MBEDTLS_ASN1_CHK_ADD(a, mbedtls_asn1_write_octet_string(&p, buf, as, as_len));
  MBEDTLS_ASN1_CHK_ADD(a, hdr(&p, buf, a, CTX(0)));
  MBEDTLS_ASN1_CHK_ADD(a, mbedtls_asn1_write_oid(&p, buf, OIDW(OID_DATA)));
  MBEDTLS_ASN1_CHK_ADD(a, hdr(&p, buf, a, SEQ));
  len += a;
  MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_int(&p, buf, 3));
  MBEDTLS_ASN1_CHK_ADD(len, hdr(&p, buf, len, SEQ));
  return (int)len;
}

/* PBKDF2-HMAC-SHA256 of the empty password (zero bytes: PBKDF2 takes the password as is,
 * RFC 8018), then AES-256-CBC with PKCS#7 padding. */
static enum kvvm_err shroud_key(const unsigned char *p8, size_t len, struct shroud *s)
{
  unsigned char key[AES_KEY_LEN];
  mbedtls_cipher_context_t c;
  mbedtls_cipher_init(&c);
  s->ct = kvvm_xmalloc(len + AES_IV_LEN);
  enum kvvm_err rc = p12_pbkdf2(MBEDTLS_MD_SHA256, (const unsigned char *)"", 0, s->salt,
                                sizeof s->salt, P12_ITER, key, sizeof key);
  if (rc == KVVM_OK) {
    int ret = mbedtls_cipher_setup(&c, mbedtls_cipher_info_from_type(MBEDTLS_CIPHER_AES_256_CBC));
    if (ret == 0)
      ret = mbedtls_cipher_setkey(&c, key, 8 * AES_KEY_LEN, MBEDTLS_ENCRYPT);
    if (ret == 0)
      ret = mbedtls_cipher_set_padding_mode(&c, MBEDTLS_PADDING_PKCS7);
    if (ret == 0)
      ret = mbedtls_cipher_crypt(&c, s->iv, sizeof s->iv, p8, len, s->ct, &s->ct_len);
    if (ret != 0) {
      KVVM_ERR("cannot encrypt the private key for PKCS#12 (mbedTLS -0x%04x)", (unsigned)-ret);
      rc = KVVM_E_INTERNAL;
    }
  }
  mbedtls_cipher_free(&c);
  mbedtls_platform_zeroize(key, sizeof key);
  return rc;
}

/* HMAC-SHA256 under the RFC 7292 B.2 MAC key (id 3) of the empty password, which OpenSSL
 * (and so everyone who must read OpenSSL's files) encodes as the BMPString terminator
 * 00 00. The derivation is the PKCS#12 reader's (p12_kdf.c). */
static enum kvvm_err mac_authsafe(const unsigned char *as, size_t len,
                                  const unsigned char *salt, unsigned char *mac)
{
  static const unsigned char empty_bmp[2] = {0, 0};
  unsigned char key[MAC_LEN];
  enum kvvm_err rc = p12_kdf(MBEDTLS_MD_SHA256, empty_bmp, sizeof empty_bmp, salt, SALT_LEN,
                             MBEDTLS_PKCS12_DERIVE_MAC_KEY, P12_ITER, key, sizeof key);
  if (rc == KVVM_OK &&
      mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), key, sizeof key, as, len,
                      mac) != 0) {
    KVVM_ERR("cannot compute the PKCS#12 MAC");
    rc = KVVM_E_INTERNAL;
  }
  mbedtls_platform_zeroize(key, sizeof key);
  return rc;
}

static enum kvvm_err draw_salts(struct shroud *s, unsigned char *mac_salt)
{
  struct certmat_rng rng;
  enum kvvm_err rc = certmat_rng_init(&rng);
  if (rc == KVVM_OK && (mbedtls_ctr_drbg_random(&rng.drbg, s->salt, sizeof s->salt) ||
                        mbedtls_ctr_drbg_random(&rng.drbg, s->iv, sizeof s->iv) ||
                        mbedtls_ctr_drbg_random(&rng.drbg, mac_salt, SALT_LEN))) {
    KVVM_ERR("the random generator failed");
    rc = KVVM_E_INTERNAL;
  }
  certmat_rng_free(&rng);
  return rc;
}

static enum kvvm_err write_failed(int ret, const char *what)
{
  KVVM_ERR("cannot write %s (mbedTLS -0x%04x)", what, (unsigned)-ret);
  return KVVM_E_INTERNAL;
}

/* The AuthenticatedSafe, its MAC, the PFX around both; *out is exactly the PFX, so the
 * caller wipes all that holds the key. */
static enum kvvm_err write_all(const struct kvvm_bundle *b, const struct shroud *s,
                               const unsigned char *mac_salt, unsigned char **out,
                               size_t *out_len)
{
  unsigned char mac[MAC_LEN], *as, *pfx = NULL;
  size_t as_size = 1024 + s->ct_len, pfx_size = 0;
  enum kvvm_err rc = KVVM_OK;
  for (size_t i = 0; i <= b->n_chain; i++)
    as_size += b->order[i]->raw.len + 128;
  as = kvvm_xmalloc(as_size);
  int as_len = write_authsafe(b, s, as, as_size), ret = 0;
  if (as_len < 0) {
    rc = write_failed(as_len, "the PKCS#12 contents");
    goto out;
  }
  const unsigned char *as_der = as + as_size - as_len;
  if ((rc = mac_authsafe(as_der, (size_t)as_len, mac_salt, mac)) != KVVM_OK)
    goto out;
  pfx_size = (size_t)as_len + 256;
  pfx = kvvm_xmalloc(pfx_size);
  if ((ret = write_pfx(as_der, (size_t)as_len, mac, mac_salt, pfx, pfx_size)) < 0) {
    rc = write_failed(ret, "the PKCS#12 file");
    goto out;
  }
  *out_len = (size_t)ret;
  *out = memcpy(kvvm_xmalloc(*out_len), pfx + pfx_size - *out_len, *out_len);
out:
  kvvm_free_secret(pfx, pfx_size);
  kvvm_free_secret(as, as_size);
  return rc;
}

enum kvvm_err kvvm_bundle_to_pkcs12(const struct kvvm_bundle *b, unsigned char **out,
                                    size_t *len)
{
  unsigned char *der = NULL, mac_salt[SALT_LEN];
  const unsigned char *p8;
  size_t p8_len = 0;
  struct shroud s = {.ct = NULL};
  *out = NULL;
  *len = 0;
  enum kvvm_err rc = key_pkcs8(b, &der, &p8, &p8_len);
  if (rc == KVVM_OK)
    rc = draw_salts(&s, mac_salt);
  if (rc == KVVM_OK)
    rc = shroud_key(p8, p8_len, &s);
  if (rc == KVVM_OK)
    rc = write_all(b, &s, mac_salt, out, len);
  kvvm_free_secret(s.ct, p8_len + AES_IV_LEN);
  kvvm_free_secret(der, KEY_DER_MAX);
  return rc;
}
