/* mrseq on Windows: the agent keeps the most recent sequence number in the registry,
 * HKLM\Software\Microsoft\Windows Azure\HandlerState\<Publisher>.<Type>_<version>, value
 * SequenceNumber (DWORD); the key is named from the package folder
 * C:\Packages\Plugins\<Publisher>.<Type>\<version>. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/seqno.h"
#include "windows/win_int.h"

#define HANDLER_STATE "Software\\Microsoft\\Windows Azure\\HandlerState\\"
#define SEQ_VALUE L"SequenceNumber"

static bool is_sep(char c) { return c == '\\' || c == '/'; }

/* HANDLER_STATE "<last-but-one component>_<last component>" of root, as a new wide
 * string; NULL (logged) when root has fewer than two components. */
static wchar_t *state_key(const char *root)
{
  size_t end = strlen(root);
  while (end && is_sep(root[end - 1]))
    end--;
  size_t ver = end;
  while (ver && !is_sep(root[ver - 1]))
    ver--;
  size_t name = ver ? ver - 1 : 0;
  while (name && !is_sep(root[name - 1]))
    name--;
  if (ver == 0 || ver - 1 == name || ver == end) {
    KVVM_ERR("%s: not a package folder <Publisher>.<Type>\\<version>", root);
    return NULL;
  }
  char *key = kvvm_xasprintf(HANDLER_STATE "%.*s_%.*s", (int)(ver - 1 - name), root + name,
                             (int)(end - ver), root + ver);
  wchar_t *w = kvvm_win_wide(key);
  if (!w)
    KVVM_ERR("%s: not valid UTF-8", root);
  free(key);
  return w;
}

enum kvvm_err kvvm_seqno_read_mrseq(const char *root, long *out)
{
  char err[160];
  wchar_t *key = state_key(root);
  if (!key)
    return KVVM_E_SEQNO;
  DWORD v = 0, size = sizeof v;
  LSTATUS e = RegGetValueW(HKEY_LOCAL_MACHINE, key, SEQ_VALUE, RRF_RT_REG_DWORD, NULL, &v, &size);
  free(key);
  if (e == ERROR_FILE_NOT_FOUND)
    return KVVM_E_NOENT;
  if (e != ERROR_SUCCESS) {
    KVVM_WARN("HandlerState of %s: SequenceNumber unreadable (%s); ignoring it", root,
              kvvm_win_strerror((DWORD)e, err, sizeof err));
    return KVVM_E_NOENT;
  }
  *out = (long)v;
  return KVVM_OK;
}

enum kvvm_err kvvm_seqno_write_mrseq(const char *root, long seq)
{
  char err[160];
  wchar_t *key = state_key(root);
  if (!key)
    return KVVM_E_SEQNO;
  HKEY h = NULL;
  DWORD v = (DWORD)seq;
  LSTATUS e = RegCreateKeyExW(HKEY_LOCAL_MACHINE, key, 0, NULL, 0, KEY_SET_VALUE, NULL, &h, NULL);
  if (e == ERROR_SUCCESS)
    e = RegSetValueExW(h, SEQ_VALUE, 0, REG_DWORD, (const BYTE *)&v, sizeof v);
  if (h)
    RegCloseKey(h);
  free(key);
  if (e == ERROR_SUCCESS)
    return KVVM_OK;
  KVVM_ERR("HandlerState of %s: cannot write SequenceNumber: %s", root,
           kvvm_win_strerror((DWORD)e, err, sizeof err));
  return KVVM_E_IO;
}
