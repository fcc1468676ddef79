/* The hooks' safety rule on Windows: only SYSTEM, Administrators and TrustedInstaller may
 * change a hook, the hooks folder or the folder above it. An account that can write the
 * file, add or remove entries in a folder, or rewrite its DACL or owner could make kvvm
 * (LocalSystem) run what it likes. Allow entries only: a deny entry that would take a right
 * away again is not credited, so the check errs on the side of refusing. */
#include <stdio.h>
#include <string.h>
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>

#include "windows/hooks_int.h"
#include "windows/win_int.h"

#define TRUSTED_INSTALLER L"S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464"

enum hook_kind kvvm_hooks_kind(const char *name)
{
  const char *dot = strrchr(name, '.');
  if (!dot)
    return HOOK_NONE;
  if (_stricmp(dot, ".exe") == 0)
    return HOOK_EXE;
  if (_stricmp(dot, ".cmd") == 0 || _stricmp(dot, ".bat") == 0)
    return HOOK_CMD;
  if (_stricmp(dot, ".ps1") == 0)
    return HOOK_PS1;
  return HOOK_NONE;
}

static bool sid_trusted(PSID sid)
{
  PSID ti = NULL;
  if (IsWellKnownSid(sid, WinLocalSystemSid) || IsWellKnownSid(sid, WinBuiltinAdministratorsSid))
    return true;
  bool same = ConvertStringSidToSidW(TRUSTED_INSTALLER, &ti) && EqualSid(sid, ti);
  LocalFree(ti);
  return same;
}

/* Names that read the same on every machine; other SIDs are looked up. */
static const struct {
  WELL_KNOWN_SID_TYPE type;
  const char *name;
} well_known[] = {
    {WinWorldSid, "Everyone"},
    {WinAuthenticatedUserSid, "Authenticated Users"},
    {WinBuiltinUsersSid, "Users"},
    {WinBuiltinGuestsSid, "Guests"},
    {WinBuiltinPowerUsersSid, "Power Users"},
    {WinInteractiveSid, "INTERACTIVE"},
    {WinNetworkSid, "NETWORK"},
    {WinServiceSid, "SERVICE"},
    {WinAnonymousSid, "ANONYMOUS LOGON"},
    {WinCreatorOwnerSid, "CREATOR OWNER"},
    {WinLocalServiceSid, "LOCAL SERVICE"},
    {WinNetworkServiceSid, "NETWORK SERVICE"},
    {WinBuiltinIUsersSid, "IIS_IUSRS"},
};

/* "Users (S-1-5-32-545)", "DOMAIN\name (S-1-5-21-...)", or the SID alone. */
static void sid_words(PSID sid, char *out, size_t n)
{
  char *text = NULL, *name = NULL;
  wchar_t acct[256], dom[256];
  DWORD an = 256, dn = 256;
  SID_NAME_USE use;
  if (!ConvertSidToStringSidA(sid, &text)) {
    snprintf(out, n, "an account whose SID cannot be read");
    return;
  }
  for (size_t i = 0; i < sizeof well_known / sizeof well_known[0]; i++)
    if (IsWellKnownSid(sid, well_known[i].type)) {
      snprintf(out, n, "%s (%s)", well_known[i].name, text);
      LocalFree(text);
      return;
    }
  if (LookupAccountSidW(NULL, sid, acct, &an, dom, &dn, &use) &&
      (name = kvvm_win_utf8(acct)) != NULL && dom[0]) {
    char *d = kvvm_win_utf8(dom);
    snprintf(out, n, "%s\\%s (%s)", d ? d : "?", name, text);
    free(d);
  } else {
    snprintf(out, n, "%s%s%s%s", name ? name : "", name ? " (" : "", text, name ? ")" : "");
  }
  free(name);
  LocalFree(text);
}

/* The write-type rights in mask, by their Windows names; a folder's first two as a folder's. */
static void rights_words(ACCESS_MASK mask, bool folder, char *out, size_t n)
{
  static const struct {
    ACCESS_MASK bit;
    const char *file, *dir;
  } rights[] = {
      {FILE_WRITE_DATA, "FILE_WRITE_DATA", "FILE_ADD_FILE"},
      {FILE_APPEND_DATA, "FILE_APPEND_DATA", "FILE_ADD_SUBDIRECTORY"},
      {FILE_WRITE_EA, "FILE_WRITE_EA", "FILE_WRITE_EA"},
      {FILE_DELETE_CHILD, "FILE_DELETE_CHILD", "FILE_DELETE_CHILD"},
      {FILE_WRITE_ATTRIBUTES, "FILE_WRITE_ATTRIBUTES", "FILE_WRITE_ATTRIBUTES"},
      {DELETE, "DELETE", "DELETE"},
      {WRITE_DAC, "WRITE_DAC", "WRITE_DAC"},
      {WRITE_OWNER, "WRITE_OWNER", "WRITE_OWNER"},
      {GENERIC_WRITE, "GENERIC_WRITE", "GENERIC_WRITE"},
      {GENERIC_ALL, "GENERIC_ALL", "GENERIC_ALL"},
  };
  size_t used = 0;
  out[0] = '\0';
  if ((mask & FILE_ALL_ACCESS) == FILE_ALL_ACCESS) {
    snprintf(out, n, "full control");
    return;
  }
  for (size_t i = 0; i < sizeof rights / sizeof rights[0] && used < n; i++)
    if (mask & rights[i].bit)
      used += (size_t)snprintf(out + used, n - used, "%s%s", used ? ", " : "",
                               folder ? rights[i].dir : rights[i].file);
}

