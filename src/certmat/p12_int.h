/* Between the PKCS#12 reader's files: certmat_p12.c (the container walk and the MAC),
 * certmat_p12_plan.c (the look ahead for the bags' derivations), p12_pbe.c (bag
 * decryption), p12_kdf.c (password forms and key derivations), p12_lanes.c (SHA-256
 * derivations made together) and p12_asn1.c (messages, limits and the BER reader). */
#ifndef KVVM_P12_INT_H
#define KVVM_P12_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <mbedtls/asn1.h>
#include <mbedtls/md.h>

#include "kvvm/err.h"
#include "kvvm/p12.h"
#include "kvvm/sha256.h"

/* Iteration counts are chosen by whoever made the file, and each one is CPU we spend: a
 * "PFX bomb" asks for billions. One derivation may ask for at most P12_MAX_ITER (OpenSSL 3
 * uses 2048, Java 10000, NSS 600000); a whole file for at most P12_MAX_ITER_TOTAL. */
#define P12_MAX_ITER 1000000UL
#define P12_MAX_ITER_TOTAL 10000000UL

/* A SHA-256 derivation planned before the walk needs it (p12_lanes.c): the PKCS#12 KDF
 * over a BMPString form of the password, or PBKDF2-HMAC-SHA256 over its bytes, of one
 * hash's output at most. Its result is a function of these fields alone, so the walk takes
 * it only when they all match what it would derive. */
#define P12_MAX_JOBS KVVM_P12_LANES
#define P12_JOB_SALT 64
struct p12_job {
  bool kdf;                  /* the PKCS#12 KDF (with id), else PBKDF2 */
  unsigned char id;
  unsigned char *pw;         /* a copy, wiped on free */
  size_t pw_len;
  unsigned char salt[P12_JOB_SALT];
  size_t salt_len;
  unsigned long iter;
  size_t out_len;
  unsigned char out[KVVM_SHA256_SIZE];
};

/* One decode: the password in the forms the derivations take, the work spent, the position
 * for messages and where the message goes. */
struct p12_ctx {
  const unsigned char *pw;   /* as given (UTF-8): PBKDF2 takes these bytes */
  size_t pw_len;
  unsigned char *bmp;        /* BMPString form for the PKCS#12 KDF; the MAC check picks it */
  size_t bmp_len;
  unsigned long iter_spent;
  char where[64];            /* "ContentInfo 2, SafeBag 1"; "" at the top */
  char *why;
  size_t whylen;
  bool quiet;                /* a look ahead: failures are the walk's to report */
  struct p12_job jobs[P12_MAX_JOBS];   /* derived before the walk, all at once */
  size_t n_jobs;
  bool jobs_ready;           /* derived: p12_job_take may answer */
};

/* A DER encoding to parse: the input itself, or a normalised copy of BER input. */
struct p12_view {
  unsigned char *p;
  size_t len;
  unsigned char *owned;      /* the copy, wiped on free: it may hold key material */
};

/* p12_asn1.c. Each of these writes why, logs it once and returns KVVM_E_CERT. */
/* "wrong password or corrupt file (cannot decrypt <where>)" */
enum kvvm_err p12_undecryptable(struct p12_ctx *c);
enum kvvm_err p12_fail(struct p12_ctx *c, const char *fmt, ...)
    __attribute__((format(gnu_printf, 2, 3)));
/* "truncated or corrupt PKCS#12 at <where>, <what>" */
enum kvvm_err p12_corrupt(struct p12_ctx *c, const char *what);
/* "unsupported <kind> <name> (OID 1.2.840...)" */
enum kvvm_err p12_unsupported(struct p12_ctx *c, const char *kind, const mbedtls_asn1_buf *oid);
/* Read an iteration count INTEGER (DEFAULT 1 when absent and optional) and charge it. */
enum kvvm_err p12_get_iter(struct p12_ctx *c, unsigned char **p, const unsigned char *end,
                           bool optional, unsigned long *iter);
