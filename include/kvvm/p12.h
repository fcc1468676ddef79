/* The PKCS#12 reader's parts that the unit tests, the benchmark and diagnostics reach
 * through the shared object: a summary of a decoded file, the two password-based key
 * derivations and RC2. The reader itself is certmat_p12_read (src/certmat_int.h); its own
 * entry point is kvvm_certmat_from_pkcs12. No mbedTLS type appears here. */
#ifndef KVVM_P12_H
#define KVVM_P12_H

#include <stddef.h>
#include <stdint.h>
#include "kvvm/err.h"

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

/* PBKDF2 (RFC 8018) with HMAC over md ("SHA1", "SHA224", "SHA256", "SHA384", "SHA512"). */
KVVM_API enum kvvm_err kvvm_p12_pbkdf2(const char *md, const void *pw, size_t pwlen,
                                       const void *salt, size_t saltlen, unsigned iter,
                                       unsigned char *out, size_t outlen);
/* The PKCS#12 key derivation (RFC 7292 Appendix B.2) on a UTF-8 password, converted to a
 * BMPString with its two-byte terminator; id 1 key, 2 IV, 3 MAC key. */
KVVM_API enum kvvm_err kvvm_p12_kdf(const char *md, const char *pw_utf8, const void *salt,
                                    size_t saltlen, unsigned char id, unsigned iter,
                                    unsigned char *out, size_t outlen);

/* RC2 (RFC 2268), decryption only: PKCS#12 files still carry RC2-40 certificate bags. */
struct kvvm_rc2 {
  uint16_t k[64];            /* the expanded key */
};
/* key: 1..128 bytes; bits: the effective key length, 1..1024. */
KVVM_API void kvvm_rc2_setkey(struct kvvm_rc2 *c, const unsigned char *key, size_t len,
                              unsigned bits);
KVVM_API void kvvm_rc2_decrypt_block(const struct kvvm_rc2 *c, const unsigned char in[8],
                                     unsigned char out[8]);
/* CBC over len bytes (a multiple of 8); iv is updated, in and out may be the same. */
KVVM_API void kvvm_rc2_cbc_decrypt(const struct kvvm_rc2 *c, unsigned char iv[8],
                                   const unsigned char *in, size_t len, unsigned char *out);
/* Wipes the expanded key. */
KVVM_API void kvvm_rc2_wipe(struct kvvm_rc2 *c);

#endif
