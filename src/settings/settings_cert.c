/* One observed certificate (a URL string, or an object with the Windows v3.0 and Linux
 * keys) and the folder it goes to (design.md, Store mapping on Linux), or on Windows the
 * system store (LocalMachine\MY by default). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kvvm/fileio.h"
#include "kvvm/mem.h"
#include "settings/settings_int.h"

#define DEFAULT_STORE_ROOT "/var/lib/waagent/Microsoft.Azure.KeyVault.Store"
#define ACCOUNT_MAX 256

static const char *const cert_keys[] = {"url", "certificateStoreName", "certificateStoreLocation",
                                        "accounts", "keyExportable", "customSymbolicLinkName",
                                        "acls", "authenticationOverride", "fileLayout", NULL};
static const char *const acl_keys[] = {"user", "group", NULL};

static bool has_control(const char *s)
{
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f)
      return true;
  return false;
}

static bool has_dotdot(const char *s)
{
  for (const char *p = s; (p = strstr(p, "..")); p++)
    if ((p == s || p[-1] == '/') && (p[2] == '/' || !p[2]))
      return true;
  return false;
}

/* s is absolute; repeated slashes, "." segments and a trailing slash go. */
static char *normalise_dir(const char *s)
{
  char *out = kvvm_xmalloc(strlen(s) + 2);
  size_t o = 0;
  while (*s) {
    while (*s == '/')
      s++;
    size_t n = strcspn(s, "/");
    if (n && !(n == 1 && *s == '.')) {
      out[o++] = '/';
      memcpy(out + o, s, n);
      o += n;
    }
    s += n;
  }
  if (!o)
    out[o++] = '/';
  out[o] = '\0';
  return out;
}

static enum kvvm_err parse_dir(struct sctx *c, const char *path, const char *s,
                               struct store_spec *spec)
{
  char q[SETTINGS_QUOTE_MAX];
  if (has_control(s))
    return settings_fail(c, path, "%s contains a control character",
                         settings_quote(s, q, sizeof q));
  if (has_dotdot(s))
    return settings_fail(c, path, "%s contains a \"..\" segment; expected a plain absolute "
                         "folder", settings_quote(s, q, sizeof q));
  spec->loc = KVVM_LOC_PATH;
  spec->dir = normalise_dir(s);
  c->linux_keys = true;
  return KVVM_OK;
}

/* C:\x, \\server\x or /x: a folder, which only the files store can use. */
static bool is_folder(const char *s)
{
  return s[0] == '/' || s[0] == '\\' || (isalpha((unsigned char)s[0]) && s[1] == ':');
}

static enum kvvm_err windows_location(struct sctx *c, const char *path, const char *s)
{
  char q[SETTINGS_QUOTE_MAX];
  bool folder = is_folder(s);
  return settings_fail(c, path, "%s is %s; on Windows certificates go to the certificate "
                       "store: expected \"LocalMachine\" or \"CurrentUser\"%s",
                       settings_quote(s, q, sizeof q),
                       folder ? "a folder" : "not a store location",
                       folder ? " (a folder is a store location on Linux only)" : "");
}

static enum kvvm_err parse_location(struct sctx *c, const char *path, const json_t *v,
                                    struct store_spec *spec)
{
  char q[SETTINGS_QUOTE_MAX];
  enum kvvm_err rc = settings_want(c, path, v, JSON_STRING, settings_windows(c) ?
                                   "\"LocalMachine\" or \"CurrentUser\"" :
                                   "\"LocalMachine\", \"CurrentUser\" or an absolute folder");
  if (rc != KVVM_OK)
    return rc;
  const char *s = json_string_value(v);
  spec->has_loc = true;
  if (strcasecmp(s, "LocalMachine") == 0)
    spec->loc = KVVM_LOC_LOCAL_MACHINE;
  else if (strcasecmp(s, "CurrentUser") == 0)
    spec->loc = KVVM_LOC_CURRENT_USER;
  else if (settings_windows(c))
    return windows_location(c, path, s);
  else if (s[0] == '/')
    return parse_dir(c, path, s, spec);
  else
    return settings_fail(c, path, "%s is %s; expected \"LocalMachine\", \"CurrentUser\" or an "
                         "absolute folder such as " DEFAULT_STORE_ROOT,
                         settings_quote(s, q, sizeof q),
                         strchr(s, '/') || s[0] == '.' ? "a relative path" :
                                                         "not a store location");
  return KVVM_OK;
}

