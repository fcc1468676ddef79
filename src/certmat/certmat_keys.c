/* Keys as they come, made fit for mbedTLS 2.28, and the words for a key kvvm cannot use.
 *
 * EC parameters written out in full (SEC 1 SpecifiedECDomain: prime, a, b, base point,
 * order) instead of a curve name, as `openssl -param_enc explicit` and some exporters write
 * them: mbedTLS's own reader for them (MBEDTLS_PK_PARSE_EC_EXTENDED) reads the base point
 * before its group has one, so every uncompressed base point, which is what producers write,
 * fails as "Invalid key tag or value". The parameters are matched here against each curve
 * mbedTLS knows and replaced by that curve's name in a copy of the DER, which then parses;
 * everything written afterwards names the curve, as nginx, openssl and Java expect. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/asn1.h>
#include <mbedtls/bignum.h>
#include <mbedtls/ecp.h>
#include <mbedtls/oid.h>
#include <mbedtls/platform.h>

#include "certmat/certmat_int.h"
#include "kvvm/mem.h"

#define SEQ (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)
#define MAX_DEPTH 8

/* A DER output growing at its end; wiped when freed, since keys pass through it. */
struct dbuf {
  unsigned char *p;
  size_t len, cap;
};

static void dbuf_put(struct dbuf *d, const unsigned char *src, size_t n)
{
  if (d->len + n > d->cap) {
    size_t cap = (d->len + n) * 2 + 64;
    unsigned char *q = kvvm_xmalloc(cap);
    if (d->len)
      memcpy(q, d->p, d->len);
    kvvm_free_secret(d->p, d->cap);
    d->p = q;
    d->cap = cap;
  }
  if (n)
    memcpy(d->p + d->len, src, n);
  d->len += n;
}

static void dbuf_header(struct dbuf *d, unsigned char tag, size_t len)
{
  unsigned char h[6] = {tag};
  size_t n = 1;
  if (len < 0x80) {
    h[n++] = (unsigned char)len;
  } else {
    unsigned char bytes = len > 0xffffff ? 4 : len > 0xffff ? 3 : len > 0xff ? 2 : 1;
    h[n++] = (unsigned char)(0x80 | bytes);
    for (int i = bytes - 1; i >= 0; i--)
      h[n++] = (unsigned char)(len >> (8 * i));
  }
  dbuf_put(d, h, n);
}

/* The curve's point as read from an ECPoint OCTET STRING: X, and Y or only its parity. */
struct domain {
  mbedtls_mpi p, a, b, gx, gy, n;
  int y_parity; /* -1 when gy holds the whole Y */
  size_t pbits;
};

/* SpecifiedECDomain ::= SEQUENCE { version INTEGER (1..3), fieldID SEQUENCE { prime-field,
 * p }, curve SEQUENCE { a, b, seed BIT STRING OPTIONAL }, base ECPoint, order INTEGER, ... }
 * c..end are the SEQUENCE's contents. 0 when it is one over a prime field. */
static int read_domain(unsigned char *c, const unsigned char *end, struct domain *d)
{
  size_t len;
  int ver;
  unsigned char *f_end, *cv_end;
  if (mbedtls_asn1_get_int(&c, end, &ver) || ver < 1 || ver > 3 ||
      mbedtls_asn1_get_tag(&c, end, &len, SEQ))
    return -1;
  f_end = c + len;
  if (mbedtls_asn1_get_tag(&c, f_end, &len, MBEDTLS_ASN1_OID) ||
      len != MBEDTLS_OID_SIZE(MBEDTLS_OID_ANSI_X9_62_PRIME_FIELD) ||
      memcmp(c, MBEDTLS_OID_ANSI_X9_62_PRIME_FIELD, len) != 0)
    return -1;
  c += len;
  if (mbedtls_asn1_get_mpi(&c, f_end, &d->p) || c != f_end ||
      mbedtls_asn1_get_tag(&c, end, &len, SEQ))
    return -1;
  cv_end = c + len;
  if (mbedtls_asn1_get_tag(&c, cv_end, &len, MBEDTLS_ASN1_OCTET_STRING) ||
      mbedtls_mpi_read_binary(&d->a, c, len))
    return -1;
  c += len;
  if (mbedtls_asn1_get_tag(&c, cv_end, &len, MBEDTLS_ASN1_OCTET_STRING) ||
      mbedtls_mpi_read_binary(&d->b, c, len))
    return -1;
  c = cv_end; /* the seed, if any, names no curve */
  d->pbits = mbedtls_mpi_bitlen(&d->p);
  size_t plen = (d->pbits + 7) / 8;
  if (mbedtls_asn1_get_tag(&c, end, &len, MBEDTLS_ASN1_OCTET_STRING) || len < 1 + plen)
    return -1;
  int ret = mbedtls_mpi_read_binary(&d->gx, c + 1, plen);
  if (c[0] == 0x04 && len == 1 + 2 * plen) {
    ret = ret ? ret : mbedtls_mpi_read_binary(&d->gy, c + 1 + plen, plen);
    d->y_parity = -1;
  } else if ((c[0] == 0x02 || c[0] == 0x03) && len == 1 + plen) {
    d->y_parity = c[0] & 1;
  } else {
    return -1;
  }
  c += len;
  return ret || mbedtls_asn1_get_mpi(&c, end, &d->n) ? -1 : 0;
}

