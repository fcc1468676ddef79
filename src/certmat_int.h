/* Between the container readers (PKCS#12: p12*.c; PEM: certmat_pem.c) and the bundle
 * builder (certmat_bundle.c): what a container yielded, before it is verified and ordered. */
#ifndef KVVM_CERTMAT_INT_H
#define KVVM_CERTMAT_INT_H

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

#endif
