/* CMS EnvelopedData (RFC 5652 section 6) for protected settings: find the key transport
 * recipient that names our certificate, unwrap the content key with the RSA private key,
 * decrypt the content. mbedTLS 2.28 has no CMS, so the walk is ours; its ASN.1 reader is
 * DER-only, which is what the fabric and `openssl cms -outform DER` produce. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/asn1.h>
#include <mbedtls/cipher.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/rsa.h>

#include "certmat/certmat_int.h"
#include "kvvm/cms.h"
#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"

#define SEQ (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)
#define SET (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SET)
#define CTX(n) (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | (n))
#define OIDW(o) (o), MBEDTLS_OID_SIZE(o)

#define OID_DATA MBEDTLS_OID_PKCS "\x07\x01"       /* 1.2.840.113549.1.7.1 */
#define OID_ENVELOPED MBEDTLS_OID_PKCS "\x07\x03"  /* 1.2.840.113549.1.7.3 */
#define OID_RSAES_OAEP MBEDTLS_OID_PKCS1 "\x07"   /* 1.2.840.113549.1.1.7 */
#define CEK_MAX 32                                /* AES-256 */
#define PEM_FILE_MAX (64 * 1024)

struct envelope {
  unsigned char *ri, *ri_end;  /* the recipientInfos SET's contents */
  mbedtls_asn1_buf alg, params, content;
};

struct recipient {             /* the KeyTransRecipientInfo that names our certificate */
  mbedtls_asn1_buf alg, params, enc_key;
};

static enum kvvm_err corrupt(char *why, size_t whylen, const char *where)
{
  return certmat_fail(why, whylen, "the protected settings are not readable CMS enveloped "
                      "data (corrupt or truncated at the %s)", where);
}

static enum kvvm_err unsupported(char *why, size_t whylen, const char *what,
                                 const mbedtls_asn1_buf *oid)
{
  char dotted[64] = "?";
  mbedtls_oid_get_numeric_string(dotted, sizeof dotted, oid);
  return certmat_fail(why, whylen, "the protected settings use an unsupported %s (OID %s)",
                      what, dotted);
}

static int get_oid(unsigned char **p, const unsigned char *end, mbedtls_asn1_buf *oid)
{
  int ret = mbedtls_asn1_get_tag(p, end, &oid->len, MBEDTLS_ASN1_OID);
  oid->tag = MBEDTLS_ASN1_OID;
  oid->p = *p;
  if (ret == 0)
    *p += oid->len;
  return ret;
}

/* EncryptedContentInfo { contentType, contentEncryptionAlgorithm, [0] IMPLICIT content } */
static enum kvvm_err parse_content_info(unsigned char *p, const unsigned char *end,
                                        struct envelope *e, char *why, size_t whylen)
{
  mbedtls_asn1_buf type;
  if (get_oid(&p, end, &type) || mbedtls_asn1_get_alg(&p, end, &e->alg, &e->params))
    return corrupt(why, whylen, "encrypted content info");
  if (MBEDTLS_OID_CMP(OID_DATA, &type))
    return unsupported(why, whylen, "content type", &type);
  if (p < end && *p == CTX(0))
    return certmat_fail(why, whylen, "the protected settings' content is in a constructed "
                        "(BER) encoding, which kvvm does not read");
  if (mbedtls_asn1_get_tag(&p, end, &e->content.len, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 0))
    return corrupt(why, whylen, "encrypted content");
  e->content.p = p;
  return KVVM_OK;
}

/* ContentInfo { envelopedData, [0] EnvelopedData { version, [0] originatorInfo OPTIONAL,
 * recipientInfos SET, encryptedContentInfo, [1] unprotectedAttrs OPTIONAL } } */