/* A Windows system store name is a registry key, not a file: "Remote Desktop" is one. */
static bool windows_store_name_ok(const char *s)
{
  size_t n = strlen(s);
  return n && n <= 64 && s[0] != ' ' && s[n - 1] != ' ' &&
         strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_. ") == n;
}

static enum kvvm_err parse_name(struct sctx *c, const char *path, const json_t *v,
                                struct store_spec *spec)
{
  char q[SETTINGS_QUOTE_MAX];
  enum kvvm_err rc = settings_want(c, path, v, JSON_STRING, "a store name such as \"MY\"");
  if (rc != KVVM_OK)
    return rc;
  const char *s = json_string_value(v);
  spec->has_name = true;
  if (strcasecmp(s, "MY") == 0)
    return KVVM_OK;
  if (settings_windows(c) && !windows_store_name_ok(s))
    return settings_fail(c, path, "%s is not a certificate store name (letters, digits, -, _, "
                         ". and inner spaces, at most 64) such as \"MY\" or \"TrustedPeople\"",
                         settings_quote(s, q, sizeof q));
  if (!settings_windows(c) && !settings_is_token(s))
    return settings_fail(c, path, "%s is not a simple store name (letters, digits, -, _ and ., "
                         "no leading dot) such as \"MY\" or \"TrustedPeople\"",
                         settings_quote(s, q, sizeof q));
  spec->name = kvvm_xstrdup(s);
  return KVVM_OK;
}

enum kvvm_err settings_store_parse(struct sctx *c, const char *base, const json_t *obj,
                                   struct store_spec *spec)
{
  char p[SETTINGS_PATH_MAX];
  const json_t *loc = settings_get(obj, "certificateStoreLocation");
  const json_t *name = settings_get(obj, "certificateStoreName");
  enum kvvm_err rc = KVVM_OK;
  if (loc)
    rc = parse_location(c, settings_key(p, base, "certificateStoreLocation"), loc, spec);
  if (rc == KVVM_OK && name)
    rc = parse_name(c, settings_key(p, base, "certificateStoreName"), name, spec);
  return rc;
}

void settings_store_clear(struct store_spec *spec)
{
  free(spec->dir);
  free(spec->name);
  memset(spec, 0, sizeof *spec);
}

/* Windows: the system store, named as crypt32 and PowerShell's Cert: drive name it. The
 * name keeps the case it was given (system store names are case-insensitive); MY in any
 * case is "MY", so one store has one record key whatever case the settings use. */
static char *system_store_for(const struct store_spec *loc, const char *name)
{
  bool user = loc->has_loc && loc->loc == KVVM_LOC_CURRENT_USER;
  return kvvm_xasprintf("%s\\%s", user ? "CurrentUser" : "LocalMachine", name ? name : "MY");
}

/* A folder location is used as is: Microsoft's Linux extension ignores the store name
 * there, and settings written for it must keep putting files where they did. */
static char *folder_for(struct sctx *c, const char *path, const struct store_spec *loc,
                        const char *name)
{
  if (settings_windows(c))
    return system_store_for(loc, name);
  const char *root = c->opts && c->opts->default_store_root ? c->opts->default_store_root :
                                                                DEFAULT_STORE_ROOT;
  if (loc->has_loc && loc->loc == KVVM_LOC_PATH) {
    if (name && !c->warned_name_ignored)
      settings_warn(c, path, "certificateStoreName \"%s\" is ignored because "
                    "certificateStoreLocation is a folder (as in Microsoft's Linux extension)",
                    name);
    c->warned_name_ignored = c->warned_name_ignored || name;
    return kvvm_xstrdup(loc->dir);
  }
  bool user = loc->has_loc && loc->loc == KVVM_LOC_CURRENT_USER;
  char *base = user ? kvvm_path_join(root, "CurrentUser") : kvvm_xstrdup(root);
  if (!name)
    return base;
  char *dir = kvvm_path_join(base, name);
  free(base);
  return dir;
}

