/* Certificate material: the PEM reader in every order and key form, the bundle builder
 * (leaf by key, chain by issuer, unrelated kept, facts), the PEM and PKCS#12 writers read
 * back by the openssl CLI and by ourselves, and contentType dispatch. Fixtures come from
 * tests/data/certmat/gen.sh, run once into a temp folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/base64.h>

#include "kt.h"
#include "certmat/certmat_int.h"
#include "kvvm/certmat.h"
#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"

static char *fx; /* the fixture folder */

struct kind {
  const char *name, *ca; /* leaf name, CA prefix */
  const char *type;
  unsigned bits;
};

static const struct kind kinds[] = {
    {"rsa2048", "rsa", "RSA", 2048}, {"rsa4096", "rsa", "RSA", 4096},
    {"ec256", "ec256", "EC", 256},   {"ec384", "ec384", "EC", 384},
    {"ec521", "ec521", "EC", 521},
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

static const char junk[] = "Bag Attributes\n    friendlyName: kv-test\nsubject=/CN=x\n\n";

static char *fpath(const char *name)
{
  return kvvm_path_join(fx, name);
}

static char *slurp(const char *name)
{
  char *p = fpath(name), *text = NULL;
  if (kvvm_file_read(p, 1 << 20, &text, NULL) != KVVM_OK)
    fprintf(stderr, "  cannot read fixture %s\n", p);
  free(p);
  return text;
}

#define sh kt_sh

/* The named fixture files joined, with junk text before, between and after them. */
static char *join(const char *const *names, size_t n)
{
  char *out = kvvm_xstrdup(junk);
  for (size_t i = 0; i < n; i++) {
    char *part = slurp(names[i]);
    char *next = kvvm_xasprintf("%s%s%s", out, part ? part : "", junk);
    free(part);
    free(out);
    out = next;
  }
  return out;
}

static enum kvvm_err from_files(const char *const *names, size_t n, struct kvvm_bundle **b,
                                char *why, size_t whylen)
{
  char *text = join(names, n);
  enum kvvm_err rc = kvvm_certmat_from_pem(text, strlen(text), b, why, whylen);
  free(text);
  return rc;
}

static char *name_of(const char *a, const char *b)
{
  return kvvm_xasprintf("%s%s", a, b);
}

/* Everything the facts promise, against what openssl says about the same file. */
static void check_facts(const struct kind *k, const struct kvvm_bundle *b)
{
  const struct kvvm_cert_facts *f = kvvm_bundle_facts(b);
  char *n = name_of(k->name, ".sha1"), *sha = slurp(n), *dn = NULL;
  free(n);
  if (sha)
    sha[strcspn(sha, "\n")] = '\0';
  KT_STREQ(f->thumbprint, sha);
  dn = kvvm_xasprintf("CN=%s.example.com, O=kvvm test", k->name);
  KT_STREQ(f->subject, dn);
  free(dn);
  dn = kvvm_xasprintf("CN=Test Intermediate CA %s", k->ca);
  KT_STREQ(f->issuer, dn);
  free(dn);
  KT_STREQ(f->key_type, k->type);
  KT_CHECK(f->key_bits == k->bits);
  char *dns = kvvm_xasprintf("%s.example.com", k->name);
  char *www = kvvm_xasprintf("www.%s.example.com", k->name);
  char *uri = kvvm_xasprintf("https://%s.example.com/id", k->name);
  const char *want[] = {dns, www, "10.1.2.3", "2001:db8::1", uri, NULL};
  for (size_t i = 0; want[i]; i++)
    KT_STREQ(f->sans ? f->sans[i] : NULL, want[i]);
  KT_CHECK(f->sans && f->sans[5] == NULL);
  free(dns);
  free(www);
  free(uri);
  n = name_of(k->name, ".dates");
  char *dates = slurp(n);
  long long nb = 0, na = 0;
  KT_CHECK(dates && sscanf(dates, "%lld %lld", &nb, &na) == 2);
  KT_CHECK((long long)f->not_before == nb && (long long)f->not_after == na);
  free(dates);
  free(n);
  free(sha);
}

/* Every chain type, key first and the chain upside down. */
static void chains_all_types(void)
{
  for (size_t i = 0; i < NKINDS; i++) {
    const struct kind *k = &kinds[i];
    char *key = name_of(k->name, ".key"), *crt = name_of(k->name, ".crt");
    char *root = name_of(k->ca, "-root.crt"), *in = name_of(k->ca, "-int.crt");
    const char *names[] = {key, root, crt, in};
    struct kvvm_bundle *b = NULL;
    char why[256] = "";
    KT_CHECK(from_files(names, 4, &b, why, sizeof why) == KVVM_OK);
    if (b) {
      check_facts(k, b);
      KT_CHECK(kvvm_bundle_chain_len(b) == 2 && kvvm_bundle_unrelated_len(b) == 0);
    } else {
      fprintf(stderr, "  %s: %s\n", k->name, why);
    }
    kvvm_bundle_free(b);
    free(key);
    free(crt);
    free(root);
    free(in);
  }
}

static char *expected_certs(const char *const *names, size_t n)
{
  char *out = kvvm_xstrdup("");
  for (size_t i = 0; i < n; i++) {
    char *part = slurp(names[i]), *next = kvvm_xasprintf("%s%s", out, part ? part : "");
    free(part);
    free(out);
    out = next;
  }
  return out;
}

/* Output order is leaf, intermediate, root, then the key, whatever the input order. */
static bool pem_order_ok(const struct kvvm_bundle *b, const char *want_certs)
{
  char *pem = NULL;
  size_t len = 0;
  if (kvvm_bundle_to_pem(b, &pem, &len) != KVVM_OK)
    return false;
  size_t n = strlen(want_certs);
  bool ok = len > n && strncmp(pem, want_certs, n) == 0 &&
            strncmp(pem + n, "-----BEGIN PRIVATE KEY-----\n", 28) == 0 &&
            strstr(pem + n + 28, "-----BEGIN") == NULL;
  kvvm_free_secret(pem, len);
  return ok;
}

/* certificate i of b is the one PEM certificate in fixture file name. */
static bool der_is(const struct kvvm_bundle *b, size_t i, const char *name)
{
  char *pem = slurp(name);
  unsigned char der[4096];
  size_t n = 0, len = 0;
  const char *body = pem ? strstr(pem, "-----\n") : NULL;
  const char *end = pem ? strstr(pem, "-----END") : NULL;
  const unsigned char *got = kvvm_bundle_cert_der(b, i, &len);
  bool ok = body && end && mbedtls_base64_decode(der, sizeof der, &n, (const unsigned char *)
                                                 body + 6, (size_t)(end - body - 6)) == 0 &&
            got && len == n && memcmp(got, der, n) == 0;
  free(pem);
  return ok;
}

/* kvvm_bundle_cert_der: the leaf, then the chain in issuing order, whatever the input order;
 * nothing beyond the chain. */
static void cert_der_in_chain_order(void)
{
  const char *names[] = {"rsa-root.crt", "rsa2048.trad.key", "rsa-int.crt", "rsa2048.crt"};
  struct kvvm_bundle *b = NULL;
  char why[256] = "";
  size_t len = 1;
  KT_CHECK(from_files(names, 4, &b, why, sizeof why) == KVVM_OK);
  if (!b)
    return;
  KT_CHECK(der_is(b, 0, "rsa2048.crt") && der_is(b, 1, "rsa-int.crt") &&
           der_is(b, 2, "rsa-root.crt"));
  KT_CHECK(kvvm_bundle_cert_der(b, 3, &len) == NULL && len == 0);
  kvvm_bundle_free(b);
}

/* All 24 orders of leaf, intermediate, root and key, junk between every block. */
static void pem_every_order(void)
{
  const char *items[] = {"rsa2048.crt", "rsa-int.crt", "rsa-root.crt", "rsa2048.trad.key"};
  char *want = expected_certs(items, 3);
  int perm[4] = {0, 1, 2, 3}, count = 0;
  for (int a = 0; a < 4; a++)
    for (int b = 0; b < 4; b++)
      for (int c = 0; c < 4; c++) {
        int d = 6 - a - b - c;
        if (a == b || a == c || b == c || d == a || d == b || d == c || d < 0 || d > 3)
          continue;
        perm[0] = a, perm[1] = b, perm[2] = c, perm[3] = d;
        const char *names[4];
        for (int i = 0; i < 4; i++)
          names[i] = items[perm[i]];
        struct kvvm_bundle *bd = NULL;
        char why[256] = "";
        KT_CHECK(from_files(names, 4, &bd, why, sizeof why) == KVVM_OK);
        KT_CHECK(bd && kvvm_bundle_chain_len(bd) == 2 && pem_order_ok(bd, want));
        kvvm_bundle_free(bd);
        count++;
      }
  KT_CHECK(count == 24);
  free(want);
}

static void check_one(const char *const *names, size_t n, unsigned bits)
{
  struct kvvm_bundle *b = NULL;
  char why[256] = "";
  KT_CHECK(from_files(names, n, &b, why, sizeof why) == KVVM_OK);
  KT_CHECK(b && kvvm_bundle_facts(b)->key_bits == bits);
  if (!b)
    fprintf(stderr, "  %s: %s\n", names[0], why);
  kvvm_bundle_free(b);
}

/* PKCS#8, PKCS#1 and SEC1 keys, and `ecparam -genkey` output with its parameters block. */
static void key_forms(void)
{
  for (size_t i = 0; i < NKINDS; i++) {
    char *crt = name_of(kinds[i].name, ".crt"), *p8 = name_of(kinds[i].name, ".key");
    char *trad = name_of(kinds[i].name, ".trad.key");
    const char *a[] = {crt, p8}, *b[] = {trad, crt};
    check_one(a, 2, kinds[i].bits);
    check_one(b, 2, kinds[i].bits);
    char *text = slurp(trad);
    KT_CHECK(text && strstr(text, i < 2 ? "BEGIN RSA PRIVATE KEY" : "BEGIN EC PRIVATE KEY"));
    free(text);
    free(crt);
    free(p8);
    free(trad);
  }
  const char *ecparam[] = {"ec256.ecparam.key", "ecparam.crt"};
  check_one(ecparam, 2, 256);
}

static void unrelated_kept(void)
{
  const char *names[] = {"unrel.crt", "rsa-root.crt", "rsa2048.key", "rsa-int.crt",
                         "rsa2048.crt"};
  const char *order[] = {"rsa2048.crt", "rsa-int.crt", "rsa-root.crt", "unrel.crt"};
  struct kvvm_bundle *b = NULL;
  char why[256] = "", *want = expected_certs(order, 4);
  KT_CHECK(from_files(names, 5, &b, why, sizeof why) == KVVM_OK);
  KT_CHECK(b && kvvm_bundle_chain_len(b) == 2 && kvvm_bundle_unrelated_len(b) == 1);
  KT_CHECK(b && pem_order_ok(b, want));
  kvvm_bundle_free(b);
  free(want);
  /* A partial chain is a chain: no root, or the leaf alone. */
  const char *partial[] = {"rsa-int.crt", "rsa2048.key", "rsa2048.crt"};
  KT_CHECK(from_files(partial, 3, &b, why, sizeof why) == KVVM_OK);
  KT_CHECK(b && kvvm_bundle_chain_len(b) == 1 && kvvm_bundle_unrelated_len(b) == 0);
  kvvm_bundle_free(b);
  KT_CHECK(from_files(partial + 1, 2, &b, why, sizeof why) == KVVM_OK);
  KT_CHECK(b && kvvm_bundle_chain_len(b) == 0);
  kvvm_bundle_free(b);
  /* Overlapping files pasted together: a second copy is neither chain nor unrelated. */
  const char *dup[] = {"rsa2048.crt", "rsa-int.crt", "rsa2048.key", "rsa-int.crt",
                       "rsa-root.crt", "rsa2048.crt"};
  const char *once[] = {"rsa2048.crt", "rsa-int.crt", "rsa-root.crt"};
  want = expected_certs(once, 3);
  KT_CHECK(from_files(dup, 6, &b, why, sizeof why) == KVVM_OK);
  KT_CHECK(b && kvvm_bundle_chain_len(b) == 2 && kvvm_bundle_unrelated_len(b) == 0);
  KT_CHECK(b && pem_order_ok(b, want));
  kvvm_bundle_free(b);
  free(want);
}

/* Windows line ends, as text uploaded from a Windows machine has them. */
static void crlf_text(void)
{
  const char *names[] = {"ec384.key", "ec384.crt", "ec384-int.crt"};
  char *text = join(names, 3), *crlf = kvvm_xmalloc(2 * strlen(text) + 1), *o = crlf;
  for (const char *c = text; *c; c++) {
    if (*c == '\n')
      *o++ = '\r';
    *o++ = *c;
  }
  *o = '\0';
  struct kvvm_bundle *b = NULL;
  char why[256] = "";
  KT_CHECK(kvvm_certmat_from_pem(crlf, strlen(crlf), &b, why, sizeof why) == KVVM_OK);
  KT_CHECK(b && kvvm_bundle_chain_len(b) == 1 && kvvm_bundle_facts(b)->key_bits == 384);
  kvvm_bundle_free(b);
  free(crlf);
  free(text);
}

static void expect_error(const char *const *names, size_t n, const char *words)
{
  struct kvvm_bundle *b = NULL;
  char why[256] = "";
  KT_CHECK(from_files(names, n, &b, why, sizeof why) == KVVM_E_CERT && b == NULL);
  KT_CONTAINS(why, words);
}

static void key_errors(void)
{
  const char *nomatch[] = {"rsa2048.crt", "other.key", "rsa-int.crt"};
  expect_error(nomatch, 3, "matches none of the 2 certificates");
  const char *two[] = {"rsa2048.crt", "rsa2048.key", "other.key"};
  expect_error(two, 3, "holds 2 private keys");
  const char *none[] = {"rsa2048.crt", "rsa-int.crt"};
  expect_error(none, 2, "no private key in the secret");
  const char *nocert[] = {"rsa2048.key"};
  expect_error(nocert, 1, "no certificate in the secret");
  const char *enc8[] = {"rsa2048.crt", "enc-p8.key"};
  expect_error(enc8, 2, "is encrypted");
  const char *enctrad[] = {"enc-trad.key", "rsa2048.crt"};
  expect_error(enctrad, 2, "is encrypted");
  const char *empty[] = {"ext.cnf"};
  expect_error(empty, 1, "no PEM block");
}

static void text_errors(void)
{
  struct kvvm_bundle *b = NULL;
  char why[256] = "", *crt = slurp("rsa2048.crt"), *key = slurp("rsa2048.key");
  /* Truncated: the key's END line is missing. */
  char *text = kvvm_xasprintf("%s%.*s", crt, (int)(strlen(key) - 20), key);
  KT_CHECK(kvvm_certmat_from_pem(text, strlen(text), &b, why, sizeof why) == KVVM_E_CERT);
  KT_CONTAINS(why, "without its END line");
  free(text);
  /* A damaged certificate body. */
  text = kvvm_xasprintf("%s%s", key, crt);
  text[strlen(key) + 40] ^= 0x01;
  KT_CHECK(kvvm_certmat_from_pem(text, strlen(text), &b, why, sizeof why) == KVVM_E_CERT);
  KT_CONTAINS(why, "PEM block 2 (\"CERTIFICATE\")");
  free(text);
  /* Not base64 at all. */
  text = kvvm_xasprintf("-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n%s", key);
  KT_CHECK(kvvm_certmat_from_pem(text, strlen(text), &b, why, sizeof why) == KVVM_E_CERT);
  KT_CONTAINS(why, "not valid base64");
  free(text);
  KT_CHECK(kvvm_certmat_from_pem("", 0, &b, why, sizeof why) == KVVM_E_CERT && !b);
  free(crt);
  free(key);
}

/* Expired is a fact, not an error: the bundle builds and says when. */
static void expired_builds(void)
{
  const char *names[] = {"expired.crt", "expired.key", "rsa-int.crt"};
  struct kvvm_bundle *b = NULL;
  char why[256] = "";
  KT_CHECK(from_files(names, 3, &b, why, sizeof why) == KVVM_OK);
  KT_CHECK(b && kvvm_bundle_facts(b)->not_after == 1609459200); /* 2021-01-01 */
  KT_CHECK(b && kvvm_bundle_chain_len(b) == 1);
  kvvm_bundle_free(b);
}

/* The chain check of a Server Authentication leaf against a trust file: gap named as the
 * missing issuer or the untrusted root, nothing said when it builds or the leaf is not for
 * Server Authentication, KVVM_E_NOENT without a trust file. */
static const char *chain_note_of(const char *const *names, size_t n, const char *trust,
                                 enum kvvm_err *rc)
{
  static char note[1024];
  struct kvvm_bundle *b = NULL;
  char why[256] = "", *tpath = trust ? fpath(trust) : NULL;
  snprintf(note, sizeof note, "(unset)");
  *rc = KVVM_E_INTERNAL;
  if (from_files(names, n, &b, why, sizeof why) == KVVM_OK)
    *rc = kvvm_certmat_chain_gap(b, tpath, note, sizeof note);
  else
    fprintf(stderr, "  %s\n", why);
  kvvm_bundle_free(b);
  free(tpath);
  return note;
}

static void chain_gaps(void)
{
  const char *full[] = {"rsa2048.crt", "rsa2048.key", "rsa-int.crt"};
  const char *alone[] = {"rsa2048.crt", "rsa2048.key"};
  const char *with_root[] = {"rsa2048.crt", "rsa2048.key", "rsa-int.crt", "rsa-root.crt"};
  const char *no_eku[] = {"unrel.crt", "unrel.key"};
  enum kvvm_err rc;
  char *root = fpath("rsa-root.crt"), *unrel = fpath("unrel.crt"), want[1024];
  KT_STREQ(chain_note_of(full, 3, "rsa-root.crt", &rc), "");
  KT_CHECK(rc == KVVM_OK);
  snprintf(want, sizeof want, "chain incomplete: the issuer \"CN=Test Intermediate CA rsa\" of "
           "\"CN=rsa2048.example.com, O=kvvm test\" is in neither the secret nor this system's "
           "trust store (%s); clients will refuse a server that sends this chain (add the "
           "intermediate to the secret)", root);
  KT_STREQ(chain_note_of(alone, 2, "rsa-root.crt", &rc), want);
  KT_CHECK(rc == KVVM_OK);
  snprintf(want, sizeof want, "chain incomplete: the root \"CN=Test Root CA rsa\" in the secret "
           "is not in this system's trust store (%s); clients that lack it will refuse a "
           "server using this certificate", unrel);
  KT_STREQ(chain_note_of(with_root, 4, "unrel.crt", &rc), want);
  KT_CONTAINS(chain_note_of(full, 3, "unrel.crt", &rc), "the issuer \"CN=Test Root CA rsa\" of "
              "\"CN=Test Intermediate CA rsa\" is in neither the secret nor");
  KT_STREQ(chain_note_of(no_eku, 2, "rsa-root.crt", &rc), "");  /* not a server certificate */
  KT_CHECK(rc == KVVM_OK);
  chain_note_of(full, 3, NULL, &rc);
  KT_CHECK(rc == KVVM_E_NOENT);
  chain_note_of(full, 3, "no-such-file.crt", &rc);
  KT_CHECK(rc == KVVM_E_NOENT);
  free(unrel);
  free(root);
}

/* The trust file is an index of its roots by subject, parsed only when a chain names one:
 * a root found among others with text between them, and a root or an intermediate of the
 * store that vouches for a link below the top of the secret's chain. */
static void chain_gaps_indexed(void)
{
  const char *full[] = {"rsa2048.crt", "rsa2048.key", "rsa-int.crt"};
  const char *alone[] = {"rsa2048.crt", "rsa2048.key"};
  const char *bundle[] = {"unrel.crt", "rsa-root.crt"};
  const char *with_int[] = {"unrel.crt", "rsa-int.crt"};
  enum kvvm_err rc;
  char *text = join(bundle, 2), *path = fpath("bundle.crt");
  FILE *f = fopen(path, "wb");
  KT_CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0);
  KT_STREQ(chain_note_of(full, 3, "bundle.crt", &rc), "");
  KT_CHECK(rc == KVVM_OK);
  KT_CONTAINS(chain_note_of(alone, 2, "bundle.crt", &rc), "the issuer \"CN=Test Intermediate");
  free(text);
  free(path);
  text = join(with_int, 2);
  path = fpath("with-int.crt");
  f = fopen(path, "wb");
  KT_CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0);
  KT_STREQ(chain_note_of(alone, 2, "with-int.crt", &rc), "");
  KT_CHECK(rc == KVVM_OK);
  /* The top of this chain (the intermediate) has an issuer the store lacks. */
  KT_STREQ(chain_note_of(full, 3, "with-int.crt", &rc), "");
  free(text);
  free(path);
}