static enum kvvm_err parse_envelope(unsigned char *p, const unsigned char *end,
                                    struct envelope *e, char *why, size_t whylen)
{
  size_t len;
  int version;
  mbedtls_asn1_buf type;
  if (mbedtls_asn1_get_tag(&p, end, &len, SEQ) || p + len != end || get_oid(&p, end, &type))
    return corrupt(why, whylen, "outer content info");
  if (MBEDTLS_OID_CMP(OID_ENVELOPED, &type))
    return unsupported(why, whylen, "CMS content type (expected enveloped data)", &type);
  if (mbedtls_asn1_get_tag(&p, end, &len, CTX(0)) ||
      mbedtls_asn1_get_tag(&p, end, &len, SEQ))
    return corrupt(why, whylen, "enveloped data");
  const unsigned char *ed_end = p + len;
  if (mbedtls_asn1_get_int(&p, ed_end, &version))
    return corrupt(why, whylen, "version");
  if (p < ed_end && *p == CTX(0)) { /* originatorInfo: certificates we have no use for */
    if (mbedtls_asn1_get_tag(&p, ed_end, &len, CTX(0)))
      return corrupt(why, whylen, "originator info");
    p += len;
  }
  if (mbedtls_asn1_get_tag(&p, ed_end, &len, SET))
    return corrupt(why, whylen, "recipient infos");
  e->ri = p;
  e->ri_end = p + len;
  p += len;
  if (mbedtls_asn1_get_tag(&p, ed_end, &len, SEQ))
    return corrupt(why, whylen, "encrypted content info");
  return parse_content_info(p, p + len, e, why, whylen);
}

/* version, then rid: issuerAndSerialNumber SEQUENCE { issuer Name, serialNumber } or
 * [0] IMPLICIT SubjectKeyIdentifier. 1 when it names crt, 0 when not, -1 when corrupt. */
static int rid_matches(unsigned char **p, const unsigned char *end, const mbedtls_x509_crt *crt)
{
  size_t len;
  int version;
  mbedtls_asn1_buf ski;
  if (mbedtls_asn1_get_int(p, end, &version))
    return -1;
  if (*p < end && **p == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 0)) {
    if (mbedtls_asn1_get_tag(p, end, &len, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 0))
      return -1;
    int m = certmat_crt_ski(crt, &ski) && ski.len == len && memcmp(ski.p, *p, len) == 0;
    *p += len;
    return m;
  }
  if (mbedtls_asn1_get_tag(p, end, &len, SEQ))
    return -1;
  const unsigned char *ias_end = *p + len, *name = *p;
  if (mbedtls_asn1_get_tag(p, ias_end, &len, SEQ))
    return -1;
  *p += len;
  size_t name_len = (size_t)(*p - name);
  if (mbedtls_asn1_get_tag(p, ias_end, &len, MBEDTLS_ASN1_INTEGER))
    return -1;
  int m = name_len == crt->issuer_raw.len && memcmp(name, crt->issuer_raw.p, name_len) == 0 &&
          len == crt->serial.len && memcmp(*p, crt->serial.p, len) == 0;
  *p += len;
  return m;
}

/* Other recipient kinds (key agreement, KEK, password) are tagged [1]..[4]: skipped. */
static enum kvvm_err find_recipient(const struct envelope *e, const mbedtls_x509_crt *crt,
                                    const char *crt_path, struct recipient *r, char *why,
                                    size_t whylen)
{
  unsigned char *p = e->ri;
  unsigned n = 0;
  for (size_t len; p < e->ri_end; p += len, n++) {
    unsigned char tag = *p++;
    if (mbedtls_asn1_get_len(&p, e->ri_end, &len))
      return corrupt(why, whylen, "recipient info");
    if (tag != SEQ)
      continue;
    unsigned char *q = p;
    const unsigned char *end = p + len;
    int m = rid_matches(&q, end, crt);
    if (m < 0)
      return corrupt(why, whylen, "recipient identifier");
    if (!m)
      continue;
    if (mbedtls_asn1_get_alg(&q, end, &r->alg, &r->params) ||
        mbedtls_asn1_get_tag(&q, end, &r->enc_key.len, MBEDTLS_ASN1_OCTET_STRING))
      return corrupt(why, whylen, "recipient's encrypted key");
    r->enc_key.p = q;
    return KVVM_OK;
  }
  return certmat_fail(why, whylen, "the protected settings are encrypted for another "
                      "certificate: none of their %u recipient%s is %s", n, n == 1 ? "" : "s",
                      crt_path);
}