/* The certificate's own store keys win over those beside observedCertificates. */
static void resolve_store(struct sctx *c, const char *path, const struct store_spec *own,
                          struct kvvm_cert_cfg *cert)
{
  const struct store_spec *loc = own->has_loc ? own : &c->global;
  const struct store_spec *name = own->has_name ? own : &c->global;
  cert->location = loc->has_loc ? loc->loc : KVVM_LOC_LOCAL_MACHINE;
  cert->store_name = kvvm_xstrdup(name->name);
  cert->store_dir = folder_for(c, path, loc, name->name);
}

enum kvvm_err settings_cert_string(struct sctx *c, const char *path, const json_t *v,
                                   struct kvvm_cert_cfg *cert)
{
  static const struct store_spec none;
  enum kvvm_err rc = settings_url(c, path, json_string_value(v), cert);
  if (rc != KVVM_OK)
    return rc;
  cert->accounts = kvvm_xcalloc(1, sizeof *cert->accounts);
  resolve_store(c, path, &none, cert);
  return KVVM_OK;
}

static enum kvvm_err link_name(struct sctx *c, const char *path, const json_t *v,
                               struct kvvm_cert_cfg *cert)
{
  char q[SETTINGS_QUOTE_MAX];
  enum kvvm_err rc = settings_want(c, path, v, JSON_STRING, "a file name such as \"app1Cert1\"");
  if (rc != KVVM_OK)
    return rc;
  if (!settings_is_token(json_string_value(v)))
    return settings_fail(c, path, "%s is not a safe file name: use letters, digits, -, _ and . "
                         "(no leading dot, no /)",
                         settings_quote(json_string_value(v), q, sizeof q));
  cert->link_name = kvvm_xstrdup(json_string_value(v));
  c->linux_keys = true;
  return KVVM_OK;
}

static bool account_ok(const char *s)
{
  size_t n = strlen(s);
  return n && n <= ACCOUNT_MAX && !has_control(s) && !isspace((unsigned char)s[0]) &&
         !isspace((unsigned char)s[n - 1]);
}

/* Windows account names ("Network Service") are kept as written: the store decides what
 * they mean on this machine and reports a name it cannot find. */
static enum kvvm_err accounts(struct sctx *c, const char *path, const json_t *v,
                              struct kvvm_cert_cfg *cert)
{
  char p[SETTINGS_PATH_MAX], q[SETTINGS_QUOTE_MAX];
  size_t n = v ? json_array_size(v) : 0;
  cert->accounts = kvvm_xcalloc(n + 1, sizeof *cert->accounts);
  if (!v)
    return KVVM_OK;
  for (size_t i = 0; i < n; i++) {
    const json_t *e = json_array_get(v, i);
    settings_index(p, path, i);
    if (!json_is_string(e))
      return settings_fail(c, p, "got %s, expected an account name (a string)",
                           settings_type(e));
    if (!account_ok(json_string_value(e)))
      return settings_fail(c, p, "%s is not an account name (1-%d characters, no control "
                           "characters, no blanks around it)",
                           settings_quote(json_string_value(e), q, sizeof q), ACCOUNT_MAX);
    cert->accounts[i] = kvvm_xstrdup(json_string_value(e));
  }
  return KVVM_OK;
}

/* Plausible POSIX (or SSSD user@domain) names; never an option, never an ACL separator. */
static bool posix_name_ok(const char *s)
{
  size_t n = strlen(s);
  if (n && s[n - 1] == '$')
    n--;
  if (!n || n > ACCOUNT_MAX || s[0] == '-' || s[0] == '.' || s[0] == '@')
    return false;
  return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@-") >= n;
}

