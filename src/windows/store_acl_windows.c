/* `accounts` on Windows: the names resolved to SIDs, and the private key's DACL as SDDL.
 *
 * Readers are SID strings ("S-1-5-20"), sorted, no repeats, never SYSTEM or Administrators
 * (they always have full control, so listing them as readers would say nothing). Names that
 * Windows localizes ("NETWORK SERVICE" is "NETZWERKDIENST" on a German Windows) resolve
 * through a table of well-known SIDs first, so the same settings work on every language;
 * the rest (local and domain accounts and groups, virtual accounts such as
 * "IIS APPPOOL\DefaultAppPool") through LookupAccountNameW. A name that does not resolve
 * grants nothing and is named in the error; the others are still granted (include/kvvm/acl.h,
 * kvvm_acl_resolve, is the same contract on Linux).
 *
 * The access masks are those of CryptoKeyRights (Microsoft's model of a key container's or
 * CNG key's security descriptor, System.Security.AccessControl): GA (GenericAll, what
 * certlm.msc's "Manage Private Keys" calls Full control) for SYSTEM and Administrators, GR
 * (GenericRead: read the key data, its attributes and its permissions; the dialog's "Read")
 * for each reader: enough to sign or decrypt with the key, not to change or delete it. The
 * DACL is protected (P): no ACE is inherited from the key folder, so the key grants exactly
 * what the settings say. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kvvm/mem.h"
#include "windows/store_int.h"
#include "windows/win_int.h"

#include <ncrypt.h>
#include <sddl.h>

#define SID_SYSTEM "S-1-5-18"
#define SID_ADMINS "S-1-5-32-544"

/* Names every Windows knows by the same SID; matched without case. */
static const struct {
  const char *name, *sid;
} well_known[] = {
    {"SYSTEM", SID_SYSTEM},
    {"LocalSystem", SID_SYSTEM},
    {"Local System", SID_SYSTEM},
    {"NT AUTHORITY\\SYSTEM", SID_SYSTEM},
    {"Local Service", "S-1-5-19"},
    {"LocalService", "S-1-5-19"},
    {"NT AUTHORITY\\LOCAL SERVICE", "S-1-5-19"},
    {"Network Service", "S-1-5-20"},
    {"NetworkService", "S-1-5-20"},
    {"NT AUTHORITY\\NETWORK SERVICE", "S-1-5-20"},
    {"Administrators", SID_ADMINS},
    {"BUILTIN\\Administrators", SID_ADMINS},
    {"Users", "S-1-5-32-545"},
    {"BUILTIN\\Users", "S-1-5-32-545"},
    {"IIS_IUSRS", "S-1-5-32-568"},
    {"BUILTIN\\IIS_IUSRS", "S-1-5-32-568"},
};

static char *sid_text(PSID sid)
{
  wchar_t *w = NULL;
  char *s = NULL;
  if (ConvertSidToStringSidW(sid, &w)) {
    s = kvvm_win_utf8(w);
    LocalFree(w);
  }
  return s;
}

/* "S-1-..." as Windows writes it back, or NULL when it is not a SID. */
static char *sid_literal(const char *name)
{
  wchar_t *w = kvvm_win_wide(name);
  PSID sid = NULL;
  char *s = NULL;
  if (w && ConvertStringSidToSidW(w, &sid) && IsValidSid(sid))
    s = sid_text(sid);
  if (sid)
    LocalFree(sid);
  free(w);
  return s;
}

static char *sid_lookup(const char *name, DWORD *code)
{
  wchar_t *w = kvvm_win_wide(name), dom[256];
  BYTE sid[SECURITY_MAX_SID_SIZE];
  DWORD ns = sizeof sid, nd = 256;
  SID_NAME_USE use;
  char *s = NULL;
  *code = ERROR_NO_UNICODE_TRANSLATION;
  if (w && LookupAccountNameW(NULL, w, sid, &ns, dom, &nd, &use))
    s = sid_text(sid);
  else if (w)
    *code = GetLastError();
  free(w);
  return s;
}