/* The chain above a leaf is kept while the next leaves share it, and never stands in for
 * another: two issuers both trusted, checked in turn, each chain builds. */
static void chain_kept_above(void)
{
  const char *rsa[] = {"rsa2048.crt", "rsa2048.key", "rsa-int.crt"};
  const char *rsa4k[] = {"rsa4096.crt", "rsa4096.key", "rsa-int.crt"};
  const char *ec[] = {"ec256.crt", "ec256.key", "ec256-int.crt"};
  const char *roots[] = {"rsa-root.crt", "ec256-root.crt"};
  enum kvvm_err rc;
  char *text = join(roots, 2), *path = fpath("two-roots.crt");
  FILE *f = fopen(path, "wb");
  KT_CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0);
  KT_STREQ(chain_note_of(rsa, 3, "two-roots.crt", &rc), "");
  KT_STREQ(chain_note_of(rsa4k, 3, "two-roots.crt", &rc), "");
  KT_STREQ(chain_note_of(ec, 3, "two-roots.crt", &rc), "");
  KT_STREQ(chain_note_of(rsa, 3, "two-roots.crt", &rc), "");
  KT_CHECK(rc == KVVM_OK);
  free(text);
  free(path);
}

/* IP SANs in RFC 5952 form, from one self-signed certificate: the zero-run rules (longest,
 * first of equals, never a single group), case, leading zeros, IPv4-mapped. */