/* One hash of an OAEP parameter: [n] EXPLICIT AlgorithmIdentifier, or for MGF1 the
 * AlgorithmIdentifier inside its parameters. */
static int oaep_hash(unsigned char **p, const unsigned char *end, int n, mbedtls_md_type_t *md)
{
  size_t len;
  mbedtls_asn1_buf oid, par;
  if (*p >= end || **p != CTX(n))
    return 0; /* absent: the SHA-1 default stands */
  if (mbedtls_asn1_get_tag(p, end, &len, CTX(n)) || mbedtls_asn1_get_alg(p, *p + len, &oid, &par))
    return -1;
  if (n == 1) {
    unsigned char *q = par.p;
    if (MBEDTLS_OID_CMP(MBEDTLS_OID_MGF1, &oid) || par.tag != SEQ ||
        get_oid(&q, par.p + par.len, &oid))
      return -1;
  }
  return mbedtls_oid_get_md_alg(&oid, md) ? -1 : 0;
}

/* RSAES-OAEP-params (RFC 8017 A.2.1). mbedTLS uses one hash for OAEP and MGF1 and no
 * label, which is every encoder's choice in practice. */
static enum kvvm_err oaep_md(const mbedtls_asn1_buf *params, mbedtls_md_type_t *md, char *why,
                             size_t whylen)
{
  mbedtls_md_type_t hash = MBEDTLS_MD_SHA1, mgf = MBEDTLS_MD_SHA1;
  unsigned char *p = params->p;
  const unsigned char *end = p + params->len;
  if (params->tag == SEQ &&
      (oaep_hash(&p, end, 0, &hash) || oaep_hash(&p, end, 1, &mgf) || p != end))
    return certmat_fail(why, whylen, "the protected settings use RSA-OAEP parameters kvvm "
                        "does not support (only SHA-1/256/384/512 with MGF1 of the same hash, "
                        "no label)");
  if (hash != mgf)
    return certmat_fail(why, whylen, "the protected settings use RSA-OAEP with different "
                        "hashes for OAEP and MGF1, which kvvm does not support");
  *md = hash;
  return KVVM_OK;
}

static enum kvvm_err unwrap_key(mbedtls_pk_context *key, const struct recipient *r,
                                struct certmat_rng *rng, unsigned char *cek, size_t *cek_len,
                                char *why, size_t whylen)
{
  mbedtls_md_type_t md = MBEDTLS_MD_NONE;
  int padding = MBEDTLS_RSA_PKCS_V15;
  if (mbedtls_pk_get_type(key) != MBEDTLS_PK_RSA)
    return certmat_fail(why, whylen, "the transport key is not an RSA key; protected settings "
                        "need RSA key transport");
  if (MBEDTLS_OID_CMP(OID_RSAES_OAEP, &r->alg) == 0) {
    padding = MBEDTLS_RSA_PKCS_V21;
    if (oaep_md(&r->params, &md, why, whylen) != KVVM_OK)
      return KVVM_E_CERT;
  } else if (MBEDTLS_OID_CMP(MBEDTLS_OID_PKCS1_RSA, &r->alg)) {
    return unsupported(why, whylen, "key transport algorithm", &r->alg);
  }
  mbedtls_rsa_context *rsa = mbedtls_pk_rsa(*key);
  /* mbedTLS reads a whole modulus' worth of input: check before it does. */
  if (r->enc_key.len != mbedtls_rsa_get_len(rsa))
    return certmat_fail(why, whylen, "the encrypted content key has %zu bytes where the RSA "
                        "key needs %zu (corrupt data)", r->enc_key.len, mbedtls_rsa_get_len(rsa));
  mbedtls_rsa_set_padding(rsa, padding, md);
  int ret = mbedtls_rsa_pkcs1_decrypt(rsa, mbedtls_ctr_drbg_random, &rng->drbg,
                                      MBEDTLS_RSA_PRIVATE, cek_len, r->enc_key.p, cek, CEK_MAX);
  if (ret != 0)
    return certmat_fail(why, whylen, "the content key does not decrypt with the private key "
                        "(wrong key or corrupt data; mbedTLS -0x%04x)", (unsigned)-ret);
  return KVVM_OK;
}