/* One name's SID, or NULL with the reason appended to why. */
static char *resolve_one(const char *name, char *why, size_t n)
{
  size_t used = strlen(why);
  DWORD code = 0;
  char err[256];
  for (size_t i = 0; i < sizeof well_known / sizeof well_known[0]; i++)
    if (strcasecmp(name, well_known[i].name) == 0)
      return kvvm_xstrdup(well_known[i].sid);
  if (strncasecmp(name, "S-1-", 4) == 0) {
    char *s = sid_literal(name);
    if (!s)
      snprintf(why + used, n - used, "%saccounts: \"%s\" is not a valid SID (S-1-5-...); it is "
               "granted nothing", used ? "; " : "", name);
    return s;
  }
  char *s = sid_lookup(name, &code);
  if (!s)
    snprintf(why + used, n - used, "%saccounts: \"%s\" is not an account or group on this "
             "machine (LookupAccountName: %s); it is granted nothing", used ? "; " : "", name,
             kvvm_win_strerror(code, err, sizeof err));
  return s;
}

static int by_text(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted, repeats and SYSTEM/Administrators dropped, NULL-terminated. */
static char **tidy(char **sids, size_t n)
{
  size_t k = 0;
  qsort(sids, n, sizeof *sids, by_text);
  for (size_t i = 0; i < n; i++) {
    bool drop = strcmp(sids[i], SID_SYSTEM) == 0 || strcmp(sids[i], SID_ADMINS) == 0 ||
                (k && strcmp(sids[k - 1], sids[i]) == 0);
    if (drop)
      free(sids[i]);
    else
      sids[k++] = sids[i];
  }
  sids[k] = NULL;
  return sids;
}

enum kvvm_err store_win_acl_resolve(char *const *accounts, char ***out, char *why, size_t n)
{
  size_t count = 0, k = 0;
  while (accounts && accounts[count])
    count++;
  char **sids = kvvm_xcalloc(count + 1, sizeof *sids);
  why[0] = '\0';
  for (size_t i = 0; i < count; i++) {
    char *s = resolve_one(accounts[i], why, n);
    if (s)
      sids[k++] = s;
  }
  *out = tidy(sids, k);
  return why[0] ? KVVM_E_GRANT : KVVM_OK;
}

void store_win_acl_free(char **sids)
{
  for (char **p = sids; p && *p; p++)
    free(*p);
  free(sids);
}

char *store_win_acl_sddl(char *const *sids)
{
  char *s = kvvm_xstrdup("D:P(A;;GA;;;SY)(A;;GA;;;BA)");
  for (char *const *p = sids; p && *p; p++) {
    char *t = kvvm_xasprintf("%s(A;;GR;;;%s)", s, *p);
    free(s);
    s = t;
  }
  return s;
}

bool store_win_acl_has(char *const *sids, const char *sid)
{
  for (char *const *p = sids; p && *p; p++)
    if (strcmp(*p, sid) == 0)
      return true;
  return false;
}

/* "NT AUTHORITY\NETWORK SERVICE (S-1-5-20)", in this Windows' words; the SID alone when it
 * names no account here. */
char *store_win_acl_name(const char *sid_str)
{
  wchar_t *w = kvvm_win_wide(sid_str), name[256], dom[256];
  DWORD nn = 256, nd = 256;
  SID_NAME_USE use;
  PSID sid = NULL;
  char *out = NULL;
  if (w && ConvertStringSidToSidW(w, &sid) &&
      LookupAccountSidW(NULL, sid, name, &nn, dom, &nd, &use)) {
    char *un = kvvm_win_utf8(name), *ud = kvvm_win_utf8(dom);
    if (un && ud)
      out = kvvm_xasprintf("%s%s%s (%s)", ud, *ud ? "\\" : "", un, sid_str);
    free(un);
    free(ud);
  }
  if (sid)
    LocalFree(sid);
  free(w);
  return out ? out : kvvm_xstrdup(sid_str);
}

char *store_win_acl_display(char *const *sids)
{
  char *s = kvvm_xstrdup("SYSTEM, Administrators");
  for (char *const *p = sids; p && *p; p++) {
    char *name = store_win_acl_name(*p), *t = kvvm_xasprintf("%s, %s", s, name);
    free(name);
    free(s);
    s = t;
  }
  return s;
}

/* The SIDs an SD's DACL allows to read (GENERIC_READ, GENERIC_ALL or the key data), deny
 * entries ignored: for a predecessor that overstates, never understates, who reads it. */
enum kvvm_err store_win_acl_sd_readers(PSECURITY_DESCRIPTOR sd, char ***out)
{
  BOOL present = FALSE, defaulted = FALSE;
  PACL dacl = NULL;
  ACL_SIZE_INFORMATION info = {0};
  *out = NULL;
  if (!GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted) || !present || !dacl ||
      !GetAclInformation(dacl, &info, sizeof info, AclSizeInformation))
    return KVVM_E_GRANT;   /* no DACL at all: everyone reads it */
  char **sids = kvvm_xcalloc(info.AceCount + 1, sizeof *sids);
  size_t k = 0;
  for (DWORD i = 0; i < info.AceCount; i++) {
    ACCESS_ALLOWED_ACE *ace = NULL;
    if (!GetAce(dacl, i, (void **)&ace) || ace->Header.AceType != ACCESS_ALLOWED_ACE_TYPE ||
        !(ace->Mask & (GENERIC_READ | GENERIC_ALL | FILE_READ_DATA)))
      continue;
    char *s = sid_text((PSID)&ace->SidStart);
    if (s)
      sids[k++] = s;
  }
  *out = tidy(sids, k);
  return KVVM_OK;
}