static void ip_sans(void)
{
  static const char *const want[] = {
      "0.0.0.0", "255.255.255.255", "::", "::1", "2001:db8::1:0:0:1", "2001:db8:0:1:1:1:1:1",
      "2001:0:0:1::1", "fe80::", "::ffff:192.0.2.1", "2001:db8:ab::1", "1:2:3:4:5:6:7:8", NULL};
  KT_CHECK(sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
              "-keyout ips.key -out ips.crt -subj /CN=ips -days 2 -addext subjectAltName="
              "IP:0.0.0.0,IP:255.255.255.255,IP:0:0:0:0:0:0:0:0,IP:0:0:0:0:0:0:0:1,"
              "IP:2001:DB8:0:0:1:0:0:1,IP:2001:db8:0:1:1:1:1:1,IP:2001:0:0:1:0:0:0:1,"
              "IP:FE80:0:0:0:0:0:0:0,IP:::ffff:192.0.2.1,IP:2001:0DB8:00AB:0:0:0:0:1,"
              "IP:1:2:3:4:5:6:7:8 2>/dev/null", fx) == 0);
  const char *names[] = {"ips.key", "ips.crt"};
  struct kvvm_bundle *b = NULL;
  char why[256] = "";
  KT_CHECK(from_files(names, 2, &b, why, sizeof why) == KVVM_OK);
  const struct kvvm_cert_facts *f = b ? kvvm_bundle_facts(b) : NULL;
  for (size_t i = 0; f && want[i]; i++)
    KT_STREQ(f->sans ? f->sans[i] : NULL, want[i]);
  KT_CHECK(f && f->sans && f->sans[11] == NULL);
  kvvm_bundle_free(b);
}