/* mbedTLS leaves a curve's a unset when it is -3 (the NIST curves). */
static bool same_a(const struct domain *d, const mbedtls_ecp_group *ref)
{
  if (ref->A.p)
    return mbedtls_mpi_cmp_mpi(&d->a, &ref->A) == 0;
  mbedtls_mpi a3;
  mbedtls_mpi_init(&a3);
  bool same = mbedtls_mpi_add_int(&a3, &d->a, 3) == 0 && mbedtls_mpi_cmp_mpi(&a3, &d->p) == 0;
  mbedtls_mpi_free(&a3);
  return same;
}

static bool same_curve(const struct domain *d, const mbedtls_ecp_group *ref)
{
  if (!ref->G.Y.p || mbedtls_mpi_cmp_mpi(&d->p, &ref->P) || mbedtls_mpi_cmp_mpi(&d->b, &ref->B) ||
      mbedtls_mpi_cmp_mpi(&d->n, &ref->N) || mbedtls_mpi_cmp_mpi(&d->gx, &ref->G.X) ||
      !same_a(d, ref))
    return false;
  return d->y_parity < 0 ? mbedtls_mpi_cmp_mpi(&d->gy, &ref->G.Y) == 0
                         : (int)mbedtls_mpi_get_bit(&ref->G.Y, 0) == d->y_parity;
}

/* The named curve these parameters describe: MBEDTLS_ECP_DP_NONE when none mbedTLS knows
 * (*pbits then says the prime's size), -1 when c..end is no SpecifiedECDomain at all. */
static int match_domain(unsigned char *c, const unsigned char *end, size_t *pbits)
{
  struct domain d;
  mbedtls_mpi *all[] = {&d.p, &d.a, &d.b, &d.gx, &d.gy, &d.n};
  int found = -1;
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    mbedtls_mpi_init(all[i]);
  if (read_domain(c, end, &d) == 0) {
    found = MBEDTLS_ECP_DP_NONE;
    *pbits = d.pbits;
    mbedtls_ecp_group ref;
    mbedtls_ecp_group_init(&ref);
    for (const mbedtls_ecp_group_id *id = mbedtls_ecp_grp_id_list();
         *id != MBEDTLS_ECP_DP_NONE && found == MBEDTLS_ECP_DP_NONE; id++) {
      mbedtls_ecp_group_free(&ref);
      if (mbedtls_ecp_group_load(&ref, *id) == 0 && same_curve(&d, &ref))
        found = *id;
    }
    mbedtls_ecp_group_free(&ref);
  }
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    mbedtls_mpi_free(all[i]);
  return found;
}

struct rewrite {
  bool changed;
  size_t unknown_bits; /* a SpecifiedECDomain of no known curve: its prime's size */
};

static int copy_tlvs(unsigned char *p, const unsigned char *end, struct dbuf *out, int depth,
                     struct rewrite *rw);

/* A SEQUENCE that is a SpecifiedECDomain of a known curve becomes that curve's OID. */
static int put_domain_or_seq(unsigned char *c, const unsigned char *end, struct dbuf *out,
                             int depth, struct rewrite *rw)
{
  size_t pbits = 0, oid_len;
  const char *oid;
  int id = match_domain(c, end, &pbits);
  if (id > 0 && mbedtls_oid_get_oid_by_ec_grp((mbedtls_ecp_group_id)id, &oid, &oid_len) == 0) {
    dbuf_header(out, MBEDTLS_ASN1_OID, oid_len);
    dbuf_put(out, (const unsigned char *)oid, oid_len);
    rw->changed = true;
    return 0;
  }
  if (id == MBEDTLS_ECP_DP_NONE)
    rw->unknown_bits = pbits;
  struct dbuf in = {0};
  int ret = copy_tlvs(c, end, &in, depth + 1, rw);
  if (ret == 0) {
    dbuf_header(out, SEQ, in.len);
    dbuf_put(out, in.p, in.len);
  }
  kvvm_free_secret(in.p, in.cap);
  return ret;
}

