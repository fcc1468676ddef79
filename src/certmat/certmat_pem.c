/* The PEM reader: certificates and one private key in whatever order a user uploaded them,
 * with any text between the blocks ignored (Key Vault keeps PEM secrets as uploaded, and
 * tools write bag attributes, comments or "EC PARAMETERS" blocks around them). Keys may be
 * PKCS#8 ("PRIVATE KEY"), PKCS#1 ("RSA PRIVATE KEY") or SEC1 ("EC PRIVATE KEY"); encrypted
 * keys are refused with the reason, since no password can come with a secret. */
#include <stdio.h>
#include <string.h>

#include <mbedtls/error.h>

#include "certmat/certmat_int.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"

#define BEGIN "-----BEGIN "
#define DASHES "-----"
#define LABEL_MAX 64

struct pem_block {
  char label[LABEL_MAX + 1];
  const char *body;  /* between the BEGIN and END lines */
  size_t body_len;
  const char *next;  /* just after the END line */
  unsigned index;    /* 1-based, for messages */
};

/* The next block in [p, end): 0 when there is none, 1 with *b filled, -1 when a BEGIN line
 * has no matching END line (a truncated secret must not pass as "junk"). */
static int next_block(const char *p, const char *end, struct pem_block *b)
{
  const char *s = certmat_find(p, (size_t)(end - p), BEGIN);
  if (!s)
    return 0;
  const char *lab = s + strlen(BEGIN);
  const char *lab_end = certmat_find(lab, (size_t)(end - lab), DASHES);
  size_t n = lab_end ? (size_t)(lab_end - lab) : 0;
  if (!lab_end || n == 0 || n > LABEL_MAX || memchr(lab, '\n', n))
    return -1;
  memcpy(b->label, lab, n);
  b->label[n] = '\0';
  char footer[LABEL_MAX + 16];
  int flen = snprintf(footer, sizeof footer, "-----END %s-----", b->label);
  b->body = lab_end + strlen(DASHES);
  const char *f = certmat_find(b->body, (size_t)(end - b->body), footer);
  if (!f)
    return -1;
  b->body_len = (size_t)(f - b->body);
  b->next = f + flen;
  return 1;
}

static bool is_key_label(const char *label)
{
  return !strcmp(label, "PRIVATE KEY") || !strcmp(label, "RSA PRIVATE KEY") ||
         !strcmp(label, "EC PRIVATE KEY");
}

/* OpenSSL's traditional encrypted keys keep their label and add RFC 1421 headers. */
static bool has_encryption_header(const struct pem_block *b)
{
  return certmat_find(b->body, b->body_len, "Proc-Type:") ||
         certmat_find(b->body, b->body_len, "DEK-Info:");
}

static enum kvvm_err read_cert(const struct pem_block *b, struct certmat_parts *parts,
                               char *why, size_t whylen)
{
  unsigned char *der = NULL;
  size_t len = 0;
  char what[LABEL_MAX + 48], err[128], alg[96];
  snprintf(what, sizeof what, "PEM block %u (\"%s\")", b->index, b->label);
  enum kvvm_err rc = certmat_b64_decode(b->body, b->body_len, what, &der, &len, why, whylen);
  if (rc == KVVM_OK) {
    int ret = certmat_crt_parse(&parts->certs, der, len, alg, sizeof alg);
    if (ret != 0 && *alg) {
      rc = certmat_fail(why, whylen, "the certificate in %s has an unsupported key: %s; %s",
                        what, alg, CERTMAT_KEYS_SUPPORTED);
    } else if (ret != 0) {
      mbedtls_strerror(ret, err, sizeof err);
      rc = certmat_fail(why, whylen, "%s is not a readable certificate: %s", what, err);
    }
  }
  kvvm_free_secret(der, len);
  return rc;
}

/* Only the first key is kept; later ones are counted so the builder can refuse them all
 * by number rather than pick one. */
static enum kvvm_err read_key(const struct pem_block *b, struct certmat_parts *parts,
                              char *why, size_t whylen)
{
  unsigned char *der = NULL;
  size_t len = 0;
  char what[LABEL_MAX + 48], err[128], alg[96];
  snprintf(what, sizeof what, "PEM block %u (\"%s\")", b->index, b->label);
  if (has_encryption_header(b))
    return certmat_fail(why, whylen, "the private key in %s is encrypted; kvvm needs an "
                        "unencrypted key (a secret carries no password)", what);
  if (parts->n_keys++ > 0)
    return KVVM_OK;
  enum kvvm_err rc = certmat_b64_decode(b->body, b->body_len, what, &der, &len, why, whylen);
  if (rc == KVVM_OK) {
    int ret = certmat_pk_parse(&parts->key, der, len, alg, sizeof alg);
    if (ret != 0 && *alg) {
      rc = certmat_fail(why, whylen, "the private key in %s: unsupported key: %s; %s", what, alg,
                        CERTMAT_KEYS_SUPPORTED);
    } else if (ret != 0) {
      mbedtls_strerror(ret, err, sizeof err);
      rc = certmat_fail(why, whylen, "the private key in %s is not readable: %s", what, err);
    } else {
      parts->has_key = true;
    }
  }
  kvvm_free_secret(der, len);
  return rc;
}

static enum kvvm_err read_block(struct pem_block *b, struct certmat_parts *parts,
                                char *why, size_t whylen)
{
  if (!strcmp(b->label, "CERTIFICATE"))
    return read_cert(b, parts, why, whylen);
  if (is_key_label(b->label))
    return read_key(b, parts, why, whylen);
  if (!strcmp(b->label, "ENCRYPTED PRIVATE KEY"))
    return certmat_fail(why, whylen, "the private key in PEM block %u is encrypted (\"%s\"); "
                        "kvvm needs an unencrypted key (a secret carries no password)",
                        b->index, b->label);
  for (char *c = b->label; *c; c++) /* the label goes to the log: printable only */
    if (*c < 0x20 || *c > 0x7e)
      *c = '?';
  KVVM_DEBUG("PEM block %u (\"%s\") is neither a certificate nor a key: ignored", b->index,
             b->label);
  return KVVM_OK;
}

static enum kvvm_err read_blocks(const char *text, size_t len, struct certmat_parts *parts,
                                 char *why, size_t whylen)
{
  const char *p = text, *end = text + len;
  struct pem_block b;
  int found;
  for (b.index = 1; (found = next_block(p, end, &b)) == 1; b.index++) {
    enum kvvm_err rc = read_block(&b, parts, why, whylen);
    if (rc != KVVM_OK)
      return rc;
    p = b.next;
  }
  if (found < 0)
    return certmat_fail(why, whylen, "PEM block %u has a BEGIN line without its END line "
                        "(truncated or corrupt text)", b.index);
  if (b.index == 1)
    return certmat_fail(why, whylen, "no PEM block (\"-----BEGIN ...\") in the text");
  return KVVM_OK;
}

enum kvvm_err kvvm_certmat_from_pem(const char *text, size_t len, struct kvvm_bundle **out,
                                    char *why, size_t whylen)
{
  struct certmat_parts parts;
  certmat_parts_init(&parts);
  *out = NULL;
  enum kvvm_err rc = read_blocks(text, len, &parts, why, whylen);
  if (rc != KVVM_OK) {
    certmat_parts_free(&parts);
    return rc;
  }
  return certmat_bundle_build(&parts, out, why, whylen);
}