/* ---- the key's security descriptor (CAPI: PP_KEYSET_SEC_DESCR; CNG:
 * NCRYPT_SECURITY_DESCR_PROPERTY), DACL only ---- */

struct key_handle {
  HCRYPTPROV capi;
  NCRYPT_PROV_HANDLE ksp;
  NCRYPT_KEY_HANDLE cng;
};

static DWORD key_open(const struct store_win_key *k, struct key_handle *h)
{
  wchar_t *prov = kvvm_win_wide(k->provider), *cont = kvvm_win_wide(k->container);
  DWORD code = ERROR_NO_UNICODE_TRANSLATION;
  memset(h, 0, sizeof *h);
  if (prov && cont && !k->cng) {
    code = CryptAcquireContextW(&h->capi, cont, prov, k->prov_type, CRYPT_SILENT |
                                (k->machine ? CRYPT_MACHINE_KEYSET : 0)) ? 0 : GetLastError();
  } else if (prov && cont) {
    code = (DWORD)NCryptOpenStorageProvider(&h->ksp, prov, 0);
    if (code == 0)
      code = (DWORD)NCryptOpenKey(h->ksp, &h->cng, cont, 0, NCRYPT_SILENT_FLAG |
                                  (k->machine ? NCRYPT_MACHINE_KEY_FLAG : 0));
  }
  free(prov);
  free(cont);
  return code;
}

static void key_close(struct key_handle *h)
{
  if (h->capi)
    CryptReleaseContext(h->capi, 0);
  if (h->cng)
    NCryptFreeObject(h->cng);
  if (h->ksp)
    NCryptFreeObject(h->ksp);
}

/* The key's DACL as a self-relative SD (malloc'd), or an error code. */
static DWORD key_get_sd(struct key_handle *h, BYTE **sd)
{
  DWORD n = 0, code;
  *sd = NULL;
  for (int pass = 0; pass < 2; pass++) {
    if (h->cng)
      code = (DWORD)NCryptGetProperty(h->cng, NCRYPT_SECURITY_DESCR_PROPERTY, *sd, n, &n,
                                      DACL_SECURITY_INFORMATION);
    else
      code = CryptGetProvParam(h->capi, PP_KEYSET_SEC_DESCR, *sd, &n,
                               DACL_SECURITY_INFORMATION) ? 0 : GetLastError();
    if (code || pass)
      break;
    *sd = kvvm_xmalloc(n ? n : 1);
  }
  if (code) {
    free(*sd);
    *sd = NULL;
  }
  return code;
}

