/* The PKCS#12 reader (RFC 7292): PFX -> AuthenticatedSafe -> ContentInfo (data or
 * encryptedData) -> SafeContents -> SafeBag (keyBag, pkcs8ShroudedKeyBag, certBag, nested
 * safeContentsBag), with the password-integrity MAC checked before anything inside it is
 * read. mbedTLS 2.28 has no PKCS#12 container parser, so the walk is ours; its ASN.1, X.509
 * and PK parsers do the rest.
 *
 * Every field outside the MAC (the PFX header, the MacData) is read strictly, so that a
 * damaged file with a MAC always fails instead of decoding to something else. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/platform_util.h>

#include "certmat/certmat_int.h"
#include "kvvm/certmat.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/p12.h"
#include "certmat/p12_int.h"

#define OID_DATA MBEDTLS_OID_PKCS "\x07\x01"
#define OID_ENCRYPTED_DATA MBEDTLS_OID_PKCS "\x07\x06"
#define OID_BAG_KEY MBEDTLS_OID_PKCS12 "\x0a\x01\x01"
#define OID_BAG_SHROUDED_KEY MBEDTLS_OID_PKCS12 "\x0a\x01\x02"
#define OID_BAG_CERT MBEDTLS_OID_PKCS12 "\x0a\x01\x03"
#define OID_BAG_CRL MBEDTLS_OID_PKCS12 "\x0a\x01\x04"
#define OID_BAG_SECRET MBEDTLS_OID_PKCS12 "\x0a\x01\x05"
#define OID_BAG_SAFE_CONTENTS MBEDTLS_OID_PKCS12 "\x0a\x01\x06"
#define OID_FRIENDLY_NAME MBEDTLS_OID_PKCS9 "\x14"
#define OID_LOCAL_KEY_ID MBEDTLS_OID_PKCS9 "\x15"
#define OID_X509_CERT MBEDTLS_OID_PKCS9 "\x16\x01"
#define IS(oid_str, buf) (MBEDTLS_OID_CMP(oid_str, buf) == 0)

#define SEQ (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)
#define SET (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SET)
#define EXPLICIT0 (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 0)
#define IMPLICIT0 (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 0)

/* safeContentsBag may nest SafeContents; real files nest at most once. */
#define MAX_NESTING 4

struct walk {
  struct p12_ctx c;
  struct certmat_parts *parts;
  struct kvvm_p12_summary *sum;   /* NULL unless inspecting */
  unsigned ci, bag, depth;
};

/* The parts of a PFX outside the AuthenticatedSafe. */
struct pfx {
  unsigned char *content;   /* the AuthenticatedSafe's encoding: what the MAC covers */
  size_t content_len;
  bool has_mac;
  mbedtls_md_type_t mac_md;
  mbedtls_asn1_buf digest, salt;
  unsigned long mac_iter;
};

/* A SafeBag's attributes we read (the rest, e.g. Microsoft's CSP name, are skipped). */
struct bag_attrs {
  char friendly_name[64];   /* UTF-8, cut to fit */
  size_t local_key_id_len;
};

static void set_where(struct walk *w)
{
  if (w->bag)
    snprintf(w->c.where, sizeof(w->c.where), "ContentInfo %u, SafeBag %u", w->ci, w->bag);
  else
    snprintf(w->c.where, sizeof(w->c.where), "ContentInfo %u", w->ci);
}

/* A constructed element with this tag at *p: *p moves inside it, *inner_end to its end. */
static int get_nested(unsigned char **p, const unsigned char *end, int tag,
                      unsigned char **inner_end)
{
  size_t len;
  int ret = mbedtls_asn1_get_tag(p, end, &len, tag);
  if (ret == 0)
    *inner_end = *p + len;
  return ret;
}

/* A primitive element with this tag at *p into b; *p moves past it. */
static int get_prim(unsigned char **p, const unsigned char *end, int tag, mbedtls_asn1_buf *b)
{
  int ret = mbedtls_asn1_get_tag(p, end, &b->len, tag);
  if (ret == 0) {
    b->tag = tag;
    b->p = *p;
    *p += b->len;
  }
  return ret;
}

