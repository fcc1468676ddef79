/* The secret's chain in a Windows store. Before anything is written, a certificate that
 * declares the Server Authentication usage must have a chain that builds on this machine:
 * from the secret's own certificates and the machine's stores, up to a self-signed root.
 * Schannel sends the chain it can build, so a missing intermediate means clients that refuse
 * the server; Microsoft's extension fails provisioning for it, kvvm says which certificate
 * is missing and keeps the previous version. A root that is present but not trusted here is
 * logged, not refused: the server does not need to trust its own root.
 *
 * Then intermediates go to the CA store of the same location, as Microsoft's extension
 * does, and a root to no store (logged once per install: which roots the machine trusts is
 * not a secret's to change). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "windows/store_int.h"
#include "windows/win_int.h"

/* Signed by its own key: a root, whose trust is the machine's to decide, not a secret's. */
static bool self_signed(PCCERT_CONTEXT c)
{
  DWORD failed = CERT_STORE_SIGNATURE_FLAG;  /* cleared when the signature verifies */
  return CertCompareCertificateName(X509_ASN_ENCODING, &c->pCertInfo->Subject,
                                    &c->pCertInfo->Issuer) &&
         CertVerifySubjectCertificateContext(c, c, &failed) && !failed;
}

/* Logged, and kept for the status (the record's note) of the version being installed. */
static void tell_root(struct op *op, PCCERT_CONTEXT c)
{
  wchar_t name[256] = L"";
  CertGetNameStringW(c, CERT_NAME_SIMPLE_DISPLAY_TYPE, 0, NULL, name, 256);
  char *u = kvvm_win_utf8(name);
  free(op->root_note);
  op->root_note = kvvm_xasprintf("the root \"%s\" in the secret was not added to any store: "
                                 "which roots this machine trusts is not a secret's to change",
                                 u ? u : "?");
  KVVM_INFO("%s: %s", op->cc->url, op->root_note);
  free(u);
}

/* One intermediate into the location's CA store (opened on first use), as Microsoft's
 * extension does; one already there is left as it is. */
static enum kvvm_err add_intermediate(struct op *op, HCERTSTORE *ca, PCCERT_CONTEXT c)
{
  if (!*ca)
    *ca = CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0, op->where.location, L"CA");
  if (*ca && CertAddCertificateContextToStore(*ca, c, CERT_STORE_ADD_USE_EXISTING, NULL))
    return KVVM_OK;
  store_win_say(op, *ca ? "cannot add an intermediate certificate to the CA store"
              : "cannot open the CA store", GetLastError());
  return KVVM_E_IO;
}

/* The bundle's chain (not its unrelated certificates), taken from the bundle rather than
 * from the PKCS#12 import, which drops self-signed certificates under wine: intermediates
 * to CA, a root nowhere. Before the leaf, so an application that picks the leaf up finds
 * its chain. */
static enum kvvm_err add_chain(struct op *op, const struct kvvm_bundle *b)
{
  HCERTSTORE ca = NULL;
  enum kvvm_err rc = KVVM_OK;
  for (size_t i = 1; rc == KVVM_OK && i <= kvvm_bundle_chain_len(b); i++) {
    size_t len = 0;
    const unsigned char *der = kvvm_bundle_cert_der(b, i, &len);
    PCCERT_CONTEXT c = CertCreateCertificateContext(X509_ASN_ENCODING, der, (DWORD)len);
    if (!c) {
      store_win_say(op, "Windows cannot read a certificate of the chain", GetLastError());
      rc = KVVM_E_CERT;
    } else if (self_signed(c)) {
      tell_root(op, c);
    } else {
      rc = add_intermediate(op, &ca, c);
    }
    CertFreeCertificateContext(c);
  }
  if (ca) {
    CertControlStore(ca, 0, CERT_STORE_CTRL_COMMIT, NULL);
    CertCloseStore(ca, 0);
  }
  return rc;
}

/* The leaf lists Server Authentication in its extended key usage. A certificate without the
 * extension is not checked: it declares no purpose, and most of them are not TLS servers. */
static bool server_auth(PCCERT_CONTEXT c)
{
  DWORD n = 0;
  bool yes = false;
  if (!CertGetEnhancedKeyUsage(c, CERT_FIND_EXT_ONLY_ENHKEY_USAGE_FLAG, NULL, &n))
    return false;
  CERT_ENHKEY_USAGE *u = kvvm_xmalloc(n);
  if (CertGetEnhancedKeyUsage(c, CERT_FIND_EXT_ONLY_ENHKEY_USAGE_FLAG, u, &n))
    for (DWORD i = 0; i < u->cUsageIdentifier; i++)
      yes = yes || strcmp(u->rgpszUsageIdentifier[i], szOID_PKIX_KP_SERVER_AUTH) == 0;
  free(u);
  return yes;
}