/* One TLV: constructed ones are rebuilt around their rewritten contents; an OCTET STRING
 * that holds DER (PKCS#8's inner ECPrivateKey) is rebuilt the same way; the rest is copied. */
static int copy_tlv(unsigned char tag, unsigned char *c, size_t len, struct dbuf *out,
                    int depth, struct rewrite *rw)
{
  if (tag == SEQ && depth < MAX_DEPTH)
    return put_domain_or_seq(c, c + len, out, depth, rw);
  bool nested = (tag & MBEDTLS_ASN1_CONSTRUCTED) || tag == MBEDTLS_ASN1_OCTET_STRING;
  struct dbuf in = {0};
  struct rewrite sub = {false, 0};
  int ret = nested && depth < MAX_DEPTH ? copy_tlvs(c, c + len, &in, depth + 1, &sub) : -1;
  if (ret != 0 && (tag & MBEDTLS_ASN1_CONSTRUCTED) && depth < MAX_DEPTH) {
    kvvm_free_secret(in.p, in.cap);
    return ret;
  }
  if (ret == 0 && (sub.changed || sub.unknown_bits)) {
    rw->changed |= sub.changed;
    rw->unknown_bits = sub.unknown_bits ? sub.unknown_bits : rw->unknown_bits;
    dbuf_header(out, tag, in.len);
    dbuf_put(out, in.p, in.len);
  } else {
    dbuf_header(out, tag, len);
    dbuf_put(out, c, len);
  }
  kvvm_free_secret(in.p, in.cap);
  return 0;
}

static int copy_tlvs(unsigned char *p, const unsigned char *end, struct dbuf *out, int depth,
                     struct rewrite *rw)
{
  while (p < end) {
    unsigned char tag = *p++;
    size_t len;
    if ((tag & 0x1f) == 0x1f || mbedtls_asn1_get_len(&p, end, &len) != 0)
      return -1; /* multi-byte tags are in no key or certificate structure */
    if (copy_tlv(tag, p, len, out, depth, rw) != 0)
      return -1;
    p += len;
  }
  return 0;
}

/* A copy of der with each SpecifiedECDomain of a known curve replaced by the curve's OID:
 * 1 with *out set, 0 when nothing needed it, -1 when one names no curve mbedTLS knows
 * (*pbits: its prime's size). Anything unreadable is left to mbedTLS, whose words then say
 * what is wrong. */
static int named_copy(const unsigned char *der, size_t len, struct dbuf *out, size_t *pbits)
{
  struct rewrite rw = {false, 0};
  /* Almost every key and certificate names its curve: only one holding the fieldID OID that
   * every SpecifiedECDomain carries is worth a walk. */
  static const char field[] = "\x06\x07" MBEDTLS_OID_ANSI_X9_62_PRIME_FIELD; /* OID, 7 bytes */
  if (!certmat_find((const char *)der, len, field))
    return 0;
  if (copy_tlvs((unsigned char *)(uintptr_t)der, der + len, out, 0, &rw) != 0 || !rw.changed) {
    *pbits = rw.unknown_bits;
    return rw.unknown_bits ? -1 : 0;
  }
  return 1;
}

struct oid_name {
  const char *oid;
  size_t len;
  const char *name;
};
#define ON(o, n) {o, sizeof(o) - 1, n}

/* Algorithms people put in certificates that mbedTLS 2.28 does not handle. */
static const struct oid_name algorithms[] = {
    ON("\x2b\x65\x70", "Ed25519"),
    ON("\x2b\x65\x71", "Ed448"),
    ON("\x2b\x65\x6e", "X25519"),
    ON("\x2b\x65\x6f", "X448"),
    ON("\x2a\x86\x48\xce\x38\x04\x01", "DSA"),
    ON("\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0a", "RSASSA-PSS"),
    ON("\x2a\x86\x48\x86\xf7\x0d\x01\x03\x01", "DH"),
    ON("\x2a\x86\x48\xce\x3e\x02\x01", "DH (X9.42)"),
    ON("\x2a\x85\x03\x02\x02\x13", "GOST R 34.10-2001"),
    ON("\x2a\x85\x03\x07\x01\x01\x01\x01", "GOST R 34.10-2012 (256 bits)"),
    ON("\x2a\x85\x03\x07\x01\x01\x01\x02", "GOST R 34.10-2012 (512 bits)"),
};