static const struct {
  const char *oid;
  size_t len;
  mbedtls_cipher_type_t type;
} ciphers[] = {
    {OIDW(MBEDTLS_OID_AES "\x02"), MBEDTLS_CIPHER_AES_128_CBC}, /* 2.16.840.1.101.3.4.1.2 */
    {OIDW(MBEDTLS_OID_AES "\x16"), MBEDTLS_CIPHER_AES_192_CBC}, /* ...1.22 */
    {OIDW(MBEDTLS_OID_AES "\x2a"), MBEDTLS_CIPHER_AES_256_CBC}, /* ...1.42 */
    {OIDW(MBEDTLS_OID_DES_EDE3_CBC), MBEDTLS_CIPHER_DES_EDE3_CBC},
};

static const mbedtls_cipher_info_t *cipher_of(const mbedtls_asn1_buf *oid)
{
  for (size_t i = 0; i < sizeof ciphers / sizeof ciphers[0]; i++)
    if (oid->len == ciphers[i].len && memcmp(oid->p, ciphers[i].oid, oid->len) == 0)
      return mbedtls_cipher_info_from_type(ciphers[i].type);
  return NULL;
}

static enum kvvm_err check_content(const struct envelope *e, const mbedtls_cipher_info_t *info,
                                   size_t cek_len, char *why, size_t whylen)
{
  if (!info)
    return unsupported(why, whylen, "content encryption algorithm", &e->alg);
  if (cek_len * 8 != info->key_bitlen)
    return certmat_fail(why, whylen, "the content key has %zu bytes where %s needs %u (wrong "
                        "key or corrupt data)", cek_len, info->name, info->key_bitlen / 8);
  if (e->params.tag != MBEDTLS_ASN1_OCTET_STRING || e->params.len != info->iv_size)
    return corrupt(why, whylen, "content encryption IV");
  if (e->content.len == 0 || e->content.len % info->block_size)
    return corrupt(why, whylen, "encrypted content (not whole cipher blocks)");
  return KVVM_OK;
}

/* CBC with PKCS#7 padding, which mbedTLS checks in full. */
static enum kvvm_err decrypt_content(const struct envelope *e, const unsigned char *cek,
                                     size_t cek_len, unsigned char **plain, size_t *plain_len,
                                     char *why, size_t whylen)
{
  const mbedtls_cipher_info_t *info = cipher_of(&e->alg);
  enum kvvm_err rc = check_content(e, info, cek_len, why, whylen);
  if (rc != KVVM_OK)
    return rc;
  size_t size = e->content.len + info->block_size + 1, olen = 0;
  unsigned char *out = kvvm_xmalloc(size);
  mbedtls_cipher_context_t c;
  mbedtls_cipher_init(&c);
  int ret = mbedtls_cipher_setup(&c, info);
  if (ret == 0)
    ret = mbedtls_cipher_setkey(&c, cek, (int)info->key_bitlen, MBEDTLS_DECRYPT);
  if (ret == 0)
    ret = mbedtls_cipher_set_padding_mode(&c, MBEDTLS_PADDING_PKCS7);
  if (ret == 0)
    ret = mbedtls_cipher_crypt(&c, e->params.p, e->params.len, e->content.p, e->content.len,
                               out, &olen);
  mbedtls_cipher_free(&c);
  if (ret != 0) {
    kvvm_free_secret(out, size);
    return certmat_fail(why, whylen, "the protected settings do not decrypt (%s): wrong key "
                        "or corrupt data", ret == MBEDTLS_ERR_CIPHER_INVALID_PADDING ?
                        "bad padding" : "cipher error");
  }
  out[olen] = '\0';
  *plain = out;
  *plain_len = olen;
  return KVVM_OK;
}

static enum kvvm_err read_pem(const char *path, const char *what, char **text, size_t *len,
                              char *why, size_t whylen)
{
  enum kvvm_err rc = kvvm_file_read(path, PEM_FILE_MAX, text, len);
  if (rc != KVVM_OK) {
    snprintf(why, whylen, "cannot read the %s %s", what, path);
    KVVM_ERR("%s", why);
  }
  return rc;
}