static struct kvvm_bundle *bundle_of(const struct kind *k)
{
  char *key = name_of(k->name, ".key"), *crt = name_of(k->name, ".crt");
  char *root = name_of(k->ca, "-root.crt"), *in = name_of(k->ca, "-int.crt");
  const char *names[] = {root, key, in, crt};
  struct kvvm_bundle *b = NULL;
  char why[256] = "";
  if (from_files(names, 4, &b, why, sizeof why) != KVVM_OK)
    fprintf(stderr, "  %s: %s\n", k->name, why);
  free(key);
  free(crt);
  free(root);
  free(in);
  return b;
}

static void write_file(const char *name, const void *data, size_t len)
{
  char *p = fpath(name);
  KT_CHECK(kvvm_file_write_atomic(p, data, len, 0600) == KVVM_OK);
  free(p);
}

/* The PEM file the store writes: openssl reads every part, verifies the chain from the
 * split output, and writes the key back byte for byte (so ours is OpenSSL's PKCS#8 form). */
static void pem_read_by_openssl(void)
{
  for (size_t i = 0; i < NKINDS; i++) {
    struct kvvm_bundle *b = bundle_of(&kinds[i]);
    char *pem = NULL;
    size_t len = 0;
    KT_CHECK(b && kvvm_bundle_to_pem(b, &pem, &len) == KVVM_OK);
    if (!pem) {
      kvvm_bundle_free(b);
      continue;
    }
    KT_CHECK(strlen(pem) == len && strstr(pem, "-----BEGIN PRIVATE KEY-----\n"));
    write_file("out.pem", pem, len);
    KT_CHECK(sh("cd %s && rm -f part* && awk '/-----BEGIN/{n++} {print > (\"part\" n)}' out.pem"
                " && openssl x509 -in out.pem -noout && openssl pkey -in part4 -noout"
                " && openssl verify -CAfile part3 -untrusted part2 part1 >/dev/null"
                " && openssl pkey -in part4 | cmp -s - part4"
                " && openssl x509 -in part1 -pubkey -noout >pub1"
                " && openssl pkey -in part4 -pubout | cmp -s - pub1", fx) == 0);
    /* And our own reader takes our output back. */
    struct kvvm_bundle *again = NULL;
    char why[256] = "";
    KT_CHECK(kvvm_certmat_from_pem(pem, len, &again, why, sizeof why) == KVVM_OK);
    KT_CHECK(again && !strcmp(kvvm_bundle_facts(again)->thumbprint,
                              kvvm_bundle_facts(b)->thumbprint));
    kvvm_bundle_free(again);
    kvvm_free_secret(pem, len);
    kvvm_bundle_free(b);
  }
}