/* ---- the MAC ---- */

/* MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER DEFAULT 1 }
 * DigestInfo ::= SEQUENCE { digestAlgorithm AlgorithmIdentifier, digest OCTET STRING } */
static enum kvvm_err parse_macdata(struct walk *w, unsigned char **p, const unsigned char *end,
                                   struct pfx *f)
{
  unsigned char *mend, *dend;
  mbedtls_asn1_buf oid, params;
  if (get_nested(p, end, SEQ, &mend) != 0 || mend != end || get_nested(p, mend, SEQ, &dend) ||
      mbedtls_asn1_get_alg(p, dend, &oid, &params) != 0)
    return p12_corrupt(&w->c, "MacData");
  if ((f->mac_md = p12_md_of(&oid, false)) == MBEDTLS_MD_NONE)
    return p12_unsupported(&w->c, "algorithm", &oid);
  bool null_params = params.tag == 0 || (params.tag == MBEDTLS_ASN1_NULL && params.len == 0);
  size_t md_size = mbedtls_md_get_size(mbedtls_md_info_from_type(f->mac_md));
  if (!null_params || get_prim(p, dend, MBEDTLS_ASN1_OCTET_STRING, &f->digest) != 0 ||
      *p != dend || f->digest.len != md_size ||
      get_prim(p, mend, MBEDTLS_ASN1_OCTET_STRING, &f->salt) != 0)
    return p12_corrupt(&w->c, "MacData");
  enum kvvm_err err = p12_get_iter(&w->c, p, mend, true, &f->mac_iter);
  if (err == KVVM_OK && *p != mend)
    err = p12_corrupt(&w->c, "MacData");
  f->has_mac = err == KVVM_OK;
  return err;
}

/* PFX ::= SEQUENCE { version INTEGER {v3(3)}, authSafe ContentInfo, macData MacData OPTIONAL }
 * with authSafe a data ContentInfo (signedData, public-key integrity, is not supported). */
static enum kvvm_err parse_pfx(struct walk *w, const struct p12_view *v, struct pfx *f)
{
  unsigned char *p = v->p, *end = v->p + v->len, *pfx_end, *ci_end, *c0_end;
  mbedtls_asn1_buf type, content;
  int version;

  memset(f, 0, sizeof(*f));
  if (get_nested(&p, end, SEQ, &pfx_end) != 0 || pfx_end != end)
    return p12_corrupt(&w->c, "PFX");
  if (mbedtls_asn1_get_int(&p, end, &version) != 0 || version != 3)
    return p12_corrupt(&w->c, "PFX version");
  if (get_nested(&p, end, SEQ, &ci_end) != 0 || get_prim(&p, ci_end, MBEDTLS_ASN1_OID, &type))
    return p12_corrupt(&w->c, "authSafe");
  if (!IS(OID_DATA, &type))
    return p12_unsupported(&w->c, "content type", &type);
  if (get_nested(&p, ci_end, EXPLICIT0, &c0_end) != 0 || c0_end != ci_end ||
      get_prim(&p, ci_end, MBEDTLS_ASN1_OCTET_STRING, &content) != 0 || p != ci_end)
    return p12_corrupt(&w->c, "authSafe");
  f->content = content.p;
  f->content_len = content.len;
  return p == end ? KVVM_OK : parse_macdata(w, &p, end, f);
}

/* Constant time, as any MAC comparison should be. */
static bool same(const unsigned char *a, const unsigned char *b, size_t n)
{
  unsigned char d = 0;
  for (size_t i = 0; i < n; i++)
    d |= a[i] ^ b[i];
  return d == 0;
}