/* Curves mbedTLS does not know, by the names openssl gives them. */
static const struct oid_name curves[] = {
    ON("\x2a\x81\x1c\xcf\x55\x01\x82\x2d", "SM2"),
    ON("\x2b\x81\x04\x00\x08", "secp160r1"),
    ON("\x2b\x81\x04\x00\x09", "secp160k1"),
    ON("\x2b\x81\x04\x00\x1e", "secp160r2"),
    ON("\x2b\x81\x04\x00\x06", "secp112r1"),
    ON("\x2b\x81\x04\x00\x1c", "secp128r1"),
    ON("\x2b\x24\x03\x03\x02\x08\x01\x01\x01", "brainpoolP160r1"),
    ON("\x2b\x24\x03\x03\x02\x08\x01\x01\x05", "brainpoolP224r1"),
    ON("\x2b\x24\x03\x03\x02\x08\x01\x01\x09", "brainpoolP320r1"),
};

static void name_oid(const struct oid_name *t, size_t n, const mbedtls_asn1_buf *oid,
                     const char *prefix, char *name, size_t size)
{
  for (size_t i = 0; i < n; i++)
    if (oid->len == t[i].len && memcmp(oid->p, t[i].oid, t[i].len) == 0) {
      snprintf(name, size, "%s%s", prefix, t[i].name);
      return;
    }
  char dotted[64];
  if (mbedtls_oid_get_numeric_string(dotted, sizeof dotted, oid) < 0)
    snprintf(dotted, sizeof dotted, "(unreadable OID)");
  snprintf(name, size, "%sOID %s", prefix, dotted);
}

/* AlgorithmIdentifier contents: "" for RSA and EC on a curve mbedTLS knows, else the name. */
static void name_algorithm(unsigned char *p, const unsigned char *end, char *name, size_t n)
{
  mbedtls_asn1_buf alg = {0}, params = {0};
  mbedtls_ecp_group_id id;
  name[0] = '\0';
  if (mbedtls_asn1_get_tag(&p, end, &alg.len, MBEDTLS_ASN1_OID))
    return;
  alg.p = p;
  p += alg.len;
  if (MBEDTLS_OID_CMP(MBEDTLS_OID_PKCS1_RSA, &alg) == 0)
    return;
  if (MBEDTLS_OID_CMP(MBEDTLS_OID_EC_ALG_UNRESTRICTED, &alg) != 0) {
    name_oid(algorithms, sizeof algorithms / sizeof algorithms[0], &alg, "", name, n);
    return;
  }
  if (p < end && *p == MBEDTLS_ASN1_OID &&
      mbedtls_asn1_get_tag(&p, end, &params.len, MBEDTLS_ASN1_OID) == 0) {
    params.p = p;
    if (mbedtls_oid_get_ec_grp(&params, &id) != 0)
      name_oid(curves, sizeof curves / sizeof curves[0], &params, "EC curve ", name, n);
  }
}

/* The AlgorithmIdentifier of a PrivateKeyInfo, or the curve OID of an ECPrivateKey's [0]
 * (a PKCS#1 RSA key has neither: always an algorithm mbedTLS knows). */
static void name_key(unsigned char *p, const unsigned char *end, char *name, size_t n)
{
  size_t len;
  int ver;
  name[0] = '\0';
  if (mbedtls_asn1_get_tag(&p, end, &len, SEQ))
    return;
  end = p + len;
  if (mbedtls_asn1_get_int(&p, end, &ver))
    return;
  if (mbedtls_asn1_get_tag(&p, end, &len, SEQ) == 0) {
    name_algorithm(p, p + len, name, n);
    return;
  }
  if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_OCTET_STRING) != 0)
    return;
  p += len;
  if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONTEXT_SPECIFIC |
                                              MBEDTLS_ASN1_CONSTRUCTED | 0) != 0)
    return;
  static const unsigned char ec_alg[] = {MBEDTLS_ASN1_OID, 7, 0x2a, 0x86, 0x48, 0xce, 0x3d, 2, 1};
  unsigned char buf[80];
  if (len + sizeof ec_alg > sizeof buf)
    return;
  memcpy(buf, ec_alg, sizeof ec_alg);
  memcpy(buf + sizeof ec_alg, p, len);
  name_algorithm(buf, buf + sizeof ec_alg + len, name, n);
}

/* Certificate ::= SEQUENCE { TBSCertificate SEQUENCE { [0] version OPTIONAL, serial,
 * signature, issuer, validity, subject, SubjectPublicKeyInfo SEQUENCE { AlgorithmIdentifier,
 * BIT STRING }, ... }, ... } */
