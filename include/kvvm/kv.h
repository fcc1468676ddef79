/* Key Vault secrets (keyvault.md §3, design.md Network): GET
 * https://<vault>/secrets/<name>[/<version>]?api-version=7.4 with a bearer token the caller
 * got from identity (kv never fetches its own), many at once with a bounded number in flight
 * over reused connections. HTTPS only; hosts limited to the Key Vault DNS suffixes.
 * Retries within one call: 429 waits for Retry-After (else exponential backoff with full
 * jitter) and holds back further requests to that vault meanwhile; 5xx, resets, timeouts and
 * garbled answers are retried a bounded number of times; 401, 403 and 404 are not retried
 * (the next pass tries again) and their words name the identity, the vault and the
 * permission needed. The one exception: a 401 for a token the vault accepted earlier in the
 * same call (it expired, or was revoked, in the middle of a long pass) gets the request
 * tried again with a new token from the caller (kvvm_kv_fetch_each's renew). */
#ifndef KVVM_KV_H
#define KVVM_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kvvm/err.h"

#define KVVM_KV_API_VERSION "7.4"
/* Requests in flight at once. Key Vault allows 4,000 GETs per vault per 10 s (400/s); at the
 * ~40 ms round trip of an in-region call, 16 in flight is about that rate, so one machine
 * alone cannot push its vault into throttling, and a pass holds at most 16 connections (and
 * pays at most 16 TLS handshakes) however many certificates it fetches. */
#define KVVM_KV_MAX_IN_FLIGHT 16
#define KVVM_KV_TIMEOUT_MS 30000
/* Tries for one secret: 5xx, resets, timeouts and garbled answers (backoff ~1, 2, 4 s)... */
#define KVVM_KV_MAX_TRIES 4
/* ... and answers of 429 (Key Vault's guidance: back off 1, 2, 4, 8, 16 s). */
#define KVVM_KV_MAX_THROTTLED 6
/* A Retry-After longer than this is cut to it: the pass must end. */
#define KVVM_KV_RETRY_AFTER_CAP_S 60

struct kvvm_kv_request {
  const char *url;       /* https://<vault>/secrets/<name>[/<version>] (settings' form) */
  const char *token;     /* bearer token for the vault's cloud (kvvm_identity_token) */
  const char *identity;  /* words naming the identity (kvvm_identity_describe), for messages */
  long timeout_ms;       /* per request; 0: KVVM_KV_TIMEOUT_MS */
};

/* A secret bundle. value is secret: kvvm_kv_secret_clear wipes it. Times are Unix seconds,
 * 0 when absent. */
struct kvvm_secret {
  char *value;           /* base64 PKCS#12 or PEM text; NULL unless the fetch succeeded */
  size_t value_len;
  char *content_type;    /* NULL when absent */
  char *id;              /* https://<vault>/secrets/<name>/<version> */
  char *version;         /* the last segment of id */
  char *kid;             /* set when the secret backs a certificate */
  bool enabled;
  bool managed;
  int64_t nbf, exp, created, updated;
};

struct kvvm_kv_result {
  enum kvvm_err err;         /* KVVM_OK: secret is whole. KVVM_E_INACTIVE: the version is
                                disabled or not yet valid (secret holds its attributes, no
                                value). Else: KVVM_E_AUTH (401/403), KVVM_E_NOTFOUND (404),
                                KVVM_E_NET (transient, after the retries), KVVM_E_CERT (not a
                                certificate's content type), KVVM_E_SETTINGS (bad URL or a
                                refused testing aid). */
  struct kvvm_secret secret;
  long status;               /* the last HTTP status, 0 if none came */
  int tries;
  char why[1536];            /* words for the status file when err != KVVM_OK: ours, then
                                Key Vault's own message (up to KVVM_KV_QUOTE_MAX) */
};

/* Fetch n secrets; results[i] answers reqs[i] (the caller clears each). Returns KVVM_OK when
 * every one succeeded, else the error of the first that did not. Failures are logged once
 * each; nothing secret is. */
KVVM_API enum kvvm_err kvvm_kv_fetch_many(const struct kvvm_kv_request *reqs, size_t n,
                                          struct kvvm_kv_result *results);
