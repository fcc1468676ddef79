/* The PKCS#12 reader's common ground: error messages in words, the iteration limits, digest
 * OIDs, and a small BER reader.
 *
 * BER: mbedTLS parses DER only, but NSS (pk12util, Firefox) and some Java releases write
 * PKCS#12 with indefinite lengths and OCTET STRINGs split into constructed chunks. Rather
 * than teach every parsing step two encodings, each encoding the walk is about to parse
 * passes through p12_der_view: DER input (almost every file) is used as it is; BER input
 * is rewritten as DER into a copy. The MAC is unaffected: it covers the OCTET STRING's
 * value, which is the same chunked or not. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/oid.h>

#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "certmat/p12_int.h"

/* Nesting deeper than any PKCS#12 needs (about 12) is refused: recursion stays bounded. */
#define BER_MAX_DEPTH 32
#define TAG_CONSTRUCTED_OCTET_STRING (MBEDTLS_ASN1_OCTET_STRING | MBEDTLS_ASN1_CONSTRUCTED)

enum kvvm_err p12_fail(struct p12_ctx *c, const char *fmt, ...)
{
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  if (c->why && c->whylen)
    snprintf(c->why, c->whylen, "%s", buf);
  if (!c->quiet)
    KVVM_ERR("PKCS#12: %s", buf);
  return KVVM_E_CERT;
}

enum kvvm_err p12_corrupt(struct p12_ctx *c, const char *what)
{
  return p12_fail(c, "truncated or corrupt PKCS#12 at %s%s%s", c->where,
                  c->where[0] ? ", " : "", what);
}

enum kvvm_err p12_undecryptable(struct p12_ctx *c)
{
  return p12_fail(c, "wrong password or corrupt file (cannot decrypt %s)",
                  c->where[0] ? c->where : "the file");
}

/* Names for OIDs a user may meet and we do not read, so the message says more than digits. */
static const struct {
  const char *oid;
  size_t len;
  const char *name;
} known[] = {
#define K(o, n) {o, MBEDTLS_OID_SIZE(o), n}
  K(MBEDTLS_OID_PKCS5_PBMAC1, "PBMAC1"),
  K(MBEDTLS_OID_DIGEST_ALG_MD5, "MD5"),
  K(MBEDTLS_OID_DIGEST_ALG_MD2, "MD2"),
  K(MBEDTLS_OID_DIGEST_ALG_MD4, "MD4"),
  K(MBEDTLS_OID_DIGEST_ALG_RIPEMD160, "RIPEMD-160"),
  K(MBEDTLS_OID_PKCS5_PBE_MD2_DES_CBC, "pbeWithMD2AndDES-CBC"),
  K(MBEDTLS_OID_PKCS5_PBE_MD2_RC2_CBC, "pbeWithMD2AndRC2-CBC"),
  K(MBEDTLS_OID_PKCS5_PBE_MD5_DES_CBC, "pbeWithMD5AndDES-CBC"),
  K(MBEDTLS_OID_PKCS5_PBE_MD5_RC2_CBC, "pbeWithMD5AndRC2-CBC"),
  K(MBEDTLS_OID_PKCS5_PBE_SHA1_DES_CBC, "pbeWithSHA1AndDES-CBC"),
  K(MBEDTLS_OID_PKCS5_PBE_SHA1_RC2_CBC, "pbeWithSHA1AndRC2-CBC"),
  K(MBEDTLS_OID_RSA_COMPANY "\x03\x02", "RC2-CBC"),
  K(MBEDTLS_OID_AES "\x06", "AES-128-GCM"),
  K(MBEDTLS_OID_AES "\x1a", "AES-192-GCM"),
  K(MBEDTLS_OID_AES "\x2e", "AES-256-GCM"),
  K(MBEDTLS_OID_RSA_COMPANY "\x02\x0c", "hmacWithSHA512-224"),
  K(MBEDTLS_OID_RSA_COMPANY "\x02\x0d", "hmacWithSHA512-256"),
  K("\x2a\x81\x1c\xcf\x55\x01\x68\x02", "SM4-CBC"),
  K("\x2b\x06\x01\x04\x01\xda\x47\x04\x0b", "scrypt"),
  K(MBEDTLS_OID_PKCS "\x07\x02", "signedData (public-key integrity mode)"),
  K(MBEDTLS_OID_PKCS "\x07\x03", "envelopedData (public-key privacy mode)"),
  K(MBEDTLS_OID_PKCS9 "\x16\x02", "sdsiCertificate"),
#undef K
};

