/* The SHA-256 derivations of one PFX, derived together. A Key Vault or OpenSSL 3 file asks
 * for three (PBKDF2 for the key bag and for the certificate bag, the PKCS#12 KDF for the
 * MAC), each a chain of about 2,000 or 4,000 compressions where every one waits for the
 * last. Their chains are independent, so each step hashes one block of every chain still
 * running through kvvm_sha256_step_lanes, which costs little more than one.
 *
 * The first step of each (the salt's blocks) is the single-chain code's, with one
 * iteration; the lanes do the rest, with the same one-block steps p12_kdf.c takes. */
#include <string.h>

#include <mbedtls/platform_util.h>

#include "kvvm/mem.h"
#include "kvvm/p12.h"
#include "kvvm/sha256.h"
#include "certmat/p12_int.h"

/* One chain in flight. A step starts from init[phase] (PBKDF2 alternates HMAC's inner and
 * outer keyed states; the KDF starts each from SHA-256's IV) and hashes block, whose first
 * 32 bytes become the digest. */
struct lane {
  uint32_t init[2][8];
  unsigned period, phase;
  unsigned long steps;       /* compressions left */
  unsigned char block[KVVM_SHA256_BLOCK];
  unsigned char t[KVVM_SHA256_SIZE];   /* PBKDF2: U_1 ^ U_2 ^ ... so far */
};

bool p12_job_add(struct p12_ctx *c, bool kdf, unsigned char id, const unsigned char *pw,
                 size_t pw_len, const unsigned char *salt, size_t salt_len, unsigned long iter,
                 size_t out_len)
{
  if (c->n_jobs >= P12_MAX_JOBS || salt_len > P12_JOB_SALT || out_len > KVVM_SHA256_SIZE ||
      out_len == 0 || iter == 0)
    return false;
  struct p12_job *j = &c->jobs[c->n_jobs++];
  memset(j, 0, sizeof(*j));
  j->kdf = kdf;
  j->id = id;
  j->pw = kvvm_xmalloc(pw_len ? pw_len : 1);
  memcpy(j->pw, pw, pw_len);
  j->pw_len = pw_len;
  memcpy(j->salt, salt, salt_len);
  j->salt_len = salt_len;
  j->iter = iter;
  j->out_len = out_len;
  return true;
}

/* The lane after the first iteration, whose result is also the whole answer when iter is 1. */
static enum kvvm_err lane_start(const struct p12_job *j, struct lane *l)
{
  unsigned char u[KVVM_SHA256_SIZE];
  enum kvvm_err err;
  memset(l, 0, sizeof(*l));
  if (j->kdf) {
    err = p12_kdf(MBEDTLS_MD_SHA256, j->pw, j->pw_len, j->salt, j->salt_len, j->id, 1, u,
                  sizeof(u));
    kvvm_sha256_init(l->init[0]);
    l->period = 1;
    l->steps = j->iter - 1;
    kvvm_sha256_pad32(l->block, KVVM_SHA256_SIZE);
  } else {
    err = p12_pbkdf2(MBEDTLS_MD_SHA256, j->pw, j->pw_len, j->salt, j->salt_len, 1, u,
                     sizeof(u));
    p12_sha256_pads(l->init[0], l->init[1], j->pw, j->pw_len);
    l->period = 2;
    l->steps = 2 * (j->iter - 1);
    kvvm_sha256_pad32(l->block, KVVM_SHA256_BLOCK + KVVM_SHA256_SIZE);
    memcpy(l->t, u, sizeof(u));
  }
  memcpy(l->block, u, sizeof(u));
  mbedtls_platform_zeroize(u, sizeof(u));
  return err;
}

static void lane_step_done(struct lane *l)
{
  l->steps--;
  if (++l->phase < l->period)
    return;
  l->phase = 0;
  if (l->period == 2)   /* an HMAC done: U_j */
    for (size_t b = 0; b < KVVM_SHA256_SIZE; b++)
      l->t[b] ^= l->block[b];
}

typedef void step_lanes_fn(unsigned n, const uint32_t *const init[],
                          unsigned char *const blk[]);

