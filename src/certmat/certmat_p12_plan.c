/* A look ahead over the AuthenticatedSafe for the bag derivations the walk will ask for,
 * so that they and the MAC's are derived together (p12_lanes.c) before the walk starts.
 *
 * Only what is readable without a key is seen: the encryptedData ContentInfos' algorithm,
 * and the pkcs8ShroudedKeyBags in plain data ContentInfos (not nested ones). Anything
 * unexpected ends the look quietly: the walk reads the file strictly and words any error,
 * and a derivation not planned is simply made when the walk reaches it. */
#include <string.h>

#include <mbedtls/asn1.h>
#include <mbedtls/oid.h>

#include "certmat/p12_int.h"

#define OID_DATA MBEDTLS_OID_PKCS "\x07\x01"
#define OID_ENCRYPTED_DATA MBEDTLS_OID_PKCS "\x07\x06"
#define OID_BAG_SHROUDED_KEY MBEDTLS_OID_PKCS12 "\x0a\x01\x02"
#define IS(oid_str, buf) (MBEDTLS_OID_CMP(oid_str, buf) == 0)
#define SEQ (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)
#define EXPLICIT0 (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 0)

struct look {
  struct p12_ctx *c;
  struct p12_ctx scratch;    /* reads the parameters quietly and bounds their iterations */
  bool key_seen;             /* the walk decrypts the first key only */
};

/* The element at *p with this tag: b is its contents, *p moves past it. */
static bool take(unsigned char **p, const unsigned char *end, int tag, mbedtls_asn1_buf *b)
{
  if (mbedtls_asn1_get_tag(p, end, &b->len, tag) != 0)
    return false;
  b->tag = tag;
  b->p = *p;
  *p += b->len;
  return true;
}

/* EncryptedPrivateKeyInfo ::= SEQUENCE { AlgorithmIdentifier, encryptedData OCTET STRING } */
static void plan_key(struct look *l, const mbedtls_asn1_buf *value)
{
  unsigned char *p = value->p, *end = p + value->len;
  mbedtls_asn1_buf epki, oid, params;
  if (l->key_seen || !take(&p, end, SEQ, &epki))
    return;
  l->key_seen = true;
  p = epki.p;
  if (mbedtls_asn1_get_alg(&p, epki.p + epki.len, &oid, &params) == 0)
    p12_plan_decrypt(&l->scratch, l->c, &oid, &params);
}

/* SafeContents ::= SEQUENCE OF SafeBag { bagId OID, bagValue [0] EXPLICIT ANY, ... } */
static void plan_safe_contents(struct look *l, const mbedtls_asn1_buf *data)
{
  unsigned char *p = data->p, *end = p + data->len;
  mbedtls_asn1_buf seq, bag, type, value;
  if (!take(&p, end, SEQ, &seq))
    return;
  for (p = seq.p; take(&p, seq.p + seq.len, SEQ, &bag);) {
    unsigned char *q = bag.p, *bend = bag.p + bag.len;
    if (!take(&q, bend, MBEDTLS_ASN1_OID, &type) || !take(&q, bend, EXPLICIT0, &value))
      return;
    if (IS(OID_BAG_SHROUDED_KEY, &type))
      plan_key(l, &value);
  }
}

/* EncryptedData ::= SEQUENCE { version INTEGER, EncryptedContentInfo SEQUENCE {
 *   contentType OID, contentEncryptionAlgorithm AlgorithmIdentifier, ... } } */
static void plan_encrypted(struct look *l, const mbedtls_asn1_buf *content)
{
  unsigned char *p = content->p, *end = p + content->len;
  mbedtls_asn1_buf ed, version, eci, type, oid, params;
  if (!take(&p, end, SEQ, &ed))
    return;
  p = ed.p;
  end = ed.p + ed.len;
  if (!take(&p, end, MBEDTLS_ASN1_INTEGER, &version) || !take(&p, end, SEQ, &eci))
    return;
  p = eci.p;
  if (take(&p, eci.p + eci.len, MBEDTLS_ASN1_OID, &type) &&
      mbedtls_asn1_get_alg(&p, eci.p + eci.len, &oid, &params) == 0)
    p12_plan_decrypt(&l->scratch, l->c, &oid, &params);
}

/* ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY } */
static bool plan_content_info(struct look *l, unsigned char **pp, const unsigned char *end)
{
  mbedtls_asn1_buf ci, type, content, data;
  if (!take(pp, end, SEQ, &ci))
    return false;
  unsigned char *p = ci.p, *cend = ci.p + ci.len;
  if (!take(&p, cend, MBEDTLS_ASN1_OID, &type) || !take(&p, cend, EXPLICIT0, &content))
    return false;
  if (IS(OID_ENCRYPTED_DATA, &type)) {
    plan_encrypted(l, &content);
  } else if (IS(OID_DATA, &type)) {
    p = content.p;
    if (take(&p, content.p + content.len, MBEDTLS_ASN1_OCTET_STRING, &data))
      plan_safe_contents(l, &data);
  }
  return true;
}

void certmat_p12_plan(struct p12_ctx *c, const unsigned char *safe, size_t len)
{
  struct look l;
  struct p12_view v;
  mbedtls_asn1_buf seq;
  memset(&l, 0, sizeof(l));
  l.c = c;
  l.scratch.quiet = true;
  l.scratch.iter_spent = c->iter_spent;   /* the MAC's: the file's total bounds the plan too */
  if (!p12_der_view(safe, len, &v))
    return;
  unsigned char *p = v.p;
  bool more = take(&p, v.p + v.len, SEQ, &seq);
  for (p = seq.p; more && p < seq.p + seq.len;)
    more = plan_content_info(&l, &p, seq.p + seq.len);
  p12_view_free(&v);
}