/* OpenSSL 3 without -legacy takes our PFX, MAC checked (a flipped byte fails it). */
static void pkcs12_read_by_openssl(const struct kind *k, const unsigned char *pfx, size_t len)
{
  write_file("out.pfx", pfx, len);
  KT_CHECK(sh("cd %s && openssl pkcs12 -in out.pfx -passin pass: -info -noout 2>&1"
              " | grep -q 'MAC: sha256, Iteration 2048'", fx) == 0);
  KT_CHECK(sh("cd %s && openssl pkcs12 -in out.pfx -passin pass: -nodes -out p12.pem 2>/dev/null"
              " && test $(grep -c 'BEGIN CERTIFICATE' p12.pem) = 3"
              " && openssl pkcs12 -in out.pfx -passin pass: -nodes -nocerts 2>/dev/null"
              " | openssl pkey -pubout >pubk && openssl x509 -in %s.crt -pubkey -noout"
              " | cmp -s - pubk", fx, k->name) == 0);
  unsigned char *bad = memcpy(kvvm_xmalloc(len), pfx, len);
  bad[len / 3] ^= 0x01;
  write_file("bad.pfx", bad, len);
  KT_CHECK(sh("cd %s && ! openssl pkcs12 -in bad.pfx -passin pass: -nodes >/dev/null 2>&1", fx)
           == 0);
  free(bad);
}

