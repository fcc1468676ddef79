/* The system's trust store as the chain check needs it. A distribution's bundle holds ~140
 * roots; parsed whole by mbedTLS they held ~0.3 MiB in every pass worker, and the file's
 * buffer and the parsing left more than 1 MiB of heap behind them (measured: the worker's
 * peak in a first sync of 1,000). A chain needs one or two of them. So the file is read once
 * into an index (per root: a hash of its subject name and where its PEM block starts), and
 * a root is parsed only when a chain names its subject as an issuer, then kept for the
 * process. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/asn1.h>
#include <mbedtls/base64.h>

#include "certmat/certmat_int.h"
#include "kvvm/mem.h"

#define PEM_BEGIN "-----BEGIN CERTIFICATE-----"
#define PEM_END "-----END CERTIFICATE-----"
/* The base64 of one root: CAs' certificates are 1-3 KiB. A longer block is skipped. */
#define BLOCK_MAX (64 * 1024)
#define SEQ (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)

struct root {
  uint64_t name;  /* name_hash of its subject */
  long at;        /* where its BEGIN line starts in the file */
  bool parsed;    /* in trust.roots (or found unreadable) */
};

static struct {
  char *path;
  struct root *v;
  size_t n, cap;
  mbedtls_x509_crt roots;  /* those asked for so far */
} trust;

/* A block's base64 text, whitespace left out. */
struct block {
  char *p;
  size_t len, cap;
};

/* mbedTLS takes two names as one with ASCII case folded and a PrintableString equal to a
 * UTF8String (x509_name_cmp): both are folded here, so every pair it would match hashes
 * alike; a name merely colliding costs the parsing of one root more. */
static uint64_t name_hash(const unsigned char *p, size_t len)
{
  uint64_t h = 14695981039346656037ULL;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = p[i];
    if (c == MBEDTLS_ASN1_PRINTABLE_STRING)
      c = MBEDTLS_ASN1_UTF8_STRING;
    else if (c >= 'A' && c <= 'Z')
      c = (unsigned char)(c + ('a' - 'A'));
    h = (h ^ c) * 1099511628211ULL;
  }
  return h;
}

/* The subject of a DER certificate, its tag and length included (as subject_raw). */
static bool subject_of(unsigned char *p, size_t len, mbedtls_x509_buf *name)
{
  unsigned char *end = p + len;
  size_t n;
  if (mbedtls_asn1_get_tag(&p, end, &n, SEQ) || mbedtls_asn1_get_tag(&p, end, &n, SEQ))
    return false;
  end = p + n;
  if (mbedtls_asn1_get_tag(&p, end, &n, MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED) == 0)
    p += n;  /* version */
  for (int i = 0; i < 4; i++) {  /* serial, signature, issuer, validity */
    if (p >= end)
      return false;
    p++;
    if (mbedtls_asn1_get_len(&p, end, &n))
      return false;
    p += n;
  }
  name->p = p;
  if (mbedtls_asn1_get_tag(&p, end, &n, SEQ))
    return false;
  name->len = (size_t)(p + n - name->p);
  return true;
}

static void block_add(struct block *b, const char *line)
{
  for (; *line; line++) {
    if (*line == ' ' || *line == '\t' || *line == '\r' || *line == '\n')
      continue;
    if (b->len + 1 >= b->cap) {
      b->cap = b->cap ? 2 * b->cap : 4096;
      b->p = kvvm_xrealloc(b->p, b->cap);
    }
    b->p[b->len++] = *line;
  }
}

/* The next certificate block from *pos on (binary mode: *pos counts bytes), its BEGIN
 * line's offset in *at. Lines longer than the buffer come in pieces: only a piece that
 * starts a line can be a BEGIN or END. */
static bool next_block(FILE *f, long *pos, struct block *b, long *at)
{
  char line[256];
  bool inside = false, line_start = true;
  b->len = 0;
  while (fgets(line, sizeof line, f)) {
    size_t n = strlen(line);
    bool starts = line_start;
    line_start = n > 0 && line[n - 1] == '\n';
    *pos += (long)n;
    if (starts && strncmp(line, PEM_BEGIN, strlen(PEM_BEGIN)) == 0) {
      inside = true;
      *at = *pos - (long)n;
      b->len = 0;
    } else if (inside && starts && strncmp(line, PEM_END, strlen(PEM_END)) == 0) {
      return true;
    } else if (inside && b->len < BLOCK_MAX) {
      block_add(b, line);
    }
  }
  return false;
}

/* The DER of a block, in new memory (roots are public: no wiping). */
static unsigned char *decode(const struct block *b, size_t *len)
{
  size_t n = 0;
  const unsigned char *src = (const unsigned char *)b->p;
  mbedtls_base64_decode(NULL, 0, &n, src, b->len);
  unsigned char *der = kvvm_xmalloc(n);
  if (mbedtls_base64_decode(der, n, len, src, b->len) != 0) {
    free(der);
    return NULL;
  }
  return der;
}

static void index_block(const struct block *b, long at)
{
  size_t len = 0;
  unsigned char *der = decode(b, &len);
  mbedtls_x509_buf name;
  if (der && subject_of(der, len, &name)) {
    if (trust.n == trust.cap) {
      trust.cap = trust.cap ? 2 * trust.cap : 64;
      trust.v = kvvm_xrealloc(trust.v, trust.cap * sizeof(*trust.v));
    }
    trust.v[trust.n++] = (struct root){name_hash(name.p, name.len), at, false};
  }
  free(der);
}

static void forget(void)
{
  mbedtls_x509_crt_free(&trust.roots);
  mbedtls_x509_crt_init(&trust.roots);
  free(trust.v);
  trust.v = NULL;
  trust.n = trust.cap = 0;
  free(trust.path);
  trust.path = NULL;
}

bool certmat_trust_index(const char *path)
{
  if (trust.path && strcmp(trust.path, path) == 0)
    return trust.n > 0;
  forget();
  trust.path = kvvm_xstrdup(path);
  FILE *f = fopen(path, "rb");
  if (!f)
    return false;
  struct block b = {NULL, 0, 0};
  long pos = 0, at = 0;
  while (next_block(f, &pos, &b, &at))
    index_block(&b, at);
  free(b.p);
  fclose(f);
  return trust.n > 0;
}

/* Root r's certificate into trust.roots; one mbedTLS cannot read is left out, as the whole
 * bundle's parsing left it out. */
static void parse_root(FILE *f, struct root *r, struct block *b)
{
  long pos = r->at, at = 0;
  size_t len = 0;
  r->parsed = true;
  if (fseek(f, r->at, SEEK_SET) != 0 || !next_block(f, &pos, b, &at) || at != r->at)
    return;
  unsigned char *der = decode(b, &len);
  if (der)
    mbedtls_x509_crt_parse_der(&trust.roots, der, len);
  free(der);
}

void certmat_trust_want(const mbedtls_x509_buf *name)
{
  uint64_t h = name_hash(name->p, name->len);
  FILE *f = NULL;
  struct block b = {NULL, 0, 0};
  for (size_t i = 0; i < trust.n; i++) {
    if (trust.v[i].name != h || trust.v[i].parsed)
      continue;
    if (!f && !(f = fopen(trust.path, "rb")))
      break;
    parse_root(f, &trust.v[i], &b);
  }
  free(b.p);
  if (f)
    fclose(f);
}

mbedtls_x509_crt *certmat_trust_roots(void) { return &trust.roots; }