static enum kvvm_err mac_matches(const struct p12_ctx *c, const struct pfx *f,
                                 const unsigned char *bmp, size_t bmp_len, bool *match)
{
  const mbedtls_md_info_t *info = mbedtls_md_info_from_type(f->mac_md);
  size_t n = mbedtls_md_get_size(info);
  unsigned char key[MBEDTLS_MD_MAX_SIZE], mac[MBEDTLS_MD_MAX_SIZE];
  enum kvvm_err err = KVVM_OK;
  if (!(f->mac_md == MBEDTLS_MD_SHA256 &&
        p12_job_take(c, true, 3, bmp, bmp_len, f->salt.p, f->salt.len, f->mac_iter, key, n)))
    err = p12_kdf(f->mac_md, bmp, bmp_len, f->salt.p, f->salt.len, 3, f->mac_iter, key, n);
  if (err == KVVM_OK && mbedtls_md_hmac(info, key, n, f->content, f->content_len, mac) != 0) {
    KVVM_ERR("PKCS#12: HMAC failed inside mbedTLS");
    err = KVVM_E_INTERNAL;
  }
  *match = err == KVVM_OK && same(mac, f->digest.p, n);
  mbedtls_platform_zeroize(key, sizeof(key));
  return err;
}

/* The BMPString forms of the password worth trying, in the order producers use them:
 * UTF-16 with the 00 00 terminator (RFC 7292, OpenSSL, Windows, Java); for an empty
 * password also zero length (python-cryptography's NoEncryption MACs that way); for a
 * non-ASCII password also each byte widened (OpenSSL before 1.1.0, mbedTLS). */
struct pw_form {
  unsigned char *bmp;
  size_t len;
  const char *name;
};

static size_t password_forms(const struct p12_ctx *c, struct pw_form f[3])
{
  size_t n = 0;
  bool ascii = true;
  for (size_t i = 0; i < c->pw_len; i++)
    ascii = ascii && c->pw[i] < 0x80;
  if (p12_utf8_to_bmp(c->pw, c->pw_len, &f[n].bmp, &f[n].len)) {
    f[n++].name = "utf16";
    if (!ascii) {
      p12_latin1_to_bmp(c->pw, c->pw_len, &f[n].bmp, &f[n].len);
      f[n++].name = "latin1";
    }
  } else {
    p12_latin1_to_bmp(c->pw, c->pw_len, &f[n].bmp, &f[n].len);
    f[n++].name = "latin1";
  }
  if (c->pw_len == 0) {
    f[n] = (struct pw_form){NULL, 0, "zero-length"};
    n++;
  }
  return n;
}

/* Try each form; the one that verifies is the form the PKCS#12 KDF uses for the bags. */
static enum kvvm_err check_mac(struct walk *w, const struct pfx *f)
{
  struct pw_form forms[3];
  size_t n = password_forms(&w->c, forms), hit = n;
  enum kvvm_err err = KVVM_OK;
  bool match = false;

  for (size_t i = 0; i < n && err == KVVM_OK && !match; i++) {
    err = mac_matches(&w->c, f, forms[i].bmp, forms[i].len, &match);
    hit = i;
  }
  if (err == KVVM_OK && !match)
    err = p12_fail(&w->c, "wrong password or corrupt file (MAC mismatch)");
  for (size_t i = 0; i < n; i++) {
    if (err == KVVM_OK && i == hit) {
      w->c.bmp = forms[i].bmp;
      w->c.bmp_len = forms[i].len;
    } else {
      kvvm_free_secret(forms[i].bmp, forms[i].len);
    }
  }
  if (err == KVVM_OK && w->sum) {
    snprintf(w->sum->mac, sizeof(w->sum->mac), "%s",
             mbedtls_md_get_name(mbedtls_md_info_from_type(f->mac_md)));
    snprintf(w->sum->mac_password, sizeof(w->sum->mac_password), "%s", forms[hit].name);
  }
  return err;
}

/* The MAC's derivation (in the standard password form, the one producers use) and the
 * bags' that the look ahead finds, derived together: with two or more their chains share
 * the SHA instructions (p12_lanes.c); with one there is nothing to gain. */