static void pkcs12_written(void)
{
  for (size_t i = 0; i < NKINDS; i++) {
    struct kvvm_bundle *b = bundle_of(&kinds[i]), *again = NULL;
    unsigned char *pfx = NULL;
    size_t len = 0;
    char why[256] = "";
    KT_CHECK(b && kvvm_bundle_to_pkcs12(b, &pfx, &len) == KVVM_OK && pfx && len > 0);
    if (!pfx) {
      kvvm_bundle_free(b);
      continue;
    }
    pkcs12_read_by_openssl(&kinds[i], pfx, len);
    KT_CHECK(kvvm_certmat_from_pkcs12(pfx, len, "", &again, why, sizeof why) == KVVM_OK);
    KT_CHECK(again && !strcmp(kvvm_bundle_facts(again)->thumbprint,
                              kvvm_bundle_facts(b)->thumbprint));
    KT_CHECK(again && kvvm_bundle_chain_len(again) == 2);
    if (!again)
      fprintf(stderr, "  %s: %s\n", kinds[i].name, why);
    kvvm_bundle_free(again);
    kvvm_free_secret(pfx, len);
    kvvm_bundle_free(b);
  }
}

/* A Key Vault secret value: the PFX in base64 (openssl's, empty password), or PEM. */
static void secret_content_types(void)
{
  struct kvvm_bundle *b = NULL;
  char why[256] = "", *sha = slurp("rsa2048.sha1");
  if (sha)
    sha[strcspn(sha, "\n")] = '\0';
  KT_CHECK(sh("cd %s && openssl base64 -A -in rsa2048.pfx -out pfx.b64", fx) == 0);
  char *b64 = slurp("pfx.b64"), *pem = join((const char *const[]){"rsa2048.key", "rsa2048.crt"},
                                            2);
  const struct {
    const char *ct, *value;
  } cases[] = {{"application/x-pkcs12", b64}, {"application/x-pem-file", pem},
               {NULL, b64}, {"", pem}, {"text/plain", b64}, {"APPLICATION/X-PEM-FILE", pem}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *v = cases[i].value ? cases[i].value : "";
    KT_CHECK(kvvm_certmat_from_secret(cases[i].ct, v, strlen(v), &b, why, sizeof why) ==
             KVVM_OK);
    KT_CHECK(b && sha && !strcmp(kvvm_bundle_facts(b)->thumbprint, sha));
    if (!b)
      fprintf(stderr, "  case %zu: %s\n", i, why);
    kvvm_bundle_free(b);
  }
  KT_CHECK(kvvm_certmat_from_secret("application/x-pkcs12", "not*base64", 10, &b, why,
                                    sizeof why) == KVVM_E_CERT && !b);
  KT_CONTAINS(why, "not valid base64");
  KT_CHECK(kvvm_certmat_from_secret("application/x-pkcs12", " \n", 2, &b, why, sizeof why) ==
           KVVM_E_CERT && !b);
  KT_CONTAINS(why, "the PKCS#12 secret value is empty");
  free(b64);
  free(pem);
  free(sha);
}

