/* Vault URLs, the managed identity endpoint and the client id: what each may be, and the
 * one canonical form it is turned into. A vault URL decides the token audience, and an
 * identity endpoint receives the VM's identity, so both are checked closely. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kvvm/cloud.h"
#include "kvvm/mem.h"
#include "settings/settings_int.h"

#define ARC_EXAMPLE "http://localhost:40342/metadata/identity"
#define ARM_SEGS 9

/* Blanks around a value dropped: the documented CLI examples put spaces inside the quotes. */
static char *trim_dup(const char *s)
{
  while (isspace((unsigned char)*s))
    s++;
  size_t n = strlen(s);
  while (n && isspace((unsigned char)s[n - 1]))
    n--;
  return kvvm_xasprintf("%.*s", (int)n, s);
}

static void lower(char *s)
{
  for (; *s; s++)
    *s = (char)tolower((unsigned char)*s);
}

static bool all_of(const char *s, const char *set)
{
  return strspn(s, set) == strlen(s);
}

/* Split s in place at '/'. Returns the count, or max + 1 when there are more. */
static size_t split(char *s, char **seg, size_t max)
{
  size_t n = 0;
  for (;;) {
    if (n == max)
      return max + 1;
    seg[n++] = s;
    char *e = strchr(s, '/');
    if (!e)
      return n;
    *e = '\0';
    s = e + 1;
  }
}

static enum kvvm_err url_scheme(struct sctx *c, const char *path, const char *q, const char *u,
                                const char **rest)
{
  if (strncasecmp(u, "https://", 8) == 0) {
    *rest = u + 8;
    return KVVM_OK;
  }
  if (!*u)
    return settings_fail(c, path, "is empty; expected a secret URL such as %s",
                         SETTINGS_EXAMPLE_URL);
  if (strncasecmp(u, "http://", 7) == 0)
    return settings_fail(c, path, "%s uses http://; Key Vault is reached over HTTPS only: "
                         "expected a URL such as %s", q, SETTINGS_EXAMPLE_URL);
  return settings_fail(c, path, "%s is not an https:// URL; expected a secret URL such as %s",
                       q, SETTINGS_EXAMPLE_URL);
}

/* auth becomes the lower-case host: user information refused, port 443 dropped. */
static enum kvvm_err url_authority(struct sctx *c, const char *path, const char *q, char *auth)
{
  char *colon = strrchr(auth, ':');
  char qh[SETTINGS_QUOTE_MAX];
  if (!*auth)
    return settings_fail(c, path, "%s has no host; expected a URL such as %s", q,
                         SETTINGS_EXAMPLE_URL);
  if (strchr(auth, '@'))
    return settings_fail(c, path, "%s has user information before the host; expected a URL "
                         "such as %s", q, SETTINGS_EXAMPLE_URL);
  if (colon && strcmp(colon + 1, "443") != 0)
    return settings_fail(c, path, "%s names port %s; Key Vault is served on port 443 only", q,
                         settings_quote(colon + 1, qh, sizeof qh));
  if (colon)
    *colon = '\0';
  lower(auth);
  if (!all_of(auth, "abcdefghijklmnopqrstuvwxyz0123456789.-"))
    return settings_fail(c, path, "%s: host %s is not a DNS name", q,
                         settings_quote(auth, qh, sizeof qh));
  return KVVM_OK;
}

/* Key Vault's rule: 3-24 letters, digits and hyphens, starting with a letter. */
static bool vault_name_ok(const char *s, size_t n)
{
  if (n < 3 || n > 24 || !isalpha((unsigned char)s[0]))
    return false;
  return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") >= n;
}

static enum kvvm_err vault_host(struct sctx *c, const char *path, const char *host,
                                struct kvvm_cert_cfg *cert)
{
  char qh[SETTINGS_QUOTE_MAX];
  settings_quote(host, qh, sizeof qh);
  if (kvvm_cloud_is_hsm(host))
    return settings_fail(c, path, "host %s is a managed HSM: a managed HSM holds keys, not "
                         "secrets or certificates; use the secret URL of a Key Vault "
                         "(<vault>.vault.azure.net)", qh);
  size_t n = 0;
  const char *resource = kvvm_cloud_resource(host, &n);
  if (resource) {
    if (!vault_name_ok(host, n))
      return settings_fail(c, path, "host %s does not start with a vault name (one DNS label "
                           "of 3-24 letters, digits and hyphens, starting with a letter)", qh);
    cert->vault_host = kvvm_xstrdup(host);
    cert->vault_name = kvvm_xasprintf("%.*s", (int)n, host);
    cert->resource = kvvm_xstrdup(resource);
    return KVVM_OK;
  }
  return settings_fail(c, path, "host %s is not a Key Vault host; expected a name ending in "
                       KVVM_CLOUD_SUFFIXES, qh);
}

