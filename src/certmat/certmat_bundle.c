/* The bundle builder: what a container yielded (certificates in any order, one key) becomes
 * a verified bundle. The leaf is the certificate whose public key is the key's (checked,
 * never assumed from position); the chain follows issuer -> subject names and AKI -> SKI
 * key identifiers from the leaf up; the rest is kept as unrelated. Also the entry points
 * that pick the container by a Key Vault secret's contentType. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mbedtls/bignum.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha1.h>

#include "certmat/certmat_int.h"
#include "kvvm/clock.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"

/* A DER SubjectPublicKeyInfo of the largest key mbedTLS handles, with room to spare. */
#define SPKI_MAX (2 * MBEDTLS_MPI_MAX_SIZE + 128)

void certmat_parts_init(struct certmat_parts *p)
{
  memset(p, 0, sizeof *p);
  mbedtls_x509_crt_init(&p->certs);
  mbedtls_pk_init(&p->key);
}

void certmat_parts_free(struct certmat_parts *p)
{
  if (!p)
    return;
  mbedtls_x509_crt_free(&p->certs); /* mbedTLS zeroizes what it frees, the key included */
  mbedtls_pk_free(&p->key);
  p->has_key = false;
  p->n_keys = 0;
}

static size_t count_certs(const mbedtls_x509_crt *c)
{
  size_t n = 0;
  for (; c && c->raw.p; c = c->next)
    n++;
  return n;
}

static enum kvvm_err check_parts(const struct certmat_parts *p, char *why, size_t whylen)
{
  if (!p->has_key || p->n_keys == 0)
    return certmat_fail(why, whylen, "no private key in the secret");
  if (p->n_keys > 1)
    return certmat_fail(why, whylen, "the secret holds %u private keys; expected exactly one",
                        p->n_keys);
  if (count_certs(&p->certs) == 0)
    return certmat_fail(why, whylen, "no certificate in the secret");
  return KVVM_OK;
}

/* Both public keys written out by mbedTLS: equal DER means the same key, however the
 * certificate happened to encode it. The end of each buffer holds the DER. */
static bool same_public_key(mbedtls_pk_context *a, mbedtls_pk_context *b)
{
  unsigned char da[SPKI_MAX], db[SPKI_MAX];
  int la = mbedtls_pk_write_pubkey_der(a, da, sizeof da);
  int lb = mbedtls_pk_write_pubkey_der(b, db, sizeof db);
  return la > 0 && la == lb && memcmp(da + sizeof da - la, db + sizeof db - lb, (size_t)la) == 0;
}

/* The index of the certificate that carries the key's public half; its private half is
 * then checked to belong to it (a key with a right public part and a damaged private one
 * would install and fail every handshake). */
static enum kvvm_err find_leaf(struct kvvm_bundle *b, mbedtls_x509_crt **all, size_t n,
                               size_t *leaf, char *why, size_t whylen)
{
  for (size_t i = 0; i < n; i++) {
    if (!same_public_key(&all[i]->pk, &b->key))
      continue;
    int ret = mbedtls_pk_check_pair(&all[i]->pk, &b->key);
    if (ret != 0)
      return certmat_fail(why, whylen, "the private key is damaged: its private part does not "
                          "belong to its public part (mbedTLS -0x%04x)", (unsigned)-ret);
    *leaf = i;
    return KVVM_OK;
  }
  return certmat_fail(why, whylen, "the private key matches none of the %zu certificate%s in "
                      "the secret", n, n == 1 ? "" : "s");
}

/* Names must match byte for byte; key identifiers too when both sides carry them. */
static bool issued_by(const mbedtls_x509_crt *child, const mbedtls_x509_crt *parent)
{
  mbedtls_asn1_buf aki, ski;
  if (child->issuer_raw.len != parent->subject_raw.len ||
      memcmp(child->issuer_raw.p, parent->subject_raw.p, child->issuer_raw.len) != 0)
    return false;
  if (certmat_crt_aki(child, &aki) && certmat_crt_ski(parent, &ski))
    return aki.len == ski.len && memcmp(aki.p, ski.p, aki.len) == 0;
  return true;
}