/* Our base64 (certmat_b64.c) against mbedTLS's on valid text of every length and on text
 * mutated into every kind of error: the same verdict, the same bytes. */
static unsigned rnd_next(unsigned *state)
{
  *state = *state * 1103515245u + 12345u;
  return *state >> 16;
}

static void b64_mutate(unsigned char *t, size_t *n, unsigned *st)
{
  static const char pick[] = "AZaz09+/=-_.\x80";  /* no whitespace: callers strip it */
  switch (rnd_next(st) % 5) {
  case 0: if (*n) t[rnd_next(st) % *n] = (unsigned char)pick[rnd_next(st) % (sizeof pick - 1)]; break;
  case 1: if (*n) (*n)--; break;
  case 2: t[(*n)++] = '='; break;
  case 3: if (*n) t[rnd_next(st) % *n] = 0x80 | (unsigned char)rnd_next(st); break;
  default: break;  /* left valid */
  }
}

static void b64_same_as_mbedtls(void)
{
  unsigned st = 17, differ = 0, errors = 0;
  unsigned char raw[80], ours[128], theirs[128], text[128];
  for (int round = 0; round < 20000; round++) {
    size_t rl = rnd_next(&st) % sizeof raw, tl = 0, ol = 0, tl2 = 0;
    for (size_t i = 0; i < rl; i++)
      raw[i] = (unsigned char)rnd_next(&st);
    mbedtls_base64_encode(theirs, sizeof theirs, &tl, raw, rl);
    kvvm_certmat_b64_enc(ours, raw, rl);
    differ += strlen((char *)ours) != tl || memcmp(ours, theirs, tl) != 0;
    memcpy(text, theirs, tl);
    b64_mutate(text, &tl, &st);
    int a = kvvm_certmat_b64_dec(ours, sizeof ours, &ol, text, tl);
    int b = mbedtls_base64_decode(theirs, sizeof theirs, &tl2, text, tl);
    errors += b != 0;
    differ += (a == 0) != (b == 0) || (a == 0 && (ol != tl2 || memcmp(ours, theirs, ol) != 0));
  }
  KT_CHECK(differ == 0);
  KT_CHECK(errors > 4000 && errors < 16000);  /* both verdicts were exercised */
}

int main(void)
{
  /* Error cases log on purpose; the test output stays readable without them. */
  kvvm_log_set_stderr_level((enum kvvm_log_level)(KVVM_LOG_ERR + 1));
  fx = kt_tmpdir();
  if (!fx || sh("sh tests/data/certmat/gen.sh %s", fx) != 0) {
    fprintf(stderr, "cannot generate the fixtures\n");
    return 1;
  }
  static const struct kt_case cases[] = {
      KT_CASE(chains_all_types), KT_CASE(pem_every_order), KT_CASE(cert_der_in_chain_order),
      KT_CASE(key_forms),          KT_CASE(b64_same_as_mbedtls),
      KT_CASE(unrelated_kept),   KT_CASE(crlf_text),       KT_CASE(key_errors),      KT_CASE(text_errors),
      KT_CASE(expired_builds),   KT_CASE(chain_gaps), KT_CASE(chain_gaps_indexed), KT_CASE(chain_kept_above),   KT_CASE(pem_read_by_openssl), KT_CASE(pkcs12_written),
      KT_CASE(secret_content_types), KT_CASE(ip_sans),
  };
  int rc = KT_RUN("certmat", cases);
  kt_rmtree(fx);
  free(fx);
  return rc;
}
