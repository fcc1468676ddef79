/* Certificate material: what Key Vault hands back (a base64 PFX with an empty password, or
 * PEM text in upload order) turned into a verified bundle: the leaf (the certificate that
 * matches the private key, checked), the chain in issuing order, the key, and the facts
 * status and hooks need. Only the files of src/certmat/ include mbedTLS headers. */
#ifndef KVVM_CERTMAT_H
#define KVVM_CERTMAT_H

#include <stddef.h>
#include <time.h>
#include "kvvm/err.h"

struct kvvm_cert_facts {
  char thumbprint[41];   /* SHA-1 of the leaf's DER, upper-case hex, as Azure shows it */
  char *subject;         /* RFC 4514-ish, as mbedTLS prints it */
  char *issuer;
  char **sans;           /* DNS names, IPs, URIs; NULL-terminated (may be empty) */
  time_t not_before;
  time_t not_after;
  const char *key_type;  /* "RSA" or "EC" */
  unsigned key_bits;     /* 2048, 256, ... */
};

struct kvvm_bundle;      /* opaque: leaf, chain, unrelated certificates, private key */

/* DER PKCS#12 with a password ("" for Key Vault's). On KVVM_E_CERT, why says the cause in
 * words (wrong password / MAC mismatch, unsupported algorithm by OID and name, truncated or
 * corrupt data, no key, key and certificate do not match, iteration count too high). */
KVVM_API enum kvvm_err kvvm_certmat_from_pkcs12(const unsigned char *der, size_t len,
                                                const char *password, struct kvvm_bundle **out,
                                                char *why, size_t whylen);
/* PEM text: certificates and one key in any order, junk between blocks ignored. */
KVVM_API enum kvvm_err kvvm_certmat_from_pem(const char *text, size_t len,
                                             struct kvvm_bundle **out, char *why, size_t whylen);
/* A Key Vault secret value by its contentType (application/x-pkcs12: base64 PFX, empty
 * password; application/x-pem-file: PEM text; absent: sniffed). */
KVVM_API enum kvvm_err kvvm_certmat_from_secret(const char *content_type, const char *value,
                                                size_t len, struct kvvm_bundle **out,
                                                char *why, size_t whylen);

KVVM_API const struct kvvm_cert_facts *kvvm_bundle_facts(const struct kvvm_bundle *b);
/* Certificates after the leaf in issuing order (root included when present). */
KVVM_API size_t kvvm_bundle_chain_len(const struct kvvm_bundle *b);
/* The DER of certificate i: 0 the leaf, 1 to kvvm_bundle_chain_len the chain in issuing
 * order; NULL beyond. Valid while b is. */
KVVM_API const unsigned char *kvvm_bundle_cert_der(const struct kvvm_bundle *b, size_t i,
                                                   size_t *len);
/* Certificates that belong to no chain of the leaf: kept after the chain, reported. */
KVVM_API size_t kvvm_bundle_unrelated_len(const struct kvvm_bundle *b);

/* The Linux-compatible file: leaf, chain, unrelated certificates, then the key as PKCS#8
 * PEM. Holds the key: free with kvvm_free_secret(*out, *len). */
KVVM_API enum kvvm_err kvvm_bundle_to_pem(const struct kvvm_bundle *b, char **out, size_t *len);
/* What kvvm_bundle_to_pem_parts writes, in this order: the leaf, the chain in issuing order,
 * the unrelated certificates, the key as PKCS#8 (the split files of a fileLayout). */
#define KVVM_PEM_LEAF 1u
#define KVVM_PEM_CHAIN 2u
#define KVVM_PEM_UNRELATED 4u
#define KVVM_PEM_KEY 8u
/* Like kvvm_bundle_to_pem, only the parts asked for (a bundle without a chain gives "" for
 * KVVM_PEM_CHAIN alone). Free with kvvm_free_secret(*out, *len) when KVVM_PEM_KEY. */
KVVM_API enum kvvm_err kvvm_bundle_to_pem_parts(const struct kvvm_bundle *b, unsigned parts,
                                                char **out, size_t *len);
/* PKCS#12 for keyExportable: chain + key, empty password, SHA-256 MAC. Holds the key: free
 * with kvvm_free_secret. */
KVVM_API enum kvvm_err kvvm_bundle_to_pkcs12(const struct kvvm_bundle *b, unsigned char **out,
                                             size_t *len);
/* Wipes the key before freeing. NULL-safe. */
KVVM_API void kvvm_bundle_free(struct kvvm_bundle *b);
/* For a leaf with the Server Authentication usage: does the chain the bundle holds reach a
 * root in trust_file (a PEM bundle)? KVVM_OK with note "" when it does or the leaf is not
 * for Server Authentication; KVVM_OK with note naming the missing issuer (or the root not
 * trusted) when it does not; KVVM_E_NOENT when trust_file is NULL or unreadable. */
KVVM_API enum kvvm_err kvvm_certmat_chain_gap(const struct kvvm_bundle *b,
                                              const char *trust_file, char *note, size_t n);

/* The PKCS#12 reader for diagnostics, the unit tests and the benchmark: a summary of a
 * decoded file (src/certmat/certmat_p12.c). */
/* What kvvm_p12_inspect found in a file. */
struct kvvm_p12_summary {
  unsigned n_certs;
  unsigned n_keys;
  int key_cert;              /* index of the certificate the key matches (checked), -1 none */
  char key_type[8];          /* "RSA", "EC" or "" without a key */
  unsigned key_bits;
  char mac[16];              /* "SHA256", ..., or "none" */
  char mac_password[16];     /* the form that verified: "utf16", "zero-length" or "latin1" */
  char schemes[160];         /* bag encryptions seen, comma-separated, e.g. "PBES2-AES-256-CBC" */
  char friendly_name[64];    /* the key bag's friendlyName in UTF-8, "" without one */
  size_t local_key_id_len;   /* the key bag's localKeyId length, 0 without one */
};

/* Decode a DER/BER PKCS#12 like certmat_p12_read, then check the key against each
 * certificate. On KVVM_E_CERT, why holds the cause in words. */
KVVM_API enum kvvm_err kvvm_p12_inspect(const unsigned char *der, size_t len,
                                        const char *password, struct kvvm_p12_summary *s,
                                        char *why, size_t whylen);

#endif