static DWORD key_set_sd(struct key_handle *h, PSECURITY_DESCRIPTOR sd, DWORD len)
{
  if (h->cng)
    return (DWORD)NCryptSetProperty(h->cng, NCRYPT_SECURITY_DESCR_PROPERTY, sd, len,
                                    DACL_SECURITY_INFORMATION | NCRYPT_SILENT_FLAG);
  return CryptSetProvParam(h->capi, PP_KEYSET_SEC_DESCR, sd, DACL_SECURITY_INFORMATION)
             ? 0 : GetLastError();
}

static char *sd_sddl(PSECURITY_DESCRIPTOR sd)
{
  wchar_t *w = NULL;
  char *s = NULL;
  if (ConvertSecurityDescriptorToStringSecurityDescriptorW(sd, SDDL_REVISION_1,
                                                           DACL_SECURITY_INFORMATION, &w, NULL)) {
    s = kvvm_win_utf8(w);
    LocalFree(w);
  }
  return s;
}

/* SDDL as Windows writes it back (aliases such as NS for S-1-5-20), or NULL. */
char *store_win_acl_canonical(const char *sddl)
{
  wchar_t *w = kvvm_win_wide(sddl);
  PSECURITY_DESCRIPTOR sd = NULL;
  char *s = NULL;
  if (w && ConvertStringSecurityDescriptorToSecurityDescriptorW(w, SDDL_REVISION_1, &sd, NULL))
    s = sd_sddl(sd);
  if (sd)
    LocalFree(sd);
  free(w);
  return s;
}

enum kvvm_err store_win_acl_read(const struct store_win_key *k, char **sddl, char ***readers,
                                 DWORD *code)
{
  struct key_handle h;
  BYTE *sd = NULL;
  enum kvvm_err rc = KVVM_E_GRANT;
  if (sddl)
    *sddl = NULL;
  if (readers)
    *readers = NULL;
  *code = key_open(k, &h);
  if (*code == 0)
    *code = key_get_sd(&h, &sd);
  if (*code == 0) {
    rc = readers ? store_win_acl_sd_readers(sd, readers) : KVVM_OK;
    if (sddl && !(*sddl = sd_sddl(sd)))
      rc = KVVM_E_GRANT;
  }
  free(sd);
  key_close(&h);
  return rc;
}

/* The ACEs of two SDDL strings, flags after "D:" aside: wine drops SE_DACL_PROTECTED when it
 * stores a key's DACL, and a key whose entries are already these grants exactly this. */
static bool same_aces(const char *a, const char *b)
{
  const char *pa = a ? strchr(a, '(') : NULL, *pb = b ? strchr(b, '(') : NULL;
  return pa && pb && strcmp(pa, pb) == 0;
}

enum kvvm_err store_win_acl_set(const struct store_win_key *k, const char *sddl, char *why,
                                size_t n)
{
  wchar_t *w = kvvm_win_wide(sddl);
  PSECURITY_DESCRIPTOR sd = NULL;
  ULONG len = 0;
  struct key_handle h;
  BYTE *now = NULL;
  char err[256], *have = NULL, *want = store_win_acl_canonical(sddl);
  DWORD code = key_open(k, &h);
  if (code == 0 && key_get_sd(&h, &now) == 0)
    have = sd_sddl(now);
  if (code == 0 && !same_aces(have, want)) {
    code = w && ConvertStringSecurityDescriptorToSecurityDescriptorW(w, SDDL_REVISION_1, &sd,
                                                                     &len) ? 0 : GetLastError();
    if (code == 0)
      code = key_set_sd(&h, sd, len);
  }
  if (code)
    snprintf(why, n, "cannot set the permissions of the key %s of %s to %s: %s", k->container,
             k->provider, sddl, kvvm_win_strerror(code, err, sizeof err));
  if (sd)
    LocalFree(sd);
  key_close(&h);
  free(now);
  free(have);
  free(want);
  free(w);
  return code ? KVVM_E_GRANT : KVVM_OK;
}