/* Step every running lane at once until none is left. */
static void lanes_run(struct lane *l, size_t n, step_lanes_fn *step)
{
  for (;;) {
    const uint32_t *init[P12_MAX_JOBS];
    unsigned char *blk[P12_MAX_JOBS];
    struct lane *run[P12_MAX_JOBS];
    unsigned k = 0;
    for (size_t i = 0; i < n; i++) {
      if (l[i].steps == 0)
        continue;
      init[k] = l[i].init[l[i].phase];
      blk[k] = l[i].block;
      run[k++] = &l[i];
    }
    if (k == 0)
      return;
    step(k, init, blk);
    for (unsigned i = 0; i < k; i++)
      lane_step_done(run[i]);
  }
}

static enum kvvm_err jobs_run(struct p12_ctx *c, step_lanes_fn *step)
{
  struct lane lanes[P12_MAX_JOBS];
  enum kvvm_err err = KVVM_OK;
  for (size_t i = 0; i < c->n_jobs && err == KVVM_OK; i++)
    err = lane_start(&c->jobs[i], &lanes[i]);
  if (err == KVVM_OK)
    lanes_run(lanes, c->n_jobs, step);
  for (size_t i = 0; i < c->n_jobs && err == KVVM_OK; i++)
    memcpy(c->jobs[i].out, c->jobs[i].kdf ? lanes[i].block : lanes[i].t, c->jobs[i].out_len);
  mbedtls_platform_zeroize(lanes, sizeof(lanes));
  c->jobs_ready = err == KVVM_OK;
  if (err != KVVM_OK)
    p12_jobs_free(c);   /* the walk derives each one itself */
  return err;
}

enum kvvm_err p12_jobs_run(struct p12_ctx *c)
{
  return jobs_run(c, kvvm_sha256_step_lanes);
}

bool p12_job_take(const struct p12_ctx *c, bool kdf, unsigned char id, const unsigned char *pw,
                  size_t pw_len, const unsigned char *salt, size_t salt_len,
                  unsigned long iter, unsigned char *out, size_t out_len)
{
  for (size_t i = 0; c->jobs_ready && i < c->n_jobs; i++) {
    const struct p12_job *j = &c->jobs[i];
    if (j->kdf == kdf && (!kdf || j->id == id) && j->pw_len == pw_len &&
        memcmp(j->pw, pw, pw_len) == 0 && j->salt_len == salt_len &&
        memcmp(j->salt, salt, salt_len) == 0 && j->iter == iter && j->out_len == out_len) {
      memcpy(out, j->out, out_len);
      return true;
    }
  }
  return false;
}

void p12_jobs_free(struct p12_ctx *c)
{
  for (size_t i = 0; i < c->n_jobs; i++)
    kvvm_free_secret(c->jobs[i].pw, c->jobs[i].pw_len ? c->jobs[i].pw_len : 1);
  mbedtls_platform_zeroize(c->jobs, sizeof(c->jobs));
  c->n_jobs = 0;
  c->jobs_ready = false;
}

/* One derivation of kvvm_p12_derive_sha256 planned in c; false when it cannot be. */
static bool add_derivation(struct p12_ctx *c, const struct kvvm_p12_derivation *d)
{
  const unsigned char *pw = (const unsigned char *)d->pw;
  unsigned char *bmp;
  size_t bmp_len;
  if (!d->kdf)
    return p12_job_add(c, false, 0, pw, d->pw_len, d->salt, d->salt_len, d->iter,
                       d->out_len);
  if (!p12_utf8_to_bmp(pw, d->pw_len, &bmp, &bmp_len))
    return false;
  bool ok = p12_job_add(c, true, d->id, bmp, bmp_len, d->salt, d->salt_len, d->iter,
                        d->out_len);
  kvvm_free_secret(bmp, bmp_len);
  return ok;
}

enum kvvm_err kvvm_p12_derive_sha256(const struct kvvm_p12_derivation *d, size_t n,
                                     int portable)
{
  struct p12_ctx c;
  enum kvvm_err err = n <= KVVM_P12_LANES ? KVVM_OK : KVVM_E_USAGE;
  memset(&c, 0, sizeof(c));
  for (size_t i = 0; i < n && err == KVVM_OK; i++)
    if (!add_derivation(&c, &d[i]))
      err = KVVM_E_USAGE;
  if (err == KVVM_OK)
    err = jobs_run(&c, portable ? kvvm_sha256_step_lanes_portable : kvvm_sha256_step_lanes);
  for (size_t i = 0; i < n && err == KVVM_OK; i++)
    memcpy(d[i].out, c.jobs[i].out, d[i].out_len);
  p12_jobs_free(&c);
  return err;
}