static void plan_derivations(struct walk *w, const struct pfx *f)
{
  struct pw_form forms[3];
  size_t n = 0;
  if (f->has_mac && f->mac_md == MBEDTLS_MD_SHA256) {
    n = password_forms(&w->c, forms);
    p12_job_add(&w->c, true, 3, forms[0].bmp, forms[0].len, f->salt.p, f->salt.len,
                f->mac_iter, KVVM_SHA256_SIZE);
  }
  certmat_p12_plan(&w->c, f->content, f->content_len);
  if (w->c.n_jobs > 1)
    p12_jobs_run(&w->c);
  else
    p12_jobs_free(&w->c);
  for (size_t i = 0; i < n; i++)
    kvvm_free_secret(forms[i].bmp, forms[i].len);
}

/* Without a MAC nothing tells the forms apart: use the standard one. */
static void no_mac(struct walk *w)
{
  struct pw_form forms[3];
  size_t n = password_forms(&w->c, forms);
  w->c.bmp = forms[0].bmp;
  w->c.bmp_len = forms[0].len;
  for (size_t i = 1; i < n; i++)
    kvvm_free_secret(forms[i].bmp, forms[i].len);
  KVVM_INFO("PKCS#12 file has no MAC: its integrity is not checked");
}

/* ---- bags ---- */

static void note_scheme(struct walk *w, const char *scheme)
{
  char *s = w->sum ? w->sum->schemes : NULL;
  size_t have = s ? strlen(s) : 0;
  if (!s || strstr(s, scheme))
    return;
  snprintf(s + have, sizeof(w->sum->schemes) - have, "%s%s", have ? "," : "", scheme);
}

