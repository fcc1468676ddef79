/* Small pieces the certificate readers, writers and the CMS decryptor share: key
 * identifiers (mbedTLS 2.28 parses neither SKI nor AKI), base64, a seeded DRBG, and the
 * one way a content error is worded and logged. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/asn1.h>
#include <mbedtls/oid.h>

#include "certmat/certmat_int.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/rand.h"

#define OID_SKI MBEDTLS_OID_ID_CE "\x0e" /* 2.5.29.14 subjectKeyIdentifier */
#define OID_AKI MBEDTLS_OID_ID_CE "\x23" /* 2.5.29.35 authorityKeyIdentifier */

const char *certmat_find(const char *hay, size_t len, const char *needle)
{
  size_t n = strlen(needle);
  for (size_t i = 0; n && i + n <= len; i++) {
    /* Only starts that leave room for the whole needle. */
    const char *p = memchr(hay + i, needle[0], len - n + 1 - i);
    if (!p)
      return NULL;
    i = (size_t)(p - hay);
    if (memcmp(p, needle, n) == 0)
      return p;
  }
  return n ? NULL : hay;
}

enum kvvm_err certmat_fail(char *why, size_t whylen, const char *fmt, ...)
{
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (why && whylen)
    snprintf(why, whylen, "%s", line);
  KVVM_ERR("%s", line);
  return KVVM_E_CERT;
}

/* The extnValue contents of the extension with this OID in c's Extensions, if any.
 * v3_ext is the whole Extensions SEQUENCE as mbedTLS found it. */
static bool find_ext(const mbedtls_x509_crt *c, const char *oid, size_t oidlen,
                     unsigned char **val, const unsigned char **val_end)
{
  unsigned char *p = c->v3_ext.p;
  const unsigned char *end = p ? p + c->v3_ext.len : NULL;
  size_t len;
  if (!p || mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE))
    return false;
  while (p < end) {
    unsigned char *ext_end;
    mbedtls_asn1_buf id;
    int crit;
    if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE))
      return false;
    ext_end = p + len;
    if (mbedtls_asn1_get_tag(&p, ext_end, &id.len, MBEDTLS_ASN1_OID))
      return false;
    id.p = p;
    p += id.len;
    (void)mbedtls_asn1_get_bool(&p, ext_end, &crit); /* DEFAULT FALSE: may be absent */
    if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING))
      return false;
    if (id.len == oidlen && memcmp(id.p, oid, oidlen) == 0) {
      *val = p;
      *val_end = p + len;
      return true;
    }
    p = ext_end;
  }
  return false;
}

bool certmat_crt_ski(const mbedtls_x509_crt *c, mbedtls_asn1_buf *id)
{
  unsigned char *p;
  const unsigned char *end;
  if (!find_ext(c, OID_SKI, MBEDTLS_OID_SIZE(OID_SKI), &p, &end) ||
      mbedtls_asn1_get_tag(&p, end, &id->len, MBEDTLS_ASN1_OCTET_STRING))
    return false;
  id->p = p;
  return true;
}

/* AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING OPTIONAL,
 * authorityCertIssuer [1], authorityCertSerialNumber [2] } */
bool certmat_crt_aki(const mbedtls_x509_crt *c, mbedtls_asn1_buf *id)
{
  unsigned char *p;
  const unsigned char *end;
  size_t len;
  if (!find_ext(c, OID_AKI, MBEDTLS_OID_SIZE(OID_AKI), &p, &end) ||
      mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) ||
      mbedtls_asn1_get_tag(&p, p + len, &id->len, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 0))
    return false;
  id->p = p;
  return true;
}

enum kvvm_err certmat_b64_decode(const char *text, size_t len, const char *what,
                                 unsigned char **out, size_t *outlen, char *why, size_t whylen)
{
  /* The decoder takes no whitespace, and users paste every kind; the
   * copy is wiped because a password-less PFX in it is as good as the key. */
  unsigned char *clean = kvvm_xmalloc(len + 1), *der = NULL;
  size_t n = 0, dlen = 0;
  enum kvvm_err rc = KVVM_OK;
  for (size_t i = 0; i < len; i++)
    if (!isspace((unsigned char)text[i]))
      clean[n++] = (unsigned char)text[i];
  der = kvvm_xmalloc(n / 4 * 3 + 3);
  if (n == 0 || kvvm_certmat_b64_dec(der, n / 4 * 3 + 3, &dlen, clean, n) != 0) {
    rc = certmat_fail(why, whylen, "%s is %s", what, n ? "not valid base64" : "empty");
    kvvm_free_secret(der, n / 4 * 3 + 3);
    der = NULL;
    dlen = 0;
  }
  kvvm_free_secret(clean, len + 1);
  *out = der;
  *outlen = dlen;
  return rc;
}

/* The generator is seeded from the one source kvvm uses everywhere (kvvm_rand_bytes:
 * getrandom, or BCryptGenRandom), not mbedTLS's own poll, which on Windows goes through the
 * legacy CryptoAPI provider. */
static int os_entropy(void *ctx, unsigned char *buf, size_t n)
{
  (void)ctx;
  return kvvm_rand_bytes(buf, n) == KVVM_OK ? 0 : MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED;
}

enum kvvm_err certmat_rng_init(struct certmat_rng *rng)
{
  static const unsigned char pers[] = "kvvm certmat";
  mbedtls_ctr_drbg_init(&rng->drbg);
  int ret = mbedtls_ctr_drbg_seed(&rng->drbg, os_entropy, NULL, pers, sizeof pers - 1);
  if (ret != 0) {
    KVVM_ERR("cannot seed the random generator (mbedTLS -0x%04x)", (unsigned)-ret);
    return KVVM_E_INTERNAL;
  }
  return KVVM_OK;
}

void certmat_rng_free(struct certmat_rng *rng)
{
  mbedtls_ctr_drbg_free(&rng->drbg);
}