/* The agent's transport certificate and key; a key that is not the certificate's would
 * only fail later with a vaguer message. */
static enum kvvm_err load_pair(const char *crt_path, const char *key_path, mbedtls_x509_crt *crt,
                               mbedtls_pk_context *key, char *why, size_t whylen)
{
  char *text = NULL, err[128];
  size_t len = 0;
  enum kvvm_err rc = read_pem(crt_path, "certificate", &text, &len, why, whylen);
  if (rc != KVVM_OK)
    return rc;
  int ret = mbedtls_x509_crt_parse(crt, (unsigned char *)text, len + 1);
  free(text);
  if (ret != 0) {
    mbedtls_strerror(ret, err, sizeof err);
    return certmat_fail(why, whylen, "the certificate %s is not readable: %s", crt_path, err);
  }
  if ((rc = read_pem(key_path, "private key", &text, &len, why, whylen)) != KVVM_OK)
    return rc;
  ret = mbedtls_pk_parse_key(key, (unsigned char *)text, len + 1, NULL, 0);
  kvvm_free_secret(text, len);
  if (ret != 0) {
    mbedtls_strerror(ret, err, sizeof err);
    return certmat_fail(why, whylen, "the private key %s is not readable: %s", key_path, err);
  }
  if (mbedtls_pk_check_pair(&crt->pk, key) != 0)
    return certmat_fail(why, whylen, "the private key %s does not match the certificate %s",
                        key_path, crt_path);
  return KVVM_OK;
}

enum kvvm_err kvvm_cms_decrypt(const unsigned char *der, size_t len, const char *crt_pem_path,
                               const char *key_pem_path, unsigned char **plain,
                               size_t *plain_len, char *why, size_t whylen)
{
  /* A private copy: mbedTLS's ASN.1 reader walks non-const pointers. */
  unsigned char *copy = kvvm_xmalloc(len), cek[CEK_MAX];
  size_t cek_len = 0;
  struct envelope e;
  struct recipient r;
  struct certmat_rng rng;
  mbedtls_x509_crt crt;
  mbedtls_pk_context key;
  if (len)
    memcpy(copy, der, len);
  mbedtls_x509_crt_init(&crt);
  mbedtls_pk_init(&key);
  *plain = NULL;
  *plain_len = 0;
  enum kvvm_err rc = certmat_rng_init(&rng);
  if (rc != KVVM_OK || (rc = parse_envelope(copy, copy + len, &e, why, whylen)) != KVVM_OK ||
      (rc = load_pair(crt_pem_path, key_pem_path, &crt, &key, why, whylen)) != KVVM_OK ||
      (rc = find_recipient(&e, &crt, crt_pem_path, &r, why, whylen)) != KVVM_OK ||
      (rc = unwrap_key(&key, &r, &rng, cek, &cek_len, why, whylen)) != KVVM_OK)
    goto out;
  rc = decrypt_content(&e, cek, cek_len, plain, plain_len, why, whylen);
out:
  mbedtls_platform_zeroize(cek, sizeof cek);
  certmat_rng_free(&rng);
  mbedtls_pk_free(&key);
  mbedtls_x509_crt_free(&crt);
  free(copy);
  return rc;
}

enum kvvm_err kvvm_cms_decrypt_base64(const char *b64, size_t len, const char *crt_pem_path,
                                      const char *key_pem_path, unsigned char **plain,
                                      size_t *plain_len, char *why, size_t whylen)
{
  unsigned char *der = NULL;
  size_t dlen = 0;
  *plain = NULL;
  *plain_len = 0;
  enum kvvm_err rc = certmat_b64_decode(b64, len, "protectedSettings", &der, &dlen, why,
                                        whylen);
  if (rc == KVVM_OK)
    rc = kvvm_cms_decrypt(der, dlen, crt_pem_path, key_pem_path, plain, plain_len, why,
                          whylen);
  kvvm_free_secret(der, dlen);
  return rc;
}
