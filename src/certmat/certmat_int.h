/* Between the container readers (PKCS#12: p12*.c; PEM: certmat_pem.c) and the bundle
 * builder (certmat_bundle.c): what a container yielded, before it is verified and ordered. */
#ifndef KVVM_CERTMAT_INT_H
#define KVVM_CERTMAT_INT_H

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include <stdbool.h>

#include "kvvm/certmat.h"

struct certmat_parts {
  mbedtls_x509_crt certs;   /* every certificate found, in input order */
  mbedtls_pk_context key;   /* the private key, when has_key */
  bool has_key;
  unsigned n_keys;          /* more than one key is an error the builder reports */
};

void certmat_parts_init(struct certmat_parts *p);
void certmat_parts_free(struct certmat_parts *p);
/* Verify and order: find the leaf that matches the key, order the chain by subject/issuer
 * and key identifiers, keep the rest as unrelated, compute the facts. Takes ownership of
 * the parts' contents on success and on failure. */
enum kvvm_err certmat_bundle_build(struct certmat_parts *p, struct kvvm_bundle **out, char *why,
                                   size_t whylen);
/* Fill parts from a DER PKCS#12 (p12_read.c). */
enum kvvm_err certmat_p12_read(const unsigned char *der, size_t len, const char *password,
                               struct certmat_parts *p, char *why, size_t whylen);

/* The verified bundle: certmat_bundle.c builds it, certmat_write.c writes it out. */
struct kvvm_bundle {
  mbedtls_x509_crt certs;          /* every certificate, in input order (owns them) */
  const mbedtls_x509_crt **order;  /* leaf, chain in issuing order, then unrelated ones */
  size_t n_chain;
  size_t n_unrelated;
  mbedtls_pk_context key;
  struct kvvm_cert_facts facts;
};

/* Helpers shared by certmat*.c and cms.c (certmat_util.c). */

/* The subjectKeyIdentifier, or the keyIdentifier of the authorityKeyIdentifier, of c:
 * false when the extension is absent or unreadable. */
bool certmat_crt_ski(const mbedtls_x509_crt *c, mbedtls_asn1_buf *id);
bool certmat_crt_aki(const mbedtls_x509_crt *c, mbedtls_asn1_buf *id);
/* Base64 text (any ASCII whitespace ignored) into new memory; free with kvvm_free_secret.
 * what names the input in the KVVM_E_CERT message. */
enum kvvm_err certmat_b64_decode(const char *text, size_t len, const char *what,
                                 unsigned char **out, size_t *outlen, char *why, size_t whylen);
/* Base64 without whitespace (certmat_b64.c), constant time in the data. The decoder accepts
 * and gives what mbedtls_base64_decode does: 0, or -1 for text that is not base64 (or cap
 * below n / 4 * 3). The encoder writes (n + 2) / 3 * 4 characters and a NUL. Exported for
 * test_certmat's comparison with mbedTLS. */
KVVM_API int kvvm_certmat_b64_dec(unsigned char *dst, size_t cap, size_t *olen,
                             const unsigned char *src, size_t n);
KVVM_API void kvvm_certmat_b64_enc(unsigned char *dst, const unsigned char *src, size_t n);
/* A DRBG seeded from the system's entropy, for salts, IVs and RSA blinding; use
 * mbedtls_ctr_drbg_random with &rng->drbg. */
struct certmat_rng {
  mbedtls_ctr_drbg_context drbg;
};
enum kvvm_err certmat_rng_init(struct certmat_rng *rng);
void certmat_rng_free(struct certmat_rng *rng);
/* The first occurrence of the string needle in [hay, hay + len), or NULL: memmem is in
 * neither C11 nor Windows' C library. */
const char *certmat_find(const char *hay, size_t len, const char *needle);
/* What kvvm takes, for the messages that refuse a key. */
#define CERTMAT_KEYS_SUPPORTED \
  "kvvm takes RSA keys and EC keys on a named curve (P-256, P-384, P-521, P-256K and others)"
/* mbedtls_pk_parse_key (PKCS#8, SEC1 or PKCS#1 DER, unencrypted) and
 * mbedtls_x509_crt_parse_der, after EC parameters written out in full are replaced by the
 * name of the curve they describe (certmat_keys.c). On failure the mbedTLS error; when the
 * cause is an algorithm or curve kvvm cannot use, unsupported names it ("Ed25519",
 * "EC curve SM2", ...), else it is "". */
int certmat_pk_parse(mbedtls_pk_context *pk, const unsigned char *der, size_t len,
                     char *unsupported, size_t n);
int certmat_crt_parse(mbedtls_x509_crt *chain, const unsigned char *der, size_t len,
                      char *unsupported, size_t n);
/* The system's trust store for the chain check (certmat_trust.c): an index of path's roots
 * by subject, built once per process and path (false: unreadable, or no certificate in it);
 * want parses the roots whose subject is name into the list roots returns. */
bool certmat_trust_index(const char *path);
void certmat_trust_want(const mbedtls_x509_buf *name);
mbedtls_x509_crt *certmat_trust_roots(void);
/* Say why in words: fmt into why, and the same line into the log at ERR level. Returns
 * KVVM_E_CERT, so callers write `return certmat_fail(...)`. */
enum kvvm_err certmat_fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(gnu_printf, 3, 4)));

#endif
