/* find_cert: looks a certificate up by SHA-1 thumbprint in a system store, from a process of
 * its own, as a service that binds the certificate would (tests/windows, run under wine).
 *   find_cert.exe LocalMachine|CurrentUser STORE THUMBPRINT
 * Prints "found <subject>; key <yes|no>" and exits 0, or "absent" and exits 1; 2 on a usage
 * or store error. `key yes` means the certificate names a private key (CERT_KEY_PROV_INFO_PROP_ID).
 * Independent of kvvm's code on purpose: the check must not share kvvm's mistakes. */
#include <windows.h>
#include <wincrypt.h>
#include <stdio.h>
#include <string.h>

static int hex_value(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static int parse_thumbprint(const char *hex, BYTE out[20])
{
  if (strlen(hex) != 40)
    return -1;
  for (int i = 0; i < 20; i++) {
    int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return -1;
    out[i] = (BYTE)(hi * 16 + lo);
  }
  return 0;
}

static HCERTSTORE open_store(const char *location, const char *name)
{
  DWORD where;
  wchar_t wname[64];
  if (strcmp(location, "LocalMachine") == 0)
    where = CERT_SYSTEM_STORE_LOCAL_MACHINE;
  else if (strcmp(location, "CurrentUser") == 0)
    where = CERT_SYSTEM_STORE_CURRENT_USER;
  else
    return NULL;
  if (!MultiByteToWideChar(CP_UTF8, 0, name, -1, wname, 64))
    return NULL;
  /* Read-only and existing only: looking must not create the store it looks in. */
  return CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0,
                       where | CERT_STORE_OPEN_EXISTING_FLAG | CERT_STORE_READONLY_FLAG, wname);
}

static void report(PCCERT_CONTEXT c)
{
  char subject[256];
  DWORD n = 0;
  CertGetNameStringA(c, CERT_NAME_SIMPLE_DISPLAY_TYPE, 0, NULL, subject, sizeof subject);
  BOOL key = CertGetCertificateContextProperty(c, CERT_KEY_PROV_INFO_PROP_ID, NULL, &n);
  printf("found %s; key %s\n", subject, key ? "yes" : "no");
}

int main(int argc, char **argv)
{
  BYTE hash[20];
  if (argc != 4 || parse_thumbprint(argv[3], hash) != 0) {
    fprintf(stderr, "usage: find_cert LocalMachine|CurrentUser STORE SHA1HEX\n");
    return 2;
  }
  HCERTSTORE store = open_store(argv[1], argv[2]);
  if (!store) {
    printf("absent (store %s\\%s cannot be opened: error %lu)\n", argv[1], argv[2], GetLastError());
    return 1;
  }
  CRYPT_HASH_BLOB blob = {sizeof hash, hash};
  PCCERT_CONTEXT c = CertFindCertificateInStore(store, X509_ASN_ENCODING | PKCS_7_ASN_ENCODING, 0,
                                                CERT_FIND_SHA1_HASH, &blob, NULL);
  int rc = 1;
  if (c) {
    report(c);
    CertFreeCertificateContext(c);
    rc = 0;
  } else {
    printf("absent\n");
  }
  CertCloseStore(store, 0);
  return rc;
}
