/* PKCS#12's primitives, below certmat (which reads and writes whole files with them): the
 * two password-based key derivations and RC2, reached by the unit tests and the benchmark
 * through the shared object. No mbedTLS type appears here. */
#ifndef KVVM_P12_H
#define KVVM_P12_H

#include <stddef.h>
#include <stdint.h>
#include "kvvm/err.h"

/* PBKDF2 (RFC 8018) with HMAC over md ("SHA1", "SHA224", "SHA256", "SHA384", "SHA512"). */
KVVM_API enum kvvm_err kvvm_p12_pbkdf2(const char *md, const void *pw, size_t pwlen,
                                       const void *salt, size_t saltlen, unsigned iter,
                                       unsigned char *out, size_t outlen);
/* The PKCS#12 key derivation (RFC 7292 Appendix B.2) on a UTF-8 password, converted to a
 * BMPString with its two-byte terminator; id 1 key, 2 IV, 3 MAC key. */
KVVM_API enum kvvm_err kvvm_p12_kdf(const char *md, const char *pw_utf8, const void *salt,
                                    size_t saltlen, unsigned char id, unsigned iter,
                                    unsigned char *out, size_t outlen);

/* SHA-256 derivations made together, as the PKCS#12 reader makes a file's (their hash
 * chains interleaved): kdf picks the PKCS#12 KDF over pw as a UTF-8 password (converted as
 * kvvm_p12_kdf does) with id, else PBKDF2-HMAC-SHA256 over pw's bytes; out_len 1..32.
 * portable: compress with mbedTLS alone, as on a CPU without the SHA extensions. At most
 * KVVM_P12_LANES derivations; KVVM_E_USAGE otherwise. */
#define KVVM_P12_LANES 4
struct kvvm_p12_derivation {
  int kdf;
  unsigned char id;
  const char *pw;
  size_t pw_len;
  const void *salt;
  size_t salt_len;
  unsigned iter;
  unsigned char *out;
  size_t out_len;
};
KVVM_API enum kvvm_err kvvm_p12_derive_sha256(const struct kvvm_p12_derivation *d, size_t n,
                                              int portable);

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