/* A second copy of a certificate already placed (users concatenate overlapping files). */
static bool placed(const struct kvvm_bundle *b, size_t k, const mbedtls_x509_crt *c)
{
  for (size_t i = 0; i < k; i++)
    if (b->order[i]->raw.len == c->raw.len && !memcmp(b->order[i]->raw.p, c->raw.p, c->raw.len))
      return true;
  return false;
}

/* Leaf first, then each certificate's issuer until a self-issued one (the root) or until
 * no issuer is present; whatever is left keeps its input order after the chain, less
 * exact duplicates. */
static void order_certs(struct kvvm_bundle *b, mbedtls_x509_crt **all, size_t n, size_t leaf)
{
  bool *used = kvvm_xcalloc(n, sizeof *used);
  size_t k = 0;
  b->order = kvvm_xcalloc(n, sizeof *b->order);
  b->order[k++] = all[leaf];
  used[leaf] = true;
  for (const mbedtls_x509_crt *cur = all[leaf]; !issued_by(cur, cur);) {
    size_t i = 0;
    while (i < n && (used[i] || !issued_by(cur, all[i])))
      i++;
    if (i == n)
      break;
    used[i] = true;
    cur = b->order[k++] = all[i];
  }
  b->n_chain = k - 1;
  for (size_t i = 0; i < n; i++)
    if (!used[i] && !placed(b, k, all[i]))
      b->order[k++] = all[i];
  b->n_unrelated = k - 1 - b->n_chain;
  free(used);
}

static char *dn_string(const mbedtls_x509_name *dn)
{
  for (size_t size = 256; size <= 65536; size *= 4) {
    char *s = kvvm_xmalloc(size);
    if (mbedtls_x509_dn_gets(s, size, dn) >= 0)
      return s;
    free(s);
  }
  return kvvm_xstrdup("(name too long)");
}

/* Days from 1970-01-01 to a Gregorian date, counting years from March so that the leap
 * day ends one; X.509 years (1950-9999) keep every term positive. timegm would do, but
 * Windows' C library lacks it. */
static int64_t days_from_civil(int y, int m, int d)
{
  y -= m <= 2;
  int era = y / 400, yoe = y % 400;
  int doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return (int64_t)era * 146097 + doe - 719468;
}

static time_t x509_time(const mbedtls_x509_time *t)
{
  int64_t days = days_from_civil(t->year, t->mon, t->day);
  return (time_t)(days * 86400 + t->hour * 3600 + t->min * 60 + t->sec);
}

/* Room for the longest IPv6 text, "ffff:...:ffff:255.255.255.255" and its NUL. */
#define IP_TEXT_CAP 46

