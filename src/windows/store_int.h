/* Inside the Windows store backend: one install or keep (struct op), where it goes, the key
 * a certificate uses, and the parts that store_windows.c (the store.h calls and the record)
 * drives: store_chain_windows.c (the chain), store_import_windows.c (the PKCS#12 import,
 * the add). */
#ifndef KVVM_WINDOWS_STORE_INT_H
#define KVVM_WINDOWS_STORE_INT_H

#include <stdbool.h>
#include <jansson.h>

#include "kvvm/certmat.h"
#include "kvvm/store.h"

#include <windows.h>
#include <wincrypt.h>

#define STORE_WIN_ENCODING (X509_ASN_ENCODING | PKCS_7_ASN_ENCODING)

/* A system store named by a store_dir: where it lives and its name there. */
struct store_win_where {
  DWORD location;  /* CERT_SYSTEM_STORE_LOCAL_MACHINE or _CURRENT_USER */
  DWORD keyset;    /* CRYPT_MACHINE_KEYSET or CRYPT_USER_KEYSET, to match */
  wchar_t *name;
};

/* The private key a certificate names (CERT_KEY_PROV_INFO_PROP_ID), in UTF-8. */
struct store_win_key {
  char *provider;   /* "Microsoft Software Key Storage Provider", "Microsoft Enhanced ..." */
  char *container;  /* the key's own container (CAPI) or key name (CNG) */
  bool cng;         /* a CNG key storage provider; else a CAPI CSP */
  unsigned long prov_type;  /* the CAPI provider type (0 for CNG) */
  bool machine;     /* in the machine keyset */
};

struct kvvm_store {
  struct kvvm_installed *inst;
};

/* One install or keep: the certificate, its record and where the answer goes. */
struct op {
  struct kvvm_store *s;
  const struct kvvm_cert_cfg *cc;
  struct store_win_where where;
  json_t *rec;
  struct store_win_key key;  /* the installed version's key, once known */
  struct kvvm_install_result *res;
};

/* res->why = "<store_dir>: what: <Windows' words for code>". */
void store_win_say(const struct op *op, const char *what, DWORD code);
/* The system store of op->where; NULL (and, when write, why said) if it cannot be opened.
 * Read-only handles never create the store. */
HCERTSTORE store_win_open(const struct op *op, bool write);
/* The certificate with this SHA-1 thumbprint (40 hex digits) in h, or NULL. */
PCCERT_CONTEXT store_win_find(HCERTSTORE h, const char *thumb);
/* The certificate has a CERT_KEY_PROV_INFO_PROP_ID (a private key it names). */
bool store_win_has_key(PCCERT_CONTEXT c);
/* The certificate with this thumbprint and a key is in op's system store, seen through a
 * handle of its own (not one that may hold what this process just added in memory). */
bool store_win_in_store(const struct op *op, const char *thumb);

/* The key c names; KVVM_E_CERT when it names none. */
enum kvvm_err store_win_key_of(PCCERT_CONTEXT c, struct store_win_key *out);
void store_win_key_clear(struct store_win_key *k);
/* Delete the key from its provider (CAPI: the container; CNG: the key). */
enum kvvm_err store_win_key_delete(const struct store_win_key *k);

/* Check that a Server Authentication certificate's chain builds here (else KVVM_E_CERT,
 * why names the missing issuer, nothing written), then put the bundle's intermediates into
 * the location's CA store; a root goes nowhere. */
enum kvvm_err store_win_chain(struct op *op, const struct kvvm_bundle *b);

/* The bundle's intermediates into the CA store of the location, then (unless a certificate
 * with that thumbprint and a key is there already) the leaf and its key: imported, named,
 * added, committed, found again. op->key is set to the key the store's leaf uses. */
enum kvvm_err store_win_put(struct op *op, const struct kvvm_bundle *b, const char *version);

#endif
