/* Does a Server Authentication leaf's chain reach a root this system trusts, from the
 * secret's own certificates? nginx and Apache send what the file holds: a missing
 * intermediate means clients that refuse the server, though the file itself is fine. The
 * check indexes the trust store once per process (a PEM bundle such as Debian's
 * ca-certificates.crt; certmat_trust.c), asks nothing of the network, and only names what
 * is missing: the certificate is installed either way. */
#include <stdio.h>
#include <string.h>

#include <mbedtls/oid.h>

#include "certmat/certmat_int.h"

static bool server_auth(const mbedtls_x509_crt *c)
{
  return (c->ext_types & MBEDTLS_X509_EXT_EXTENDED_KEY_USAGE) &&
         mbedtls_x509_crt_check_extended_key_usage(c, MBEDTLS_OID_SERVER_AUTH,
                                                   MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)) == 0;
}

/* The chain above the leaf, parsed once and kept while the next leaves share it (most
 * certificates of a machine come from one or two issuers): a kept issuer keeps what mbedTLS
 * caches of its key (its RSA modulus's R^2), which a fresh parse would compute again for
 * every leaf. The verification itself is unchanged. Only one thread checks chains. */
static struct {
  bool set;
  mbedtls_x509_crt crts;
} above;

static bool above_is(const struct kvvm_bundle *b)
{
  const mbedtls_x509_crt *c = &above.crts;
  for (size_t i = 1; i <= b->n_chain; i++, c = c->next)
    if (!c || c->raw.len != b->order[i]->raw.len ||
        memcmp(c->raw.p, b->order[i]->raw.p, c->raw.len) != 0)
      return false;
  return above.set && !c;
}

static bool above_of(const struct kvvm_bundle *b)
{
  char unsupported[96];
  if (above_is(b))
    return true;
  mbedtls_x509_crt_free(&above.crts);
  mbedtls_x509_crt_init(&above.crts);
  above.set = true;
  for (size_t i = 1; above.set && i <= b->n_chain; i++)
    above.set = certmat_crt_parse(&above.crts, b->order[i]->raw.p, b->order[i]->raw.len,
                                  unsupported, sizeof unsupported) == 0;
  return above.set;
}

/* The leaf and its chain as one list, as a server would send them: a new leaf, linked to
 * the kept chain above it (unlinked again before the leaf is freed). */
static bool chain_of(const struct kvvm_bundle *b, mbedtls_x509_crt *out)
{
  char unsupported[96];
  if (certmat_crt_parse(out, b->order[0]->raw.p, b->order[0]->raw.len, unsupported,
                        sizeof unsupported) != 0)
    return false;
  if (b->n_chain && !above_of(b))
    return false;
  out->next = b->n_chain ? &above.crts : NULL;
  return true;
}

static bool same_name(const mbedtls_x509_buf *a, const mbedtls_x509_buf *b)
{
  return a->len == b->len && memcmp(a->p, b->p, a->len) == 0;
}

/* The words for a chain that did not verify: what is missing at its top. */
static void name_gap(const struct kvvm_bundle *b, const char *path, char *note, size_t n)
{
  const mbedtls_x509_crt *top = b->order[b->n_chain];
  char subject[256] = "?", issuer[256] = "?";
  mbedtls_x509_dn_gets(subject, sizeof subject, &top->subject);
  mbedtls_x509_dn_gets(issuer, sizeof issuer, &top->issuer);
  if (same_name(&top->subject_raw, &top->issuer_raw))
    snprintf(note, n, "chain incomplete: the root \"%s\" in the secret is not in this system's "
             "trust store (%s); clients that lack it will refuse a server using this "
             "certificate", subject, path);
  else
    snprintf(note, n, "chain incomplete: the issuer \"%s\" of \"%s\" is in neither the secret "
             "nor this system's trust store (%s); clients will refuse a server that sends "
             "this chain (add the intermediate to the secret)", issuer, subject, path);
}

enum kvvm_err kvvm_certmat_chain_gap(const struct kvvm_bundle *b, const char *trust_file,
                                     char *note, size_t n)
{
  mbedtls_x509_crt chain;
  uint32_t flags = 0;
  note[0] = '\0';
  if (!server_auth(b->order[0]))
    return KVVM_OK;
  if (!trust_file || !certmat_trust_index(trust_file))
    return KVVM_E_NOENT;
  /* mbedTLS looks for each link's issuer among the roots first: a root of the store may
   * vouch for an intermediate below the top of the secret's chain (a cross-signed one). */
  for (size_t i = 0; i <= b->n_chain; i++)
    certmat_trust_want(&b->order[i]->issuer_raw);
  mbedtls_x509_crt_init(&chain);
  enum kvvm_err rc = chain_of(b, &chain) ? KVVM_OK : KVVM_E_INTERNAL;
  /* Only trust matters: expiry and key sizes are reported elsewhere or are the CA's. */
  if (rc == KVVM_OK && mbedtls_x509_crt_verify(&chain, certmat_trust_roots(), NULL, NULL,
                                               &flags, NULL, NULL) != 0 &&
      (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED))
    name_gap(b, trust_file, note, n);
  chain.next = NULL;   /* the chain above stays kept */
  mbedtls_x509_crt_free(&chain);
  return rc;
}