enum kvvm_err p12_unsupported(struct p12_ctx *c, const char *kind, const mbedtls_asn1_buf *oid)
{
  char dotted[96];
  const char *name = NULL;
  if (mbedtls_oid_get_numeric_string(dotted, sizeof(dotted), oid) < 0)
    snprintf(dotted, sizeof(dotted), "that cannot be read");
  for (size_t i = 0; i < sizeof(known) / sizeof(known[0]) && !name; i++)
    if (known[i].len == oid->len && memcmp(known[i].oid, oid->p, oid->len) == 0)
      name = known[i].name;
  return p12_fail(c, "unsupported %s%s%s (OID %s)%s%s", kind, name ? " " : "",
                  name ? name : "", dotted, c->where[0] ? " at " : "", c->where);
}

/* The value of a non-negative INTEGER of at most 8 significant bytes. */
static bool small_uint(const unsigned char *q, size_t len, uint64_t *v)
{
  if (len == 0 || (q[0] & 0x80))
    return false;
  while (len > 1 && q[0] == 0) {
    q++;
    len--;
  }
  if (len > 8)
    return false;
  *v = 0;
  for (size_t i = 0; i < len; i++)
    *v = (*v << 8) | q[i];
  return true;
}

enum kvvm_err p12_get_iter(struct p12_ctx *c, unsigned char **p, const unsigned char *end,
                           bool optional, unsigned long *iter)
{
  uint64_t v = 1;
  size_t len;
  if (!(optional && *p == end)) {
    if (mbedtls_asn1_get_tag(p, end, &len, MBEDTLS_ASN1_INTEGER) != 0)
      return p12_corrupt(c, "iteration count");
    const unsigned char *q = *p;
    *p += len;
    if (!small_uint(q, len, &v) || v == 0)
      return len > 8 && !(q[0] & 0x80)
                 ? p12_fail(c, "iteration count of %zu bytes exceeds the limit %lu", len,
                            P12_MAX_ITER)
                 : p12_corrupt(c, "iteration count");
  }
  if (v > P12_MAX_ITER)
    return p12_fail(c, "iteration count %llu exceeds the limit %lu", (unsigned long long)v,
                    P12_MAX_ITER);
  if (c->iter_spent + v > P12_MAX_ITER_TOTAL)
    return p12_fail(c, "iteration counts in this file add up to more than the limit %lu",
                    P12_MAX_ITER_TOTAL);
  c->iter_spent += (unsigned long)v;
  *iter = (unsigned long)v;
  return KVVM_OK;
}

mbedtls_md_type_t p12_md_of(const mbedtls_asn1_buf *oid, bool hmac)
{
  mbedtls_md_type_t md = MBEDTLS_MD_NONE;
  if ((hmac ? mbedtls_oid_get_md_hmac(oid, &md) : mbedtls_oid_get_md_alg(oid, &md)) != 0)
    return MBEDTLS_MD_NONE;
  switch (md) {
  case MBEDTLS_MD_SHA1:
  case MBEDTLS_MD_SHA224:
  case MBEDTLS_MD_SHA256:
  case MBEDTLS_MD_SHA384:
  case MBEDTLS_MD_SHA512:
    return md;
  default:
    return MBEDTLS_MD_NONE;   /* MD5 and friends: too weak to vouch for anything */
  }
}

/* ---- BER to DER ---- */

struct ber_head {
  unsigned char tag;
  size_t hdr;                /* tag and length bytes */
  bool indefinite;
  size_t len;                /* content length when definite */
};

static int read_head(const unsigned char *p, const unsigned char *end, struct ber_head *h)
{
  if (end - p < 2 || p[0] == 0 || (p[0] & 0x1f) == 0x1f)
    return -1;   /* EOC out of place, or a high tag number (PKCS#12 uses none) */
  h->tag = p[0];
  h->indefinite = p[1] == 0x80;
  h->hdr = 2;
  h->len = p[1];
  if (h->indefinite)
    return (h->tag & MBEDTLS_ASN1_CONSTRUCTED) ? 0 : -1;
  if (p[1] & 0x80) {
    size_t n = p[1] & 0x7f;
    if (n > 4 || (size_t)(end - p) < 2 + n)
      return -1;
    h->len = 0;
    for (size_t i = 0; i < n; i++)
      h->len = (h->len << 8) | p[2 + i];
    h->hdr += n;
  }
  return h->len <= (size_t)(end - p) - h->hdr ? 0 : -1;
}