static bool secret_name_ok(const char *s)
{
  size_t n = strlen(s);
  return n >= 1 && n <= 127 &&
         all_of(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");
}

static enum kvvm_err url_collection(struct sctx *c, const char *path, const char *q,
                                    const struct kvvm_cert_cfg *cert, char **seg, size_t n)
{
  const char *name = n >= 2 && *seg[1] ? seg[1] : "<name>";
  if (strcasecmp(seg[0], "certificates") == 0)
    return settings_fail(c, path, "%s points at /certificates/: the certificate object lacks "
                         "the private key; use the secret URL https://%s/secrets/%s instead",
                         q, cert->vault_host, name);
  if (strcasecmp(seg[0], "keys") == 0)
    return settings_fail(c, path, "%s points at /keys/: a key holds no certificate; use the "
                         "secret URL https://%s/secrets/%s instead", q, cert->vault_host, name);
  if (strcasecmp(seg[0], "secrets") != 0 || n > 3 || (n >= 2 && !*seg[1]) ||
      (n == 3 && !*seg[2]))
    return settings_fail(c, path, "%s: the path is not /secrets/<name>[/<version>]", q);
  if (n == 1)
    return settings_fail(c, path, "%s names no secret; expected https://%s/secrets/<name>", q,
                         cert->vault_host);
  return KVVM_OK;
}

#define EXAMPLE_VERSION "0123456789abcdef0123456789abcdef"

static bool version_id_ok(const char *s)
{
  return strlen(s) == KVVM_SECRET_VERSION_LEN &&
         strspn(s, "0123456789abcdefABCDEF") == KVVM_SECRET_VERSION_LEN;
}

static enum kvvm_err url_names(struct sctx *c, const char *path, char **seg, size_t n,
                               struct kvvm_cert_cfg *cert)
{
  char qn[SETTINGS_QUOTE_MAX];
  if (!secret_name_ok(seg[1]))
    return settings_fail(c, path, "secret name %s may hold only letters, digits and hyphens "
                         "(1-127 of them)", settings_quote(seg[1], qn, sizeof qn));
  if (n == 3 && !version_id_ok(seg[2]))
    return settings_fail(c, path, "version %s is not a Key Vault version id (32 hexadecimal "
                         "digits, as in .../secrets/%s/%s)", settings_quote(seg[2], qn, sizeof qn),
                         seg[1], EXAMPLE_VERSION);
  cert->secret_name = kvvm_xstrdup(seg[1]);
  cert->version = n == 3 ? kvvm_xstrdup(seg[2]) : NULL;
  for (char *p = cert->version; p && *p; p++)
    *p = (char)tolower((unsigned char)*p);
  return KVVM_OK;
}

/* rest starts at the path: a query or fragment is dropped, trailing slashes too. */
static enum kvvm_err url_path(struct sctx *c, const char *path, const char *q,
                              const char *rest, struct kvvm_cert_cfg *cert)
{
  char *p = kvvm_xstrdup(rest), *seg[4];
  char qx[SETTINGS_QUOTE_MAX];
  enum kvvm_err rc = KVVM_E_SETTINGS;
  size_t cut = strcspn(p, "?#"), n = cut;
  if (p[cut])
    settings_warn(c, path, "%s: dropped %s after the path (Key Vault URLs take no query here)",
                  q, settings_quote(p + cut, qx, sizeof qx));
  while (n && p[n - 1] == '/')
    n--;
  p[n] = '\0';
  if (!*p) {
    rc = settings_fail(c, path, "%s has no path; expected https://%s/secrets/<name>", q,
                       cert->vault_host);
    goto out;
  }
  size_t ns = split(p + 1, seg, 3);
  if ((rc = url_collection(c, path, q, cert, seg, ns)) != KVVM_OK)
    goto out;
  rc = url_names(c, path, seg, ns, cert);
out:
  free(p);
  return rc;
}

enum kvvm_err settings_url(struct sctx *c, const char *path, const char *raw,
                           struct kvvm_cert_cfg *cert)
{
  char q[SETTINGS_QUOTE_MAX];
  char *u = trim_dup(raw), *host = NULL;
  const char *rest = NULL;
  enum kvvm_err rc;
  settings_quote(raw, q, sizeof q);
  if ((rc = url_scheme(c, path, q, u, &rest)) != KVVM_OK)
    goto out;
  size_t n = strcspn(rest, "/?#");
  host = kvvm_xasprintf("%.*s", (int)n, rest);
  if ((rc = url_authority(c, path, q, host)) != KVVM_OK)
    goto out;
  if ((rc = vault_host(c, path, host, cert)) != KVVM_OK)
    goto out;
  if ((rc = url_path(c, path, q, rest + n, cert)) != KVVM_OK)
    goto out;
  cert->url = kvvm_xasprintf("https://%s/secrets/%s%s%s", host, cert->secret_name,
                             cert->version ? "/" : "", cert->version ? cert->version : "");
out:
  free(host);
  free(u);
  return rc;
}

static enum kvvm_err msi_scheme(struct sctx *c, const char *path, const char *q, const char *u)
{
  if (strncasecmp(u, "http://", 7) == 0 && (u[7] == '/' || !u[7]))
    return settings_fail(c, path, "%s has no host (one '/' too many after \"http:\"?); "
                         "expected %s", q, SETTINGS_IMDS_URL);
  if (strncasecmp(u, "http://", 7) == 0)
    return KVVM_OK;
  if (strncasecmp(u, "https://", 8) == 0)
    return settings_fail(c, path, "%s uses https://; the instance metadata service and the "
                         "Arc agent answer plain http on this machine: expected %s or %s", q,
                         SETTINGS_IMDS_URL, ARC_EXAMPLE);
  return settings_fail(c, path, "%s is not an http:// URL; expected %s or %s", q,
                       SETTINGS_IMDS_URL, ARC_EXAMPLE);
}

static bool is_loopback_v4(const char *h)
{
  unsigned a, b, d, e;
  char tail;
  if (!all_of(h, "0123456789."))
    return false;
  if (sscanf(h, "%u.%u.%u.%u%c", &a, &b, &d, &e, &tail) != 4)
    return false;
  return a == 127 && b < 256 && d < 256 && e < 256;
}

/* Port digits 1-65535; the instance metadata service listens on 80 only. */
static bool port_ok(const char *port, bool imds)
{
  if (!port)
    return true;
  if (!*port || strlen(port) > 5 || !all_of(port, "0123456789"))
    return false;
  long v = strtol(port, NULL, 10);
  return imds ? v == 80 : v >= 1 && v <= 65535;
}

/* auth (host and port) is lower-cased in place and must name IMDS or this machine. */
static enum kvvm_err msi_authority(struct sctx *c, const char *path, const char *q, char *auth)
{
  char *port = NULL, *end = auth[0] == '[' ? strchr(auth, ']') : auth;
  char qh[SETTINGS_QUOTE_MAX];
  lower(auth);
  char *colon = end ? strchr(end, ':') : NULL;
  if (colon) {
    *colon = '\0';
    port = colon + 1;
  }
  bool imds = strcmp(auth, "169.254.169.254") == 0;
  bool loop = strcmp(auth, "localhost") == 0 || strcmp(auth, "[::1]") == 0 ||
              is_loopback_v4(auth);
  if (!imds && !loop)
    return settings_fail(c, path, "%s: host %s is neither the instance metadata service "
                         "(169.254.169.254) nor this machine (localhost, 127.0.0.1, [::1]); "
                         "a token request sent elsewhere would hand out the VM's identity", q,
                         settings_quote(auth, qh, sizeof qh));
  if (!port_ok(port, imds))
    return settings_fail(c, path, "%s: port %s is not usable%s", q,
                         settings_quote(port, qh, sizeof qh),
                         imds ? " (the instance metadata service listens on port 80)" : "");
  if (port)
    *colon = ':';
  return KVVM_OK;
}

static enum kvvm_err msi_path(struct sctx *c, const char *path, const char *q, const char *rest)
{
  char *p = kvvm_xstrdup(rest);
  char qx[SETTINGS_QUOTE_MAX];
  enum kvvm_err rc = KVVM_OK;
  size_t cut = strcspn(p, "?#"), n = cut;
  if (p[cut])
    settings_warn(c, path, "%s: dropped %s (kvvm adds api-version, resource and client id "
                  "itself)", q, settings_quote(p + cut, qx, sizeof qx));
  while (n && p[n - 1] == '/')
    n--;
  p[n] = '\0';
  if (strcasecmp(p, "/metadata/identity") != 0 &&
      strcasecmp(p, "/metadata/identity/oauth2/token") != 0)
    rc = settings_fail(c, path, "%s: path %s is neither /metadata/identity nor "
                       "/metadata/identity/oauth2/token", q, settings_quote(p, qx, sizeof qx));
  free(p);
  return rc;
}

enum kvvm_err settings_msi_endpoint(struct sctx *c, const char *path, const char *raw,
                                    char **out)
{
  char q[SETTINGS_QUOTE_MAX];
  char *u = trim_dup(raw), *auth = NULL;
  enum kvvm_err rc = KVVM_OK;
  settings_quote(raw, q, sizeof q);
  if (!*u) {
    settings_warn(c, path, "is empty; IDENTITY_ENDPOINT or the instance metadata service is "
                  "used");
    goto out;
  }
  if ((rc = msi_scheme(c, path, q, u)) != KVVM_OK)
    goto out;
  size_t n = strcspn(u + 7, "/?#");
  auth = kvvm_xasprintf("%.*s", (int)n, u + 7);
  if ((rc = msi_authority(c, path, q, auth)) != KVVM_OK)
    goto out;
  if ((rc = msi_path(c, path, q, u + 7 + n)) != KVVM_OK)
    goto out;
  *out = kvvm_xasprintf("http://%s/metadata/identity/oauth2/token", auth);
out:
  free(auth);
  free(u);
  return rc;
}

static bool is_guid(const char *s)
{
  if (strlen(s) != 36)
    return false;
  for (size_t i = 0; i < 36; i++) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
      return false;
  }
  return true;
}