/* friendlyName is a BMPString; UTF-8 for logs and the summary, cut at the buffer's end. */
static void bmp_to_utf8(const unsigned char *b, size_t len, char *out, size_t cap)
{
  size_t o = 0;
  for (size_t i = 0; i + 1 < len; i += 2) {
    unsigned cp = (unsigned)(b[i] << 8 | b[i + 1]);
    unsigned char enc[3];
    size_t k = cp < 0x80 ? 1 : cp < 0x800 ? 2 : 3;
    if (k == 1)
      enc[0] = (unsigned char)cp;
    else if (k == 2) {
      enc[0] = (unsigned char)(0xc0 | cp >> 6);
      enc[1] = (unsigned char)(0x80 | (cp & 0x3f));
    } else {
      if (cp >= 0xd800 && cp <= 0xdfff)
        cp = 0xfffd;   /* a surrogate on its own: U+FFFD rather than invalid UTF-8 */
      enc[0] = (unsigned char)(0xe0 | cp >> 12);
      enc[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
      enc[2] = (unsigned char)(0x80 | (cp & 0x3f));
    }
    if (o + k >= cap)
      break;
    memcpy(out + o, enc, k);
    o += k;
  }
  out[o] = '\0';
}

/* PKCS12Attribute ::= SEQUENCE { attrId OID, attrValues SET OF ANY } */
static enum kvvm_err bag_attributes(struct walk *w, unsigned char *p, const unsigned char *end,
                                    struct bag_attrs *a)
{
  while (p < end) {
    unsigned char *aend, *send;
    mbedtls_asn1_buf oid, value;
    if (get_nested(&p, end, SEQ, &aend) != 0 || get_prim(&p, aend, MBEDTLS_ASN1_OID, &oid) ||
        get_nested(&p, aend, SET, &send) != 0 || send != aend)
      return p12_corrupt(&w->c, "bag attributes");
    if (IS(OID_FRIENDLY_NAME, &oid) && get_prim(&p, send, MBEDTLS_ASN1_BMP_STRING, &value) == 0)
      bmp_to_utf8(value.p, value.len, a->friendly_name, sizeof(a->friendly_name));
    else if (IS(OID_LOCAL_KEY_ID, &oid) &&
             get_prim(&p, send, MBEDTLS_ASN1_OCTET_STRING, &value) == 0)
      a->local_key_id_len = value.len;
    p = aend;
  }
  return KVVM_OK;
}

/* der: a PrivateKeyInfo, straight from a keyBag or just decrypted (then a parse failure
 * most likely means a wrong password in a file without a MAC). */
static enum kvvm_err take_key(struct walk *w, const unsigned char *der, size_t len,
                              bool decrypted, const struct bag_attrs *a)
{
  struct p12_view v;
  char words[128], alg[96];
  if (!p12_der_view(der, len, &v))
    return decrypted ? p12_undecryptable(&w->c) : p12_corrupt(&w->c, "private key");
  int ret = certmat_pk_parse(&w->parts->key, v.p, v.len, alg, sizeof alg);
  p12_view_free(&v);
  if (ret != 0 && *alg)
    return p12_fail(&w->c, "the private key at %s: unsupported key: %s; %s", w->c.where, alg,
                    CERTMAT_KEYS_SUPPORTED);
  if (ret != 0) {
    mbedtls_strerror(ret, words, sizeof(words));
    return p12_fail(&w->c, "the private key at %s cannot be read (%s)", w->c.where, words);
  }
  w->parts->has_key = true;
  if (w->sum) {
    snprintf(w->sum->friendly_name, sizeof(w->sum->friendly_name), "%s", a->friendly_name);
    w->sum->local_key_id_len = a->local_key_id_len;
  }
  return KVVM_OK;
}

/* EncryptedPrivateKeyInfo ::= SEQUENCE { AlgorithmIdentifier, encryptedData OCTET STRING } */
static enum kvvm_err shrouded_key(struct walk *w, unsigned char *p, const unsigned char *end,
                                  const struct bag_attrs *a)
{
  mbedtls_asn1_buf oid, params, data;
  unsigned char *plain = NULL, *seq_end;
  size_t plain_len = 0;
  const char *scheme = "";
  if (get_nested(&p, end, SEQ, &seq_end) != 0 || seq_end != end ||
      mbedtls_asn1_get_alg(&p, end, &oid, &params) != 0 ||
      get_prim(&p, end, MBEDTLS_ASN1_OCTET_STRING, &data) != 0 || p != end)
    return p12_corrupt(&w->c, "pkcs8ShroudedKeyBag");
  enum kvvm_err err = p12_decrypt(&w->c, &oid, &params, data.p, data.len, &plain, &plain_len,
                                  &scheme);
  if (err == KVVM_OK) {
    note_scheme(w, scheme);
    err = take_key(w, plain, plain_len, true, a);
  }
  kvvm_free_secret(plain, plain_len);
  return err;
}

/* CertBag ::= SEQUENCE { certId OID, certValue [0] EXPLICIT OCTET STRING } */
static enum kvvm_err cert_bag(struct walk *w, unsigned char *p, const unsigned char *end)
{
  mbedtls_asn1_buf type, der;
  unsigned char *seq_end, *c0_end;
  char words[128], alg[96];
  if (get_nested(&p, end, SEQ, &seq_end) != 0 || seq_end != end ||
      get_prim(&p, end, MBEDTLS_ASN1_OID, &type) != 0)
    return p12_corrupt(&w->c, "certBag");
  if (!IS(OID_X509_CERT, &type)) {
    KVVM_WARN("PKCS#12: skipping a certificate that is not X.509 at %s", w->c.where);
    return KVVM_OK;
  }
  if (get_nested(&p, end, EXPLICIT0, &c0_end) != 0 || c0_end != end ||
      get_prim(&p, end, MBEDTLS_ASN1_OCTET_STRING, &der) != 0 || p != end)
    return p12_corrupt(&w->c, "certBag");
  int ret = certmat_crt_parse(&w->parts->certs, der.p, der.len, alg, sizeof alg);
  if (ret != 0 && *alg)
    return p12_fail(&w->c, "the certificate at %s has an unsupported key: %s; %s", w->c.where,
                    alg, CERTMAT_KEYS_SUPPORTED);
  if (ret != 0) {
    mbedtls_strerror(ret, words, sizeof(words));
    return p12_fail(&w->c, "the certificate at %s cannot be read (%s)", w->c.where, words);
  }
  return KVVM_OK;
}

static enum kvvm_err safe_contents(struct walk *w, unsigned char *p, const unsigned char *end);

static enum kvvm_err dispatch_bag(struct walk *w, const mbedtls_asn1_buf *type, unsigned char *v,
                                  const unsigned char *vend, const struct bag_attrs *a)
{
  if (IS(OID_BAG_CERT, type))
    return cert_bag(w, v, vend);
  if (IS(OID_BAG_KEY, type) || IS(OID_BAG_SHROUDED_KEY, type)) {
    /* A second key is counted, not decrypted: the bundle builder refuses the file. */
    if (w->parts->n_keys++ > 0)
      return KVVM_OK;
    return IS(OID_BAG_KEY, type) ? take_key(w, v, (size_t)(vend - v), false, a)
                                 : shrouded_key(w, v, vend, a);
  }
  if (IS(OID_BAG_SAFE_CONTENTS, type)) {
    if (w->depth >= MAX_NESTING)
      return p12_corrupt(&w->c, "nested safeContentsBag");
    w->depth++;
    enum kvvm_err err = safe_contents(w, v, vend);
    w->depth--;
    return err;
  }
  if (IS(OID_BAG_CRL, type) || IS(OID_BAG_SECRET, type))
    KVVM_DEBUG("PKCS#12: skipping a CRL or secret bag at %s", w->c.where);
  else
    KVVM_WARN("PKCS#12: skipping a bag of an unknown type at %s", w->c.where);
  return KVVM_OK;
}

/* SafeBag ::= SEQUENCE { bagId OID, bagValue [0] EXPLICIT ANY, bagAttributes SET OPTIONAL } */
static enum kvvm_err safe_bag(struct walk *w, unsigned char **pp, const unsigned char *end)
{
  unsigned char *p = *pp, *bag_end, *v, *v_end, *attr_end;
  mbedtls_asn1_buf type;
  struct bag_attrs a = {"", 0};
  enum kvvm_err err;

  w->bag++;
  set_where(w);
  if (get_nested(&p, end, SEQ, &bag_end) != 0 || get_prim(&p, bag_end, MBEDTLS_ASN1_OID, &type) ||
      get_nested(&p, bag_end, EXPLICIT0, &v_end) != 0)
    return p12_corrupt(&w->c, "SafeBag");
  v = p;
  p = v_end;
  if (p < bag_end && (get_nested(&p, bag_end, SET, &attr_end) != 0 || attr_end != bag_end))
    return p12_corrupt(&w->c, "SafeBag attributes");
  if ((err = bag_attributes(w, p, bag_end, &a)) != KVVM_OK)
    return err;
  *pp = bag_end;
  if (a.friendly_name[0])
    KVVM_DEBUG("PKCS#12: %s has friendlyName \"%s\"", w->c.where, a.friendly_name);
  return dispatch_bag(w, &type, v, v_end, &a);
}

/* SafeContents ::= SEQUENCE OF SafeBag, in place (data, nested bag) or decrypted. */
static enum kvvm_err safe_contents(struct walk *w, unsigned char *p, const unsigned char *end)
{
  unsigned char *seq_end;
  enum kvvm_err err = KVVM_OK;
  if (get_nested(&p, end, SEQ, &seq_end) != 0 || seq_end != end)
    return p12_corrupt(&w->c, "SafeContents");
  while (err == KVVM_OK && p < end)
    err = safe_bag(w, &p, end);
  return err;
}

/* An encoding held in an OCTET STRING (data ContentInfo) or just decrypted: it may be BER. */
static enum kvvm_err safe_contents_buf(struct walk *w, const unsigned char *buf, size_t len,
                                       bool decrypted)
{
  struct p12_view v;
  if (!p12_der_view(buf, len, &v))
    return decrypted ? p12_undecryptable(&w->c) : p12_corrupt(&w->c, "SafeContents");
  enum kvvm_err err = safe_contents(w, v.p, v.p + v.len);
  p12_view_free(&v);
  return err;
}

/* encryptedContent [0] IMPLICIT OCTET STRING: primitive in DER; in BER also constructed, its
 * chunks (already DER OCTET STRINGs, see p12_der_view) joined into *joined. */
static enum kvvm_err encrypted_content(struct walk *w, unsigned char *p, const unsigned char *end,
                                       mbedtls_asn1_buf *data, unsigned char **joined)
{
  unsigned char *cend;
  mbedtls_asn1_buf chunk;
  *joined = NULL;
  if (get_prim(&p, end, IMPLICIT0, data) == 0)
    return p == end ? KVVM_OK : p12_corrupt(&w->c, "EncryptedData");
  if (get_nested(&p, end, IMPLICIT0 | MBEDTLS_ASN1_CONSTRUCTED, &cend) != 0 || cend != end)
    return p12_corrupt(&w->c, "EncryptedData");
  *joined = kvvm_xmalloc((size_t)(end - p));
  data->p = *joined;
  data->len = 0;
  while (p < end) {
    if (get_prim(&p, end, MBEDTLS_ASN1_OCTET_STRING, &chunk) != 0)
      return p12_corrupt(&w->c, "EncryptedData");
    memcpy(*joined + data->len, chunk.p, chunk.len);
    data->len += chunk.len;
  }
  return KVVM_OK;
}

/* EncryptedData ::= SEQUENCE { version INTEGER, encryptedContentInfo SEQUENCE {
 *   contentType OID (data), contentEncryptionAlgorithm AlgorithmIdentifier,
 *   encryptedContent [0] IMPLICIT OCTET STRING } } */
static enum kvvm_err encrypted_data(struct walk *w, unsigned char *p, const unsigned char *end)
{
  unsigned char *ed_end, *eci_end, *joined = NULL, *plain = NULL;
  mbedtls_asn1_buf type, oid, params, data;
  size_t plain_len = 0;
  const char *scheme = "";
  int version;
  enum kvvm_err err;

  if (get_nested(&p, end, SEQ, &ed_end) != 0 || ed_end != end ||
      mbedtls_asn1_get_int(&p, end, &version) != 0 ||
      get_nested(&p, end, SEQ, &eci_end) != 0 ||
      get_prim(&p, eci_end, MBEDTLS_ASN1_OID, &type) != 0 || !IS(OID_DATA, &type) ||
      mbedtls_asn1_get_alg(&p, eci_end, &oid, &params) != 0)
    return p12_corrupt(&w->c, "EncryptedData");
  err = encrypted_content(w, p, eci_end, &data, &joined);
  if (err == KVVM_OK)
    err = p12_decrypt(&w->c, &oid, &params, data.p, data.len, &plain, &plain_len, &scheme);
  if (err == KVVM_OK) {
    note_scheme(w, scheme);
    err = safe_contents_buf(w, plain, plain_len, true);
  }
  free(joined);
  kvvm_free_secret(plain, plain_len);
  return err;
}

/* ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY } */
static enum kvvm_err content_info(struct walk *w, unsigned char **pp, const unsigned char *end)
{
  unsigned char *p = *pp, *ci_end, *c0_end;
  mbedtls_asn1_buf type, data;

  w->ci++;
  w->bag = 0;
  set_where(w);
  if (get_nested(&p, end, SEQ, &ci_end) != 0 || get_prim(&p, ci_end, MBEDTLS_ASN1_OID, &type) ||
      get_nested(&p, ci_end, EXPLICIT0, &c0_end) != 0 || c0_end != ci_end)
    return p12_corrupt(&w->c, "ContentInfo");
  *pp = ci_end;
  if (IS(OID_ENCRYPTED_DATA, &type))
    return encrypted_data(w, p, ci_end);
  if (!IS(OID_DATA, &type))
    return p12_unsupported(&w->c, "content type", &type);
  if (get_prim(&p, ci_end, MBEDTLS_ASN1_OCTET_STRING, &data) != 0 || p != ci_end)
    return p12_corrupt(&w->c, "ContentInfo");
  return safe_contents_buf(w, data.p, data.len, false);
}

/* AuthenticatedSafe ::= SEQUENCE OF ContentInfo */
static enum kvvm_err authenticated_safe(struct walk *w, const struct pfx *f)
{
  struct p12_view v;
  unsigned char *p, *end, *seq_end;
  enum kvvm_err err = KVVM_OK;
  if (!p12_der_view(f->content, f->content_len, &v))
    return p12_corrupt(&w->c, "AuthenticatedSafe");
  p = v.p;
  end = v.p + v.len;
  if (get_nested(&p, end, SEQ, &seq_end) != 0 || seq_end != end)
    err = p12_corrupt(&w->c, "AuthenticatedSafe");
  while (err == KVVM_OK && p < end)
    err = content_info(w, &p, end);
  p12_view_free(&v);
  return err;
}

static enum kvvm_err p12_read(const unsigned char *der, size_t len, const char *password,
                              struct certmat_parts *parts, struct kvvm_p12_summary *sum,
                              char *why, size_t whylen)
{
  struct walk w;
  struct p12_view v = {NULL, 0, NULL};
  struct pfx f;
  enum kvvm_err err = KVVM_OK;

  memset(&w, 0, sizeof(w));
  w.c.pw = (const unsigned char *)(password ? password : "");
  w.c.pw_len = strlen((const char *)w.c.pw);
  w.c.why = why;
  w.c.whylen = whylen;
  w.parts = parts;
  w.sum = sum;
  if (!p12_der_view(der, len, &v))
    err = p12_corrupt(&w.c, "PFX (not one complete ASN.1 element)");
  if (err == KVVM_OK)
    err = parse_pfx(&w, &v, &f);
  if (err == KVVM_OK)
    plan_derivations(&w, &f);
  if (err == KVVM_OK && f.has_mac)
    err = check_mac(&w, &f);
  else if (err == KVVM_OK)
    no_mac(&w);
  if (err == KVVM_OK)
    err = authenticated_safe(&w, &f);
  p12_view_free(&v);
  kvvm_free_secret(w.c.bmp, w.c.bmp_len);
  p12_jobs_free(&w.c);
  return err;
}

/* On failure parts may hold what was read before it; the caller frees parts either way. */
enum kvvm_err certmat_p12_read(const unsigned char *der, size_t len, const char *password,
                               struct certmat_parts *p, char *why, size_t whylen)
{
  return p12_read(der, len, password, p, NULL, why, whylen);
}

static void summarise(const struct certmat_parts *parts, struct kvvm_p12_summary *s)
{
  int i = 0;
  s->n_keys = parts->n_keys;
  for (const mbedtls_x509_crt *c = &parts->certs; c && c->raw.len; c = c->next, i++) {
    s->n_certs++;
    if (s->key_cert < 0 && parts->has_key && mbedtls_pk_check_pair(&c->pk, &parts->key) == 0)
      s->key_cert = i;
  }
  if (parts->has_key) {
    snprintf(s->key_type, sizeof(s->key_type), "%s", mbedtls_pk_get_name(&parts->key));
    s->key_bits = (unsigned)mbedtls_pk_get_bitlen(&parts->key);
  }
}

enum kvvm_err kvvm_p12_inspect(const unsigned char *der, size_t len, const char *password,
                               struct kvvm_p12_summary *s, char *why, size_t whylen)
{
  struct certmat_parts parts;
  memset(s, 0, sizeof(*s));
  s->key_cert = -1;
  snprintf(s->mac, sizeof(s->mac), "none");
  certmat_parts_init(&parts);
  enum kvvm_err err = p12_read(der, len, password, &parts, s, why, whylen);
  if (err == KVVM_OK)
    summarise(&parts, s);
  certmat_parts_free(&parts);
  return err;
}