#define WRITE_RIGHTS (FILE_WRITE_DATA | FILE_APPEND_DATA | FILE_WRITE_EA | FILE_DELETE_CHILD | \
                      FILE_WRITE_ATTRIBUTES | DELETE | WRITE_DAC | WRITE_OWNER | GENERIC_WRITE | \
                      GENERIC_ALL)

/* The first entry of dacl that gives someone untrusted a write-type right, in words. */
static void ace_fault(PACL dacl, bool folder, char *why, size_t n)
{
  ACL_SIZE_INFORMATION ai;
  char who[300], rights[300];
  if (!GetAclInformation(dacl, &ai, sizeof ai, AclSizeInformation)) {
    snprintf(why, n, "has a DACL that cannot be read");
    return;
  }
  for (DWORD i = 0; i < ai.AceCount && !why[0]; i++) {
    ACE_HEADER *h = NULL;
    if (!GetAce(dacl, i, (void **)&h)) {
      snprintf(why, n, "has a DACL that cannot be read");
    } else if (h->AceFlags & INHERIT_ONLY_ACE) {
      continue;   /* for what is created inside, which is checked itself */
    } else if (h->AceType == ACCESS_ALLOWED_ACE_TYPE ||
               h->AceType == ACCESS_ALLOWED_CALLBACK_ACE_TYPE) {
      /* Both start with the header, the mask and the SID; a callback (conditional) entry
       * counts as if its condition held. */
      ACCESS_ALLOWED_ACE *a = (ACCESS_ALLOWED_ACE *)h;
      if (!(a->Mask & WRITE_RIGHTS) || sid_trusted(&a->SidStart))
        continue;
      sid_words(&a->SidStart, who, sizeof who);
      rights_words(a->Mask, folder, rights, sizeof rights);
      snprintf(why, n, "lets %s change it (%s)", who, rights);
    } else if (h->AceType != ACCESS_DENIED_ACE_TYPE &&
               h->AceType != ACCESS_DENIED_CALLBACK_ACE_TYPE) {
      snprintf(why, n, "has an access entry of a type kvvm does not check (%u)", h->AceType);
    }
  }
}

void kvvm_hooks_sd_fault(PSECURITY_DESCRIPTOR sd, bool folder, char *why, size_t n)
{
  PSID owner = NULL;
  PACL dacl = NULL;
  BOOL present = FALSE, defaulted = FALSE;
  char who[300];
  why[0] = '\0';
  if (!GetSecurityDescriptorOwner(sd, &owner, &defaulted) || !owner) {
    snprintf(why, n, "has no owner");
  } else if (!sid_trusted(owner)) {
    sid_words(owner, who, sizeof who);
    snprintf(why, n, "is owned by %s, who can change its permissions (the owner must be "
             "SYSTEM, Administrators or TrustedInstaller)", who);
  } else if (!GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted)) {
    snprintf(why, n, "has a DACL that cannot be read");
  } else if (!present || !dacl) {
    snprintf(why, n, "has no DACL, which lets everyone change it");
  } else {
    ace_fault(dacl, folder, why, n);
  }
}

void kvvm_hooks_handle_fault(HANDLE h, const char *path, bool folder, char *why, size_t n)
{
  PSECURITY_DESCRIPTOR sd = NULL;
  char err[160];
  why[0] = '\0';
  if (kvvm_win_wine_skips_owner(path))
    return;
  DWORD e = GetSecurityInfo(h, SE_FILE_OBJECT,
                            OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, NULL, NULL,
                            NULL, NULL, &sd);
  if (e != ERROR_SUCCESS)
    snprintf(why, n, "cannot be examined: %s", kvvm_win_strerror(e, err, sizeof err));
  else
    kvvm_hooks_sd_fault(sd, folder, why, n);
  LocalFree(sd);
}
