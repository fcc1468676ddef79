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
  unsigned retain;                   /* versions kept per certificate, the current included */
  struct store_win_touched *touched; /* records installed or kept this pass (prune) */
  size_t ntouched;
};

/* One install or keep: the certificate, its record and where the answer goes. */
struct op {
  struct kvvm_store *s;
  const struct kvvm_cert_cfg *cc;
  struct store_win_where where;
  json_t *rec;
  struct store_win_key key;  /* the installed version's key, once known */
  struct kvvm_install_result *res;
  char *root_note;           /* the secret's root, not added anywhere (store_chain_windows.c) */
  /* accounts (store_win_acl_want): the readers each key of this certificate gets, as SIDs,
   * and the DACL that says so; grant/grant_why: names that did not resolve. */
  char **readers;
  char *sddl;
  bool dacl_set;             /* put() gave the key it imported this DACL */
  enum kvvm_err grant;
  char grant_why[512];
};

/* op->where from op->cc->store_dir; KVVM_E_STORE (res->why said) when it names no store. */
enum kvvm_err store_win_where_parse(struct op *op);
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
/* Delete the key from its provider (CAPI: the container; CNG: the key); KVVM_E_NOENT,
 * unlogged, when it is not there. */
enum kvvm_err store_win_key_delete(const struct store_win_key *k);

/* Check that a Server Authentication certificate's chain builds here (else KVVM_E_CERT,
 * why names the missing issuer, nothing written), then put the bundle's intermediates into
 * the location's CA store; a root goes nowhere. */
enum kvvm_err store_win_chain(struct op *op, const struct kvvm_bundle *b);

/* The bundle's intermediates into the CA store of the location, then (unless a certificate
 * with that thumbprint and a key is there already) the leaf and its key: imported, named,
 * added, committed, found again. op->key is set to the key the store's leaf uses. */
enum kvvm_err store_win_put(struct op *op, const struct kvvm_bundle *b, const char *version);

/* ---- accounts: store_acl_windows.c (names, SDDL, a key's DACL) ---- */

/* accounts' SIDs ("S-1-5-20"): sorted, no repeats, SYSTEM and Administrators left out (they
 * always have full control). A name that does not resolve is left out and named in why
 * (KVVM_E_GRANT); *sids (NULL-terminated) still holds the others. */
enum kvvm_err store_win_acl_resolve(char *const *accounts, char ***sids, char *why, size_t n);
void store_win_acl_free(char **sids);
bool store_win_acl_has(char *const *sids, const char *sid);
/* The key's DACL for these readers: "D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GR;;;S-1-5-20)". */
char *store_win_acl_sddl(char *const *sids);
/* sddl as Windows writes it back ("...(A;;GR;;;NS)"), or NULL when it is not SDDL. */
char *store_win_acl_canonical(const char *sddl);
/* "DOMAIN\name (SID)" for one SID; "SYSTEM, Administrators, <each of sids>" for a key. */
char *store_win_acl_name(const char *sid);
char *store_win_acl_display(char *const *sids);
/* The SIDs other than SYSTEM and Administrators an SD's DACL lets read the key. */
enum kvvm_err store_win_acl_sd_readers(PSECURITY_DESCRIPTOR sd, char ***sids);
/* The key's DACL: as SDDL and/or its readers (either may be NULL); *code says why not. */
enum kvvm_err store_win_acl_read(const struct store_win_key *k, char **sddl, char ***readers,
                                 DWORD *code);
/* The key's DACL becomes sddl (unless its entries are those already); KVVM_E_GRANT and why. */
enum kvvm_err store_win_acl_set(const struct store_win_key *k, const char *sddl, char *why,
                                size_t n);

/* ---- accounts per certificate: store_grant_windows.c ---- */

/* op->readers, op->sddl, op->grant from op->cc->accounts. */
void store_win_acl_want(struct op *op);
void store_win_acl_clear(struct op *op);
/* The readers as the record lists them (a JSON array of SID strings). */
json_t *store_win_acl_json(char *const *sids);
/* Every version of op->rec still in the store whose key does not have op->readers gets
 * them (grants taken back too), its entry's "readers" and the record's "readers" updated;
 * KVVM_E_GRANT, with res->why naming each failure and each name not resolved. */
enum kvvm_err store_win_acl_follow(struct op *op);

/* ---- linkOnRenewal: store_link_windows.c ---- */

/* After a new version (thumb) is in the store: its predecessors there get
 * CERT_RENEWAL_PROP_ID when linkOnRenewal asks for it; the record's "note" says which were
 * linked and which not and why (removed without linkOnRenewal). */
void store_win_link(struct op *op, const char *thumb);

/* ---- Old versions (store_prune_windows.c, store_prune_plan_windows.c,
 * store_http_windows.c) ---- */

/* One version as the record lists it ("versions"). */
struct store_win_prune_ver {
  const char *thumbprint, *key_provider, *key_container;
};
/* A certificate with a key, in a store that kvvm's records name. */
struct store_win_key_user {
  char *store_dir, *thumbprint, *key_provider, *key_container;
};
/* An HTTP.sys SSL binding: "0.0.0.0:443", "[::]:443", "www.example.com:443". */
struct store_win_binding {
  char *name;
  char thumbprint[41];
};
enum store_win_prune_what {
  STORE_WIN_KEEP,        /* the current version, or within the retention */
  STORE_WIN_KEEP_BOUND,  /* beyond the retention, but an HTTP.sys binding names it */
  STORE_WIN_POSTPONE,    /* beyond the retention; the bindings could not be read */
  STORE_WIN_REMOVE,      /* the certificate goes, and its key unless key_user or no key */
};
struct store_win_prune_step {
  enum store_win_prune_what what;
  const char *binding;                        /* KEEP_BOUND: the binding's name */
  bool delete_key;                            /* REMOVE: the key goes too */
  const struct store_win_key_user *key_user;  /* REMOVE: why the key stays */
};
struct store_win_prune_in {
  const char *store_dir, *current;  /* the record's store and current thumbprint */
  unsigned retain;
  const struct store_win_prune_ver *v;  /* oldest first */
  size_t nv;
  bool bindings_known;
  const struct store_win_binding *bindings;
  size_t nbindings;
  const struct store_win_key_user *users;
  size_t nusers;
};
/* What to do with each version (step[i] for in->v[i]); the count to remove. No I/O. */
size_t store_win_prune_plan(const struct store_win_prune_in *in, struct store_win_prune_step *step);
/* HTTP.sys's SSL bindings (IP:port and hostname:port); false, why said, when they cannot
 * be read. */
bool store_win_http_bindings(struct store_win_binding **out, size_t *n, char *why, size_t whyn);
void store_win_bindings_free(struct store_win_binding *b, size_t n);
/* This record was installed or kept in this pass: its old versions are pruned at commit. */
void store_win_prune_note(struct kvvm_store *s, const char *url, const char *store_dir);
/* At commit, once the record is saved: each noted record's versions beyond s->retain
 * removed (certificate, then key, then entry), kept (bound) or postponed, and said. */
void store_win_prune_pass(struct kvvm_store *s);
void store_win_prune_free(struct kvvm_store *s);

#endif