static void name_crt_key(unsigned char *p, const unsigned char *end, char *name, size_t n)
{
  size_t len;
  name[0] = '\0';
  if (mbedtls_asn1_get_tag(&p, end, &len, SEQ) || mbedtls_asn1_get_tag(&p, end, &len, SEQ))
    return;
  end = p + len;
  if (p < end && *p == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED)) {
    if (mbedtls_asn1_get_tag(&p, end, &len, *p))
      return;
    p += len;
  }
  static const unsigned char before_spki[] = {MBEDTLS_ASN1_INTEGER, SEQ, SEQ, SEQ, SEQ};
  for (size_t i = 0; i < sizeof before_spki; i++) {
    if (mbedtls_asn1_get_tag(&p, end, &len, before_spki[i]))
      return;
    p += len;
  }
  if (mbedtls_asn1_get_tag(&p, end, &len, SEQ) || mbedtls_asn1_get_tag(&p, end, &len, SEQ))
    return;
  name_algorithm(p, p + len, name, n);
}

/* The unsupported-key words for a parse that failed on der (or its named copy). */
static int unsupported_size(size_t pbits, char *name, size_t n)
{
  snprintf(name, n, "EC with explicit parameters of an unknown curve (a %zu-bit prime field)",
           pbits);
  return MBEDTLS_ERR_PK_UNKNOWN_NAMED_CURVE;
}

int certmat_pk_parse(mbedtls_pk_context *pk, const unsigned char *der, size_t len,
                     char *unsupported, size_t n)
{
  struct dbuf copy = {0};
  size_t pbits = 0;
  int named = named_copy(der, len, &copy, &pbits), ret;
  unsupported[0] = '\0';
  if (named < 0) {
    ret = unsupported_size(pbits, unsupported, n);
  } else {
    const unsigned char *in = named ? copy.p : der;
    size_t in_len = named ? copy.len : len;
    ret = mbedtls_pk_parse_key(pk, in, in_len, NULL, 0);
    if (ret != 0)
      name_key((unsigned char *)(uintptr_t)in, in + in_len, unsupported, n);
  }
  kvvm_free_secret(copy.p, copy.cap);
  return ret;
}

/* The TBSCertificate of a certificate's DER: its first element. */
static int tbs_span(unsigned char *p, const unsigned char *end, mbedtls_x509_buf *tbs)
{
  size_t len;
  if (mbedtls_asn1_get_tag(&p, end, &len, SEQ))
    return -1;
  tbs->p = p;
  if (mbedtls_asn1_get_tag(&p, end, &len, SEQ))
    return -1;
  tbs->len = (size_t)(p + len - tbs->p);
  return 0;
}

/* A certificate whose key has explicit parameters is parsed from its named copy, but must
 * keep its own bytes: its thumbprint, what is written out and what its issuer signed. So one
 * allocation holds the original then the copy; mbedTLS parses the copy in place (nocopy)
 * and is then handed the allocation as raw, which it frees whole, while the parsed fields
 * keep pointing into the copy, except tbs, pointed back at the original for signature
 * checks. */
static int parse_crt_named(mbedtls_x509_crt *chain, const unsigned char *der, size_t len,
                           const struct dbuf *copy)
{
  unsigned char *both = mbedtls_calloc(1, len + copy->len);
  mbedtls_x509_buf tbs;
  if (!both)
    return MBEDTLS_ERR_X509_ALLOC_FAILED;
  memcpy(both, der, len);
  memcpy(both + len, copy->p, copy->len);
  int ret = tbs_span(both, both + len, &tbs);
  ret = ret ? MBEDTLS_ERR_X509_INVALID_FORMAT
            : mbedtls_x509_crt_parse_der_nocopy(chain, both + len, copy->len);
  if (ret != 0) {
    mbedtls_free(both);
    return ret;
  }
  mbedtls_x509_crt *c = chain;
  while (c->next)
    c = c->next;
  c->raw.p = both;
  c->raw.len = len;
  c->own_buffer = 1;
  c->tbs = tbs;
  return 0;
}

int certmat_crt_parse(mbedtls_x509_crt *chain, const unsigned char *der, size_t len,
                      char *unsupported, size_t n)
{
  struct dbuf copy = {0};
  size_t pbits = 0;
  int named = named_copy(der, len, &copy, &pbits), ret;
  unsupported[0] = '\0';
  if (named < 0)
    ret = unsupported_size(pbits, unsupported, n);
  else if (named)
    ret = parse_crt_named(chain, der, len, &copy);
  else
    ret = mbedtls_x509_crt_parse_der(chain, der, len);
  if (ret != 0 && named >= 0)
    name_crt_key((unsigned char *)(uintptr_t)der, der + len, unsupported, n);
  kvvm_free_secret(copy.p, copy.cap);
  return ret;
}