/* A memory store holding the secret's certificates, and the leaf's context there. */
static HCERTSTORE bundle_store(const struct kvvm_bundle *b, PCCERT_CONTEXT *leaf)
{
  HCERTSTORE m = CertOpenStore(CERT_STORE_PROV_MEMORY, 0, 0, 0, NULL);
  for (size_t i = 0; m && i <= kvvm_bundle_chain_len(b); i++) {
    size_t len = 0;
    const unsigned char *der = kvvm_bundle_cert_der(b, i, &len);
    CertAddEncodedCertificateToStore(m, X509_ASN_ENCODING, der, (DWORD)len,
                                     CERT_STORE_ADD_USE_EXISTING, i == 0 ? leaf : NULL);
  }
  return m;
}

/* A chain engine of its own for the store's location: the shared ones keep the stores as
 * they were first opened, so an intermediate an earlier certificate of this pass brought,
 * or a root an administrator just added, would not be seen. */
static HCERTCHAINENGINE engine_for(const struct op *op)
{
  CERT_CHAIN_ENGINE_CONFIG cfg = {.cbSize = sizeof cfg};
  HCERTCHAINENGINE e = NULL;
  if (op->where.location == CERT_SYSTEM_STORE_LOCAL_MACHINE)
    cfg.dwFlags = CERT_CHAIN_USE_LOCAL_MACHINE_STORE;
  return CertCreateCertificateChainEngine(&cfg, &e) ? e : NULL;
}

/* The simple display name (the CN, else the first name part) of c or of its issuer. */
static char *name_of(PCCERT_CONTEXT c, bool issuer)
{
  wchar_t w[512] = L"";
  CertGetNameStringW(c, CERT_NAME_SIMPLE_DISPLAY_TYPE, issuer ? CERT_NAME_ISSUER_FLAG : 0, NULL,
                     w, 512);
  char *u = kvvm_win_utf8(w);
  return u ? u : kvvm_xstrdup("?");
}

/* The chain stops at a certificate whose issuer is nowhere to be found: name both. */
static enum kvvm_err missing_issuer(struct op *op, PCCERT_CHAIN_CONTEXT chain)
{
  const CERT_SIMPLE_CHAIN *simple = chain->rgpChain[chain->cChain - 1];
  PCCERT_CONTEXT last = simple->rgpElement[simple->cElement - 1]->pCertContext;
  char *subject = name_of(last, false), *issuer = name_of(last, true);
  snprintf(op->res->why, sizeof op->res->why, "the certificate is for Server Authentication "
           "but its chain does not build on this machine: the issuer \"%s\" of \"%s\" is "
           "neither in the secret nor in this machine's certificate stores; not installed "
           "(put the missing certificate in the secret, or in this machine's CA store for an "
           "intermediate or Root store for a root)", issuer,
           subject);
  free(subject);
  free(issuer);
  return KVVM_E_CERT;
}

static void tell_untrusted(const struct op *op, PCCERT_CHAIN_CONTEXT chain)
{
  const CERT_SIMPLE_CHAIN *simple = chain->rgpChain[chain->cChain - 1];
  char *root = name_of(simple->rgpElement[simple->cElement - 1]->pCertContext, false);
  KVVM_INFO("%s: the chain ends at the root \"%s\", which this machine does not trust; "
            "installed anyway (a server need not trust its own root; clients must)",
            op->cc->url, root);
  free(root);
}

static enum kvvm_err check_server_chain(struct op *op, const struct kvvm_bundle *b)
{
  PCCERT_CONTEXT leaf = NULL;
  PCCERT_CHAIN_CONTEXT chain = NULL;
  HCERTSTORE extra = bundle_store(b, &leaf);
  CERT_CHAIN_PARA para = {.cbSize = sizeof para};
  HCERTCHAINENGINE engine = NULL;
  enum kvvm_err rc = KVVM_OK;
  if (!leaf || !server_auth(leaf))
    goto out;
  if (!(engine = engine_for(op)) || !CertGetCertificateChain(engine, leaf, NULL, extra, &para, 0, NULL, &chain)) {
    store_win_say(op, "cannot build the certificate's chain", GetLastError());
    rc = KVVM_E_CERT;
  } else if (chain->TrustStatus.dwErrorStatus & CERT_TRUST_IS_PARTIAL_CHAIN) {
    rc = missing_issuer(op, chain);
  } else if (chain->TrustStatus.dwErrorStatus & CERT_TRUST_IS_UNTRUSTED_ROOT) {
    tell_untrusted(op, chain);
  }
out:
  if (chain)
    CertFreeCertificateChain(chain);
  if (engine)
    CertFreeCertificateChainEngine(engine);
  CertFreeCertificateContext(leaf);
  if (extra)
    CertCloseStore(extra, 0);
  return rc;
}

enum kvvm_err store_win_chain(struct op *op, const struct kvvm_bundle *b)
{
  enum kvvm_err rc = check_server_chain(op, b);
  return rc == KVVM_OK ? add_chain(op, b) : rc;
}
