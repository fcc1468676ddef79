/* Managed identity tokens (keyvault.md §4, design.md Network). The source, in order:
 *   msiEndpoint from settings: IMDS, or a loopback endpoint on any port that speaks the IMDS
 *     protocol (api-version 2018-02-01) and forwards msiClientId;
 *   IDENTITY_ENDPOINT from the environment: the Azure Arc agent (api-version 2020-06-01,
 *     system-assigned identity only);
 *   IMDS at http://169.254.169.254/metadata/identity/oauth2/token.
 * Requests carry `Metadata: true` and the resource of the vault's cloud; msiClientId (or a
 * certificate's authenticationOverride.msiClientId) goes out as client_id (a GUID) or
 * msi_res_id (an ARM resource id). A loopback endpoint that answers
 * 401 with `WWW-Authenticate: Basic realm=<path>` (Arc) gets the content of that file, after
 * the checks of identity_arc_linux.c. 404, 410 (for at least 70 s), 429, 5xx and network
 * failures are retried with exponential backoff; other answers fail with the service's
 * words quoted. Tokens are cached per source, identity and resource, and fetched again
 * KVVM_IDENTITY_REFRESH_S before they expire. */
#ifndef KVVM_IDENTITY_H
#define KVVM_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include "kvvm/err.h"
#include "kvvm/settings.h"

#define KVVM_IDENTITY_REFRESH_S 300
/* Largest Arc key file accepted (the Azure SDKs' limit). */
#define KVVM_ARC_KEY_MAX 4096

/* A bearer token for resource (e.g. https://vault.azure.net), from the cache or the source
 * above, for the identity certificate cert uses: its authenticationOverride, else (and with
 * cert NULL) authenticationSettings' msiClientId. *token is a copy: the caller wipes it
 * (kvvm_free_secret(t, strlen(t))).
 * Errors: KVVM_E_NET (the source stayed unavailable through the retries), KVVM_E_AUTH (it
 * refused: no such identity, bad request, Arc key checks failed), KVVM_E_SETTINGS
 * (IDENTITY_ENDPOINT unusable, or a client id given for Arc: the words name the key that gave
 * it, so an override is that certificate's error only). The reason is logged once and
 * written into why. */
KVVM_API enum kvvm_err kvvm_identity_token(const struct kvvm_config *cfg,
                                           const struct kvvm_cert_cfg *cert,
                                           const char *resource, char **token, char *why,
                                           size_t whylen);
/* Words naming the identity the same choice selects, for messages: "the system-assigned
 * identity", "the user-assigned identity with client id <guid>", ... Distinct identities
 * get distinct words. */
KVVM_API void kvvm_identity_describe(const struct kvvm_config *cfg,
                                     const struct kvvm_cert_cfg *cert, char *buf, size_t n);
/* Wipe and drop every cached token (settings changed, orderly exit, tests). */
KVVM_API void kvvm_identity_forget(void);

/* The Arc agent's tokens folder: /var/opt/azcmagent/tokens on Linux,
 * %ProgramData%\AzureConnectedMachineAgent\Tokens on Windows, or the testing aid
 * KVVM_ARC_TOKENS_DIR (environment only; logged once as a test override) so tests can serve
 * realm files from a temporary folder. */
KVVM_API const char *kvvm_identity_arc_tokens_dir(void);

/* The parts below are pure and exported for tests. */

/* Parse a token answer: access_token (printable, for a header), expires_on or expires_in as
 * strings or numbers (expires_on preferred; expires_in counts from now). */
KVVM_API enum kvvm_err kvvm_identity_parse_token(const char *body, size_t len, time_t now,
                                                 char **token, time_t *expires_on, char *why,
                                                 size_t whylen);
/* The path of a `Basic realm=<path>` challenge (quoted or not) as a new string, or NULL. */
KVVM_API char *kvvm_identity_parse_realm(const char *www_authenticate);
/* Read the Arc key file a realm names: its resolved path inside tokens_dir, ending in .key,
 * opened without following a link, a regular file owned by root or himds (user or group),
 * 1..KVVM_ARC_KEY_MAX bytes (Windows: directly inside tokens_dir as Windows resolves both,
 * not a reparse point; the folder's ACL stands for the owner check). *key is secret: wipe it (kvvm_free_secret(key, len)). */
KVVM_API enum kvvm_err kvvm_identity_arc_read_key(const char *realm_path, const char *tokens_dir,
                                                  char **key, size_t *len, char *why,
                                                  size_t whylen);
/* True when every socket listening on ip:port (or the wildcard address on port) belongs to
 * root or the himds user (Windows: to the himds service's process): any local user could
 * otherwise stand up a fake agent and collect the key. */
KVVM_API bool kvvm_identity_arc_listener_ok(const char *ip, long port, char *why, size_t whylen);

#endif