/* An OID known to be a digest (SHA-1..SHA-512) or hmacWith one; MBEDTLS_MD_NONE otherwise. */
mbedtls_md_type_t p12_md_of(const mbedtls_asn1_buf *oid, bool hmac);
/* The DER view of the single element spanning in[0..len): BER indefinite lengths and
 * constructed OCTET STRINGs (NSS, some Java) are rewritten as DER in a copy. False when
 * in is not exactly one well-formed element; the caller words the error (corrupt, or a
 * wrong password when in was just decrypted). */
bool p12_der_view(const unsigned char *in, size_t len, struct p12_view *v);
void p12_view_free(struct p12_view *v);

/* p12_kdf.c */
/* UTF-8 to UTF-16BE with the two-byte terminator; false if s is not UTF-8. */
bool p12_utf8_to_bmp(const unsigned char *s, size_t len, unsigned char **bmp, size_t *bmp_len);
/* Each byte widened to two, as OpenSSL before 1.1.0 and mbedTLS do (Latin-1). */
void p12_latin1_to_bmp(const unsigned char *s, size_t len, unsigned char **bmp,
                       size_t *bmp_len);
enum kvvm_err p12_kdf(mbedtls_md_type_t md, const unsigned char *bmp, size_t bmp_len,
                      const unsigned char *salt, size_t salt_len, unsigned char id,
                      unsigned long iter, unsigned char *out, size_t out_len);
enum kvvm_err p12_pbkdf2(mbedtls_md_type_t md, const unsigned char *pw, size_t pw_len,
                         const unsigned char *salt, size_t salt_len, unsigned long iter,
                         unsigned char *out, size_t out_len);

/* p12_lanes.c. Plan a derivation (false when it does not fit a job: not SHA-256, a long
 * salt or output, no room). */
bool p12_job_add(struct p12_ctx *c, bool kdf, unsigned char id, const unsigned char *pw,
                 size_t pw_len, const unsigned char *salt, size_t salt_len, unsigned long iter,
                 size_t out_len);
/* Derive every planned job, their hash chains interleaved (kvvm_sha256_step_lanes). */
enum kvvm_err p12_jobs_run(struct p12_ctx *c);
/* out = a planned job's result when one matches exactly; false otherwise. */
bool p12_job_take(const struct p12_ctx *c, bool kdf, unsigned char id, const unsigned char *pw,
                  size_t pw_len, const unsigned char *salt, size_t salt_len,
                  unsigned long iter, unsigned char *out, size_t out_len);
void p12_jobs_free(struct p12_ctx *c);
/* certmat_p12_plan.c: plan in c the bag derivations a walk of the AuthenticatedSafe
 * safe[0..len) will make (PBES2 with HMAC-SHA256 only). */
void certmat_p12_plan(struct p12_ctx *c, const unsigned char *safe, size_t len);
/* p12_kdf.c: HMAC-SHA256's keyed states as raw SHA-256 states (inner, outer). */
void p12_sha256_pads(uint32_t inner[8], uint32_t outer[8], const unsigned char *pw,
                     size_t pw_len);

/* p12_pbe.c: decrypt in[0..len) under the AlgorithmIdentifier (oid, params); *out (free
 * with kvvm_free_secret(*out, *out_len)) holds the plaintext, padding removed. *scheme
 * names the encryption for diagnostics. */
enum kvvm_err p12_decrypt(struct p12_ctx *c, const mbedtls_asn1_buf *oid,
                          const mbedtls_asn1_buf *params, const unsigned char *in, size_t len,
                          unsigned char **out, size_t *out_len, const char **scheme);
/* Plan in c the key derivation p12_decrypt would make for (oid, params) when it is a
 * PBES2 with HMAC-SHA256; scratch (quiet) reads the parameters and is charged their
 * iterations. False when nothing was planned. */
bool p12_plan_decrypt(struct p12_ctx *scratch, struct p12_ctx *c, const mbedtls_asn1_buf *oid,
                      const mbedtls_asn1_buf *params);

#endif