static size_t ipv4_text(const unsigned char *a, char *out, size_t cap)
{
  return (size_t)snprintf(out, cap, "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
}

/* The longest run of two or more zero groups, the first of equal ones; *len 0 if none. */
static void zero_run(const unsigned *g, int n, int *start, int *len)
{
  *start = -1;
  *len = 0;
  for (int i = 0, j; i < n; i = j + 1) {
    for (j = i; j < n && g[j] == 0; j++)
      ;
    if (j - i >= 2 && j - i > *len) {
      *start = i;
      *len = j - i;
    }
  }
}

/* RFC 5952 (section 4: lower case, no leading zeros, the longest zero run as "::"; section 5:
 * an IPv4-mapped address ends in its IPv4 text). Done here rather than by inet_ntop, which
 * would tie this portable file to the sockets headers of each system. */
static void ipv6_text(const unsigned char *a, char *out, size_t cap)
{
  static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  bool v4 = memcmp(a, mapped, sizeof mapped) == 0;
  int groups = v4 ? 6 : 8, start, len;
  unsigned g[8];
  for (int i = 0; i < 8; i++)
    g[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
  zero_run(g, groups, &start, &len);
  size_t n = 0;
  for (int i = 0; i < groups; i++) {
    if (i == start) {
      n += (size_t)snprintf(out + n, cap - n, "::");
      i += len - 1;
      continue;
    }
    n += (size_t)snprintf(out + n, cap - n, "%s%x", i && i != start + len ? ":" : "", g[i]);
  }
  if (v4) {
    out[n++] = ':';  /* after the ffff group, which "::" never swallows */
    ipv4_text(a + 12, out + n, cap - n);
  }
}

/* One SAN as text: DNS names and URIs as written (bytes outside printable ASCII become
 * '?', since the text reaches hook environments and logs), IPs in the usual notation. */
static char *san_string(const mbedtls_x509_buf *san)
{
  int type = san->tag & MBEDTLS_ASN1_TAG_VALUE_MASK;
  if (type == 2 || type == 6) { /* dNSName, uniformResourceIdentifier */
    char *s = kvvm_xmalloc(san->len + 1);
    for (size_t i = 0; i < san->len; i++)
      s[i] = san->p[i] >= 0x20 && san->p[i] < 0x7f ? (char)san->p[i] : '?';
    s[san->len] = '\0';
    return s;
  }
  char ip[IP_TEXT_CAP];
  if (type == 7 && san->len == 4) {
    ipv4_text(san->p, ip, sizeof ip);
    return kvvm_xstrdup(ip);
  }
  if (type == 7 && san->len == 16) {
    ipv6_text(san->p, ip, sizeof ip);
    return kvvm_xstrdup(ip);
  }
  return NULL; /* e-mail, directory names, otherName: not facts anyone asked for */
}

static char **san_list(const mbedtls_x509_crt *c)
{
  size_t n = 0;
  for (const mbedtls_x509_sequence *s = &c->subject_alt_names; s && s->buf.p; s = s->next)
    n++;
  char **v = kvvm_xcalloc(n + 1, sizeof *v);
  size_t k = 0;
  for (const mbedtls_x509_sequence *s = &c->subject_alt_names; s && s->buf.p; s = s->next)
    if ((v[k] = san_string(&s->buf)))
      k++;
  return v;
}

static void fill_facts(struct kvvm_bundle *b)
{
  const mbedtls_x509_crt *leaf = b->order[0];
  struct kvvm_cert_facts *f = &b->facts;
  unsigned char sha[20];
  mbedtls_sha1_ret(leaf->raw.p, leaf->raw.len, sha);
  for (size_t i = 0; i < sizeof sha; i++)
    snprintf(f->thumbprint + 2 * i, 3, "%02X", sha[i]);
  f->subject = dn_string(&leaf->subject);
  f->issuer = dn_string(&leaf->issuer);
  f->sans = san_list(leaf);
  f->not_before = x509_time(&leaf->valid_from);
  f->not_after = x509_time(&leaf->valid_to);
  f->key_type = mbedtls_pk_get_type(&b->key) == MBEDTLS_PK_RSA ? "RSA" : "EC";
  f->key_bits = (unsigned)mbedtls_pk_get_bitlen(&b->key);
  /* Expired is reported, not refused: the user may be mid-renewal and still want it. */
  if (f->not_after < kvvm_clock_now()) {
    const mbedtls_x509_time *t = &leaf->valid_to;
    KVVM_WARN("certificate %s (%s) expired on %04d-%02d-%02d %02d:%02d:%02d UTC",
              f->thumbprint, f->subject, t->year, t->mon, t->day, t->hour, t->min, t->sec);
  }
}

enum kvvm_err certmat_bundle_build(struct certmat_parts *p, struct kvvm_bundle **out, char *why,
                                   size_t whylen)
{
  struct kvvm_bundle *b = NULL;
  mbedtls_x509_crt **all = NULL;
  size_t n = 0, leaf = 0;
  enum kvvm_err rc = check_parts(p, why, whylen);
  if (rc != KVVM_OK)
    goto out;
  /* Moving the contexts by value is safe: nothing points back into their first nodes. */
  b = kvvm_xcalloc(1, sizeof *b);
  b->certs = p->certs;
  mbedtls_x509_crt_init(&p->certs);
  b->key = p->key;
  mbedtls_pk_init(&p->key);
  n = count_certs(&b->certs);
  all = kvvm_xcalloc(n, sizeof *all);
  mbedtls_x509_crt *c = &b->certs;
  for (size_t i = 0; i < n; i++, c = c->next)
    all[i] = c;
  if ((rc = find_leaf(b, all, n, &leaf, why, whylen)) != KVVM_OK)
    goto out;
  order_certs(b, all, n, leaf);
  fill_facts(b);
out:
  free(all);
  certmat_parts_free(p);
  if (rc != KVVM_OK) {
    kvvm_bundle_free(b);
    b = NULL;
  }
  *out = b;
  return rc;
}

const struct kvvm_cert_facts *kvvm_bundle_facts(const struct kvvm_bundle *b)
{
  return &b->facts;
}

size_t kvvm_bundle_chain_len(const struct kvvm_bundle *b)
{
  return b->n_chain;
}

const unsigned char *kvvm_bundle_cert_der(const struct kvvm_bundle *b, size_t i, size_t *len)
{
  *len = i <= b->n_chain ? b->order[i]->raw.len : 0;
  return i <= b->n_chain ? b->order[i]->raw.p : NULL;
}

size_t kvvm_bundle_unrelated_len(const struct kvvm_bundle *b)
{
  return b->n_unrelated;
}

void kvvm_bundle_free(struct kvvm_bundle *b)
{
  if (!b)
    return;
  mbedtls_pk_free(&b->key); /* zeroizes every number of the key */
  mbedtls_x509_crt_free(&b->certs);
  free(b->order);
  free(b->facts.subject);
  free(b->facts.issuer);
  kvvm_strv_free(b->facts.sans);
  mbedtls_platform_zeroize(b, sizeof *b);
  free(b);
}

enum kvvm_err kvvm_certmat_from_pkcs12(const unsigned char *der, size_t len,
                                       const char *password, struct kvvm_bundle **out,
                                       char *why, size_t whylen)
{
  struct certmat_parts parts;
  certmat_parts_init(&parts);
  *out = NULL;
  enum kvvm_err rc = certmat_p12_read(der, len, password ? password : "", &parts, why, whylen);
  if (rc != KVVM_OK) {
    certmat_parts_free(&parts);
    return rc;
  }
  return certmat_bundle_build(&parts, out, why, whylen);
}

/* A media type, ignoring case and any parameters after ';'. */
static bool content_type_is(const char *ct, const char *want)
{
  size_t n = strlen(want);
  return ct && strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Key Vault's certificate-backed secrets hold a base64 PFX with an empty password. */
static enum kvvm_err from_base64_pfx(const char *value, size_t len, struct kvvm_bundle **out,
                                     char *why, size_t whylen)
{
  unsigned char *der = NULL;
  size_t dlen = 0;
  enum kvvm_err rc = certmat_b64_decode(value, len, "the PKCS#12 secret value", &der, &dlen,
                                        why, whylen);
  if (rc == KVVM_OK)
    rc = kvvm_certmat_from_pkcs12(der, dlen, "", out, why, whylen);
  kvvm_free_secret(der, dlen);
  return rc;
}

enum kvvm_err kvvm_certmat_from_secret(const char *content_type, const char *value, size_t len,
                                       struct kvvm_bundle **out, char *why, size_t whylen)
{
  *out = NULL;
  if (content_type_is(content_type, "application/x-pem-file"))
    return kvvm_certmat_from_pem(value, len, out, why, whylen);
  if (content_type_is(content_type, "application/x-pkcs12"))
    return from_base64_pfx(value, len, out, why, whylen);
  /* No (or an unknown) contentType: a PEM text always has a BEGIN line, base64 never has
   * a dash. */
  if (content_type && *content_type)
    KVVM_INFO("secret has an unknown contentType; recognising its value by its content");
  if (certmat_find(value, len, "-----BEGIN"))
    return kvvm_certmat_from_pem(value, len, out, why, whylen);
  return from_base64_pfx(value, len, out, why, whylen);
}
