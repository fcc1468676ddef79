/* SHA-256 one block at a time, for the password-based key derivations that dominate decoding a
 * PFX (about 10,000 compressions per Key Vault certificate). mbedTLS 2.28's SHA-256 is
 * portable C; x86-64 CPUs with the SHA extensions (most Azure VM sizes) compress a block
 * several times faster with them, so kvvm_sha256_compress uses them when the CPU has them. */
#ifndef KVVM_SHA256_H
#define KVVM_SHA256_H

#include <stdbool.h>
#include <stdint.h>

#include "kvvm/err.h"

#define KVVM_SHA256_BLOCK 64
#define KVVM_SHA256_SIZE 32

/* state = compress(state, block): the CPU's SHA instructions when it has them, else mbedTLS. */
KVVM_API void kvvm_sha256_compress(uint32_t state[8], const unsigned char block[KVVM_SHA256_BLOCK]);
/* The same through mbedTLS alone (tests compare the two). */
KVVM_API void kvvm_sha256_compress_portable(uint32_t state[8], const unsigned char block[KVVM_SHA256_BLOCK]);
/* Up to this many lanes go through the SHA instructions together. */
#define KVVM_SHA256_LANES 3
/* For each of n independent lanes (any n): blk[l][0..31] = the digest of
 * compress(init[l], blk[l]), one step of a derivation's chain, whose next message is the
 * last digest. The SHA instructions' latency, not their throughput, bounds one chain, so
 * lanes stepped together cost little more than one; without them, one after another. */
KVVM_API void kvvm_sha256_step_lanes(unsigned n, const uint32_t *const init[],
                                     unsigned char *const blk[]);
/* The same through mbedTLS alone (tests compare the two). */
KVVM_API void kvvm_sha256_step_lanes_portable(unsigned n, const uint32_t *const init[],
                                              unsigned char *const blk[]);
/* Whether this CPU has the SHA extensions kvvm_sha256_compress uses. */
KVVM_API bool kvvm_sha256_has_cpu(void);

/* state = SHA-256's initial value. */
KVVM_API void kvvm_sha256_init(uint32_t state[8]);
/* block[32..63] = SHA-256's padding for a message of total bytes (total % 64 == 32) whose
 * last 32 bytes the caller puts in block[0..31]. Each PBKDF2-HMAC-SHA256 and PKCS#12 KDF
 * iteration hashes such a block, so the padding is written once and only the 32 bytes change. */
KVVM_API void kvvm_sha256_pad32(unsigned char block[KVVM_SHA256_BLOCK], uint64_t total);
/* out = the state as a digest (big-endian words); out may be the block being hashed. */
KVVM_API void kvvm_sha256_digest(const uint32_t state[8], unsigned char out[KVVM_SHA256_SIZE]);

#endif