/* The same, handing each result to cb(user, i, result) as soon as request i is done (after
 * the requests that may start next have started), so the caller can install it while the
 * others are in flight; cb may clear the result. With results NULL (cb required) each result
 * exists only from its request's start to the end of its callback. */
typedef void (*kvvm_kv_done_fn)(void *user, size_t i, struct kvvm_kv_result *res);
/* A new token for the requests that share request i's, asked for when the vault refuses
 * (401) a token it accepted earlier in the call: *token a new string (the fetch wipes it)
 * and KVVM_OK, or an error and its reason, which then stand for every request still needing
 * that token. Called once per refused token however many requests shared it, between
 * requests (never from inside cb); others in flight move on meanwhile. NULL: a 401 is
 * final, as for kvvm_kv_fetch_many. */
typedef enum kvvm_err (*kvvm_kv_renew_fn)(void *user, size_t i, char **token, char *why,
                                          size_t whylen);
KVVM_API enum kvvm_err kvvm_kv_fetch_each(const struct kvvm_kv_request *reqs, size_t n,
                                          struct kvvm_kv_result *results, kvvm_kv_done_fn cb,
                                          kvvm_kv_renew_fn renew, void *user);
KVVM_API void kvvm_kv_result_clear(struct kvvm_kv_result *r);
KVVM_API void kvvm_kv_secret_clear(struct kvvm_secret *s);

/* The parts below are pure and exported for tests. */

/* How long a vault is left alone after the `throttled`-th 429 in a row for one request:
 * Retry-After (retry_after_s >= 0) as asked up to KVVM_KV_RETRY_AFTER_CAP_S, else capped
 * exponential backoff with jitter from rnd; never less than 100 ms. kvvm's fetches use it,
 * and so does the scale-set simulation (tests/stress/scaleset.c). */
KVVM_API int64_t kvvm_kv_throttle_ms(int throttled, long retry_after_s, uint64_t rnd);

/* The token audience of a Key Vault host (e.g. "https://vault.azure.net"), or NULL with the
 * reason (managed HSM hosts and other names are refused). */
KVVM_API const char *kvvm_kv_resource_for_host(const char *host, char *why, size_t whylen);
/* Split a secret URL into its host, name and version (NULL when absent; new strings),
 * refusing anything but https://<Key Vault host>/secrets/<name>[/<version>]. */
KVVM_API enum kvvm_err kvvm_kv_check_url(const char *url, char **host, char **name,
                                         char **version, char *why, size_t whylen);
/* The resource a `Bearer ... resource=` (or `scope=`) challenge asks for, as a new string;
 * refused (KVVM_E_AUTH) unless host ends in "." + that resource's host. */
KVVM_API enum kvvm_err kvvm_kv_check_challenge(const char *www_authenticate, const char *host,
                                               char **resource, char *why, size_t whylen);
/* Key Vault's own words are quoted up to this many characters: its RBAC refusal, whose
 * Action line says what is missing, runs to about 600. */
#define KVVM_KV_QUOTE_MAX 800

/* An error answer, {"error":{"code","message","innererror":{"code"}}}, quoted safely. */
struct kvvm_kv_error {
  char code[64];    /* "Forbidden"; "" when absent */
  char inner[64];   /* "ForbiddenByRbac", "AccessDenied", ...; "" when absent */
  char message[KVVM_KV_QUOTE_MAX + 16];
};

/* Read an error answer (anything else gives empty fields). Printable ASCII only (others
 * become '?'), line breaks as one space, a message that quotes token withheld, and one
 * longer than KVVM_KV_QUOTE_MAX cut after a whole word with " ... (cut)". */
KVVM_API void kvvm_kv_parse_error(const char *body, size_t len, const char *token,
                                  struct kvvm_kv_error *e);
/* Parse a SecretBundle (value may be absent: s->value NULL). KVVM_E_NET when it is not one
 * (a garbled answer). */
KVVM_API enum kvvm_err kvvm_kv_parse_bundle(const char *body, size_t len, struct kvvm_secret *s,
                                            char *why, size_t whylen);

#endif