static enum kvvm_err acl_name(struct sctx *c, const char *path, const json_t *v,
                              const char *what, char **out)
{
  char q[SETTINGS_QUOTE_MAX];
  if (!json_is_string(v))
    return settings_fail(c, path, "got %s, expected a %s name (a string)", settings_type(v),
                         what);
  if (!posix_name_ok(json_string_value(v)))
    return settings_fail(c, path, "%s is not a plausible %s name (letters, digits, _, ., @ "
                         "and -, not starting with - . or @, at most %d)",
                         settings_quote(json_string_value(v), q, sizeof q), what, ACCOUNT_MAX);
  *out = kvvm_xstrdup(json_string_value(v));
  return KVVM_OK;
}

static enum kvvm_err acl_entry(struct sctx *c, const char *path, json_t *v,
                               struct kvvm_acl_entry *acl)
{
  char p[SETTINGS_PATH_MAX];
  enum kvvm_err rc = settings_want(c, path, v, JSON_OBJECT,
                                   "an object {\"user\": ..., \"group\": ...}");
  if (rc != KVVM_OK)
    return rc;
  settings_warn_unknown(c, path, v, acl_keys);
  const json_t *user = settings_get(v, "user"), *group = settings_get(v, "group");
  if (!user && !group)
    return settings_fail(c, path, "names neither a user nor a group; expected "
                         "{\"user\": \"app1\"}, {\"group\": \"appGroup1\"} or both");
  if (user)
    rc = acl_name(c, settings_key(p, path, "user"), user, "user", &acl->user);
  if (rc == KVVM_OK && group)
    rc = acl_name(c, settings_key(p, path, "group"), group, "group", &acl->group);
  return rc;
}

static enum kvvm_err acls(struct sctx *c, const char *path, const json_t *v,
                          struct kvvm_cert_cfg *cert)
{
  char p[SETTINGS_PATH_MAX];
  enum kvvm_err rc = settings_want(c, path, v, JSON_ARRAY,
                                   "an array of {\"user\": ..., \"group\": ...} objects");
  if (rc != KVVM_OK)
    return rc;
  c->linux_keys = true;
  cert->acls = kvvm_xcalloc(json_array_size(v), sizeof *cert->acls);
  cert->n_acls = json_array_size(v);
  for (size_t i = 0; i < cert->n_acls && rc == KVVM_OK; i++)
    rc = acl_entry(c, settings_index(p, path, i), json_array_get(v, i), &cert->acls[i]);
  return rc;
}

/* A warning, not an error: on Windows these keys have nothing to act on, one settings
 * template often serves Linux and Windows VMs alike, and Microsoft's Windows extension
 * ignores keys it does not know. Refusing would leave every certificate uninstalled over a
 * key that, ignored, grants nothing (not granting is the safe direction) and moves nothing
 * already installed. The value is not checked: it is never used. */
void settings_linux_only(struct sctx *c, const char *path, const char *effect)
{
  settings_warn(c, path, "is Linux-only; ignored on Windows (%s)", effect);
}

/* fileLayout: one of the words of kvvm_file_layout_word, in any case. */
static enum kvvm_err file_layout(struct sctx *c, const char *path, const json_t *v,
                                 struct kvvm_cert_cfg *cert)
{
  char q[SETTINGS_QUOTE_MAX];
  const char *expect = "\"certbot\" (cert.pem, chain.pem, fullchain.pem, privkey.pem) or "
                       "\"csi\" (<name>.crt and <name>.key)";
  enum kvvm_err rc = settings_want(c, path, v, JSON_STRING, expect);
  if (rc != KVVM_OK)
    return rc;
  for (int i = KVVM_LAYOUT_CERTBOT; i <= KVVM_LAYOUT_CSI; i++)
    if (strcasecmp(json_string_value(v), kvvm_file_layout_word((enum kvvm_file_layout)i)) == 0) {
      cert->layout = (enum kvvm_file_layout)i;
      return KVVM_OK;
    }
  return settings_fail(c, path, "%s is not a file layout; expected %s",
                       settings_quote(json_string_value(v), q, sizeof q), expect);
}