static size_t der_len_size(size_t len)
{
  size_t n = 1;
  for (size_t l = len; l > 0x7f; l >>= 8)
    n++;
  return len > 0x7f ? n + 1 : n;
}

/* True at the end of a constructed element's contents (moving past an EOC if indefinite). */
static bool at_end(const unsigned char **q, const unsigned char *cend, bool indefinite)
{
  if (!indefinite)
    return *q == cend;
  if (cend - *q >= 2 && (*q)[0] == 0 && (*q)[1] == 0) {
    *q += 2;
    return true;
  }
  return false;
}

/* Walk the element at *p: *dlen is its DER content length, *changed is set when its DER
 * form differs from the input. *p moves past it (and its EOC). */
static int measure(const unsigned char **p, const unsigned char *end, int depth, size_t *dlen,
                   bool *changed)
{
  struct ber_head h;
  if (depth > BER_MAX_DEPTH || read_head(*p, end, &h) != 0)
    return -1;
  const unsigned char *q = *p + h.hdr, *cend = h.indefinite ? end : q + h.len;
  if (!(h.tag & MBEDTLS_ASN1_CONSTRUCTED)) {
    *dlen = h.len;
    *p = cend;
    return 0;
  }
  bool flatten = h.tag == TAG_CONSTRUCTED_OCTET_STRING;
  *changed |= h.indefinite || flatten;
  size_t sum = 0;
  while (!at_end(&q, cend, h.indefinite)) {
    size_t c;
    if (q >= cend || (flatten && (q[0] & ~MBEDTLS_ASN1_CONSTRUCTED) != MBEDTLS_ASN1_OCTET_STRING))
      return -1;   /* no EOC before the end, or a chunk that is not an OCTET STRING */
    if (measure(&q, cend, depth + 1, &c, changed) != 0)
      return -1;
    sum += flatten ? c : 1 + der_len_size(c) + c;
  }
  *dlen = sum;
  *p = q;
  return 0;
}

static void put_head(unsigned char **o, unsigned char tag, size_t len)
{
  size_t n = der_len_size(len);
  *(*o)++ = tag;
  if (n == 1) {
    *(*o)++ = (unsigned char)len;
    return;
  }
  *(*o)++ = (unsigned char)(0x80 | (n - 1));
  for (size_t i = n - 1; i-- > 0;)
    *(*o)++ = (unsigned char)(len >> (8 * i));
}

/* Write the element at *p as DER (only its contents when it is a chunk being joined).
 * measure() has accepted the whole input, so nothing here can fail. */
static void emit(const unsigned char **p, const unsigned char *end, int depth,
                 unsigned char **o, bool contents_only)
{
  struct ber_head h = {0, 0, false, 0};
  read_head(*p, end, &h);
  if (!contents_only) {
    const unsigned char *m = *p;
    size_t dlen = 0;
    bool changed = false;
    measure(&m, end, depth, &dlen, &changed);
    put_head(o, h.tag == TAG_CONSTRUCTED_OCTET_STRING ? MBEDTLS_ASN1_OCTET_STRING : h.tag,
             dlen);
  }
  const unsigned char *q = *p + h.hdr, *cend = h.indefinite ? end : q + h.len;
  if (!(h.tag & MBEDTLS_ASN1_CONSTRUCTED)) {
    memcpy(*o, q, h.len);
    *o += h.len;
    *p = cend;
    return;
  }
  while (!at_end(&q, cend, h.indefinite))
    emit(&q, cend, depth + 1, o, h.tag == TAG_CONSTRUCTED_OCTET_STRING);
  *p = q;
}

bool p12_der_view(const unsigned char *in, size_t len, struct p12_view *v)
{
  const unsigned char *p = in;
  size_t dlen;
  bool changed = false;
  v->owned = NULL;
  if (measure(&p, in + len, 0, &dlen, &changed) != 0 || p != in + len)
    return false;
  if (!changed) {
    /* mbedtls_asn1_get_* take non-const pointers but only read through them. */
    v->p = (unsigned char *)(uintptr_t)in;
    v->len = len;
    return true;
  }
  v->len = 1 + der_len_size(dlen) + dlen;
  v->owned = kvvm_xmalloc(v->len);
  unsigned char *o = v->owned;
  p = in;
  emit(&p, in + len, 0, &o, false);
  v->p = v->owned;
  KVVM_DEBUG("PKCS#12: BER element of %zu bytes read as %zu bytes of DER", len, v->len);
  return true;
}

void p12_view_free(struct p12_view *v)
{
  kvvm_free_secret(v->owned, v->len);
  v->owned = NULL;
}