static bool group_name_ok(const char *s)
{
  size_t n = strlen(s);
  return n >= 1 && n <= 90 && s[n - 1] != '.' &&
         all_of(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.()");
}

static bool identity_name_ok(const char *s)
{
  size_t n = strlen(s);
  return n >= 3 && n <= 128 &&
         all_of(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_");
}

/* /subscriptions/<guid>/resourceGroups/<group>/providers/Microsoft.ManagedIdentity/
 * userAssignedIdentities/<name>, fixed words in any case (ARM ignores it). */
static bool is_identity_id(const char *s)
{
  static const char *const fixed[ARM_SEGS] = {
      "", "subscriptions", NULL, "resourceGroups", NULL, "providers",
      "Microsoft.ManagedIdentity", "userAssignedIdentities", NULL};
  char *copy = kvvm_xstrdup(s), *seg[ARM_SEGS];
  bool ok = split(copy, seg, ARM_SEGS) == ARM_SEGS;
  for (size_t i = 0; ok && i < ARM_SEGS; i++)
    ok = !fixed[i] || strcasecmp(seg[i], fixed[i]) == 0;
  ok = ok && is_guid(seg[2]) && group_name_ok(seg[4]) && identity_name_ok(seg[8]);
  free(copy);
  return ok;
}

enum kvvm_err settings_client_id(struct sctx *c, const char *path, const char *raw,
                                 char **out, enum kvvm_client_id_kind *kind)
{
  char q[SETTINGS_QUOTE_MAX];
  char *s = trim_dup(raw);
  enum kvvm_err rc = KVVM_OK;
  settings_quote(raw, q, sizeof q);
  if (!*s)
    settings_warn(c, path, "is empty; the VM's system-assigned identity is used");
  else if (is_guid(s))
    *kind = KVVM_ID_CLIENT_ID;
  else if (is_identity_id(s))
    *kind = KVVM_ID_RESOURCE_ID;
  else if (strncasecmp(s, "/subscriptions/", 15) == 0)
    rc = settings_fail(c, path, "%s is a resource id, but not of a user-assigned identity; "
                       "expected /subscriptions/<subscription-id>/resourceGroups/<group>/"
                       "providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>", q);
  else
    rc = settings_fail(c, path, "%s is neither a client id (a GUID such as "
                       "00001111-aaaa-2222-bbbb-3333cccc4444) nor the resource id of a "
                       "user-assigned identity (/subscriptions/.../providers/"
                       "Microsoft.ManagedIdentity/userAssignedIdentities/<name>)", q);
  if (rc == KVVM_OK && *s)
    *out = s;
  else
    free(s);
  return rc;
}