/* customSymbolicLinkName, acls and fileLayout: read on Linux, warned about on Windows. */
static enum kvvm_err linux_extras(struct sctx *c, const char *path, const json_t *obj,
                                  struct kvvm_cert_cfg *cert)
{
  char p[SETTINGS_PATH_MAX];
  const json_t *link = settings_get(obj, "customSymbolicLinkName");
  const json_t *acl = settings_get(obj, "acls");
  const json_t *layout = settings_get(obj, "fileLayout");
  enum kvvm_err rc = KVVM_OK;
  if (settings_windows(c)) {
    if (layout)
      settings_linux_only(c, settings_key(p, path, "fileLayout"),
                          "has no effect on Windows: certificates go to the certificate store");
    if (link)
      settings_linux_only(c, settings_key(p, path, "customSymbolicLinkName"),
                          "the certificate is found by its thumbprint; no file is linked");
    if (acl)
      settings_linux_only(c, settings_key(p, path, "acls"),
                          "no one is granted read access by it; use accounts on Windows");
    return KVVM_OK;
  }
  if (link)
    rc = link_name(c, settings_key(p, path, "customSymbolicLinkName"), link, cert);
  if (rc == KVVM_OK && acl)
    rc = acls(c, settings_key(p, path, "acls"), acl, cert);
  if (rc == KVVM_OK && layout)
    rc = file_layout(c, settings_key(p, path, "fileLayout"), layout, cert);
  return rc;
}

static enum kvvm_err cert_extras(struct sctx *c, const char *path, json_t *obj,
                                 struct kvvm_cert_cfg *cert)
{
  char p[SETTINGS_PATH_MAX];
  const json_t *acc = settings_get(obj, "accounts");
  enum kvvm_err rc = KVVM_OK;
  settings_key(p, path, "accounts");
  if (acc)
    rc = settings_want(c, p, acc, JSON_ARRAY,
                       "an array of account names such as [\"Network Service\"]");
  if (rc == KVVM_OK)
    rc = accounts(c, p, acc, cert);
  if (rc == KVVM_OK)
    rc = settings_bool(c, settings_key(p, path, "keyExportable"),
                       settings_get(obj, "keyExportable"), &cert->key_exportable);
  if (rc == KVVM_OK)
    rc = linux_extras(c, path, obj, cert);
  if (rc == KVVM_OK)   /* Windows too: IMDS is the same there */
    rc = settings_auth_override(c, path, obj, cert);
  return rc;
}

enum kvvm_err settings_cert_object(struct sctx *c, const char *path, json_t *obj,
                                   struct kvvm_cert_cfg *cert)
{
  char p[SETTINGS_PATH_MAX];
  struct store_spec own = {0};
  const json_t *url = settings_get(obj, "url");
  enum kvvm_err rc;
  settings_warn_unknown(c, path, obj, cert_keys);
  settings_key(p, path, "url");
  if (!url) {
    rc = settings_fail(c, p, "is missing; expected the secret URL, e.g. \"%s\"",
                       SETTINGS_EXAMPLE_URL);
    goto out;
  }
  if ((rc = settings_want(c, p, url, JSON_STRING, "a secret URL string")) != KVVM_OK)
    goto out;
  if ((rc = settings_url(c, p, json_string_value(url), cert)) != KVVM_OK)
    goto out;
  if ((rc = settings_store_parse(c, path, obj, &own)) != KVVM_OK)
    goto out;
  if ((rc = cert_extras(c, path, obj, cert)) != KVVM_OK)
    goto out;
  resolve_store(c, path, &own, cert);
out:
  settings_store_clear(&own);
  return rc;
}
