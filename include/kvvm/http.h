/* HTTP GET, the only user of libcurl. One multi handle for the process, so every request,
 * sequential or parallel, draws on one connection cache and reuses connections.
 * Every request has a connect timeout, a total timeout and a response size cap; TLS is
 * always verified; redirects are never followed. Key Vault requests must be https:// and
 * honour the proxy environment (HTTPS_PROXY, NO_PROXY); identity requests (IMDS, Arc) are
 * plain http:// and never go through a proxy.
 *
 * Testing aids (design.md, Network; environment only, read once, logged once as "test
 * overrides active"):
 *   KVVM_CA_FILE     trust this PEM bundle instead of the system's; it must be a regular
 *                    file owned by root and not writable by group or others, else every
 *                    request fails with the reason.
 *   KVVM_CONNECT_TO  comma-separated HOST:PORT:CONNECT-HOST:CONNECT-PORT, so that a real
 *                    vault name is served by a loopback emulator while the URL, SNI and
 *                    certificate checks stay real (libcurl's CURLOPT_CONNECT_TO). */
#ifndef KVVM_HTTP_H
#define KVVM_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include "kvvm/err.h"

enum kvvm_http_target {
  KVVM_HTTP_KEYVAULT,  /* https:// only, proxy from the environment */
  KVVM_HTTP_IDENTITY,  /* http:// only, never proxied */
};

/* Defaults used when a request leaves a field 0. */
#define KVVM_HTTP_CONNECT_TIMEOUT_MS 10000
#define KVVM_HTTP_TIMEOUT_MS 30000
/* A Key Vault secret holds at most 25 KiB (base64 inflates it by a third); a token answer is
 * a few KiB. Anything larger is not what we asked for. */
#define KVVM_HTTP_MAX_BODY (256 * 1024)

struct kvvm_http_req {
  enum kvvm_http_target target;
  const char *url;
  const char *const *headers;  /* "Name: value" strings, NULL-terminated; may be NULL.
                                  They may hold secrets: copies are wiped after use. */
  long connect_timeout_ms;     /* 0: KVVM_HTTP_CONNECT_TIMEOUT_MS */
  long timeout_ms;             /* whole request; 0: KVVM_HTTP_TIMEOUT_MS */
  size_t max_body;             /* 0: KVVM_HTTP_MAX_BODY */
};

/* How a request ended short of an HTTP answer. */
enum kvvm_http_fail {
  KVVM_HTTP_OK,         /* an HTTP answer arrived whole: see status */
  KVVM_HTTP_TRANSIENT,  /* connect failure, timeout, reset, truncated answer: worth a retry */
  KVVM_HTTP_TLS,        /* the server's certificate or name did not verify */
  KVVM_HTTP_TOO_BIG,    /* the answer passed max_body */
  KVVM_HTTP_REFUSED,    /* not sent: bad URL for the target, or a testing aid refused */
};

struct kvvm_http_resp {
  enum kvvm_http_fail fail;
  long status;              /* HTTP status when fail is KVVM_HTTP_OK, else 0 */
  char *body;               /* NUL-terminated (may hold a token or secret: wiped on free) */
  size_t len;
  char *www_authenticate;   /* first WWW-Authenticate header of the answer, or NULL */
  char *retry_after;        /* Retry-After header, or NULL */
  char error[384];          /* why fail is not KVVM_HTTP_OK, in words */
  char peer_ip[64];         /* the address that answered ("" if none) */
  long peer_port;
  long local_port;          /* our end of the connection */
};

/* Called when a started request finishes. resp is freed (and wiped) after it returns. */
typedef void kvvm_http_done_fn(void *user, const struct kvvm_http_resp *resp);

/* One request, waiting for its answer. Returns KVVM_OK whenever resp was filled, whatever
 * the outcome (see resp->fail); KVVM_E_SETTINGS when a testing aid is refused. */
KVVM_API enum kvvm_err kvvm_http_get(const struct kvvm_http_req *req,
                                     struct kvvm_http_resp *resp);
/* Start a request on the shared handle; done is called from kvvm_http_step. A request that
 * cannot be sent at all completes (with fail = KVVM_HTTP_REFUSED) in the next step. */
KVVM_API void kvvm_http_start(const struct kvvm_http_req *req, kvvm_http_done_fn *done,
                              void *user);
/* Move every started request on, waiting up to wait_ms for network activity, and call done
 * for each one that finished. Returns how many are still running. */
KVVM_API size_t kvvm_http_step(int wait_ms);
/* Wipe and free what a response holds; the struct can be reused. NULL-safe. */
KVVM_API void kvvm_http_resp_clear(struct kvvm_http_resp *resp);

/* Seconds a Retry-After value asks for (delta-seconds or an HTTP date, relative to now);
 * -1 when absent or unreadable. */
KVVM_API long kvvm_http_retry_after_s(const char *value, time_t now);
/* True when KVVM_CA_FILE or KVVM_CONNECT_TO is set: status and `kvvm status` say so. */
KVVM_API bool kvvm_http_test_overrides(void);
/* Check a KVVM_CA_FILE candidate: a regular file owned by root, not writable by group or
 * others, at most 1 MiB. On success *pem holds its content (caller frees). */
KVVM_API enum kvvm_err kvvm_http_check_ca_file(const char *path, char **pem, char *why,
                                               size_t whylen);
/* Check a KVVM_CONNECT_TO value; each entry must be HOST:PORT:CONNECT-HOST:CONNECT-PORT. */
KVVM_API enum kvvm_err kvvm_http_check_connect_to(const char *value, char *why,
                                                  size_t whylen);
/* Close every connection and free the shared handle (tests, orderly exit). */
KVVM_API void kvvm_http_shutdown(void);

#endif
