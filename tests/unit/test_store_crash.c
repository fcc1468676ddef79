/* Crash consistency of the store: a child installs and renews certificates in a loop
 * (a new certificate each run, then renewals with keyExportable), and is killed with SIGKILL
 * after a random delay spread over a few install cycles, so the kill lands at every point
 * of the recipe. Both certificates have a fileLayout (certbot and csi), so the kills land
 * inside the split files' folders and link swaps too. After each kill the stable names must
 * resolve to a complete PEM whose key matches its leaf (read back with
 * kvvm_certmat_from_pem), and <stable>.live to a folder whose certificate and key match each
 * other (or, for a first install cut short, to nothing); then kvvmd's restart is played
 * (open, sweep, one pass) and no temp file may remain, and installed.json must load.
 * usage: test_store_crash [runs [seed]]   (default 240 runs, seed from the clock; the seed
 * is printed so a failing series can be replayed) */
#include <signal.h>
#include <stdbool.h>
#include <time.h>

#include "kt.h"
#include "kvvm/clock.h"
#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/store.h"
#include "test_store_fx.h"

#define RUNS_DEFAULT 240

static char *fx, *top, *state, *store;
static struct kvvm_bundle *bundles[3];
static const char *thumbs[3];
static int runs = RUNS_DEFAULT;
static unsigned seed;
static int64_t cycle_us;  /* one install + commit */

struct tally {
  int runs, links_ok, temps_left, new_links, sweeps_ok;
};

static void pass(struct kvvm_store *s, const struct kvvm_cert_cfg *cc, int b, const char *v)
{
  struct kvvm_install_result res;
  if (kvvm_store_install(s, cc, bundles[b], v, &res) != KVVM_OK)
    fprintf(stderr, "  install %s failed: %s\n", v, res.why);
  kvvm_install_result_clear(&res);
  kvvm_store_commit(s);
}

/* The installing process: never returns; killed by the parent. */
static void child(int ready, int run)
{
  struct kvvm_store_opts o = {.state_dir = state};
  struct kvvm_store *s = NULL;
  char secret[32], v[64];
  snprintf(secret, sizeof secret, "n%d", run);
  struct kvvm_cert_cfg main_cc = fx_cc("main", store, NULL), new_cc = fx_cc(secret, store, NULL);
  main_cc.key_exportable = new_cc.key_exportable = true;
  main_cc.layout = KVVM_LAYOUT_CERTBOT;
  new_cc.layout = KVVM_LAYOUT_CSI;
  kvvm_store_open(&o, &s);
  if (write(ready, "r", 1) != 1)
    _exit(2);
  for (int i = 0;; i++) {
    snprintf(v, sizeof v, "r%dn%d", run, i);
    pass(s, i % 2 ? &main_cc : &new_cc, (run + i) % 3, v);
  }
}

/* The stable name resolves to a complete PEM whose key matches its leaf, and the leaf is
 * one of ours. Absent is fine only when allowed (a first install that was cut short). */
static bool link_ok(const char *name, bool may_be_absent)
{
  char *path = kvvm_path_join(store, name), *text = NULL, why[256];
  size_t len = 0;
  struct kvvm_bundle *b = NULL;
  bool ok = false;
  enum kvvm_err rc = kvvm_file_read(path, 1 << 20, &text, &len);
  if (rc == KVVM_E_NOENT && may_be_absent && !kvvm_path_exists(path))
    ok = true;
  else if (rc == KVVM_OK && kvvm_certmat_from_pem(text, len, &b, why, sizeof why) == KVVM_OK)
    for (int i = 0; i < 3; i++)
      ok = ok || (strcmp(kvvm_bundle_facts(b)->thumbprint, thumbs[i]) == 0 &&
                  kvvm_bundle_chain_len(b) == 1);
  if (!ok)
    fprintf(stderr, "  %s: %s\n", path, rc == KVVM_OK ? why : kvvm_err_str(rc));
  kvvm_bundle_free(b);
  kvvm_free_secret(text, len);
  free(path);
  return ok;
}

static char *read_in(const char *dir, const char *name, size_t *len)
{
  char *path = kvvm_path_join(dir, name), *text = NULL;
  if (kvvm_file_read(path, 1 << 20, &text, len) != KVVM_OK)
    text = NULL;
  free(path);
  return text;
}

/* The certificate file and the key file read through the link, together, make a bundle whose
 * key matches its leaf: one of ours with its CA. */
static bool pair_ok(const char *dir, const char *crt, const char *key)
{
  size_t cl = 0, kl = 0;
  char *c = read_in(dir, crt, &cl), *k = read_in(dir, key, &kl), why[256] = "";
  struct kvvm_bundle *b = NULL;
  bool ok = false;
  if (c && k) {
    char *both = kvvm_xasprintf("%s%s", c, k);
    if (kvvm_certmat_from_pem(both, strlen(both), &b, why, sizeof why) == KVVM_OK)
      for (int i = 0; i < 3; i++)
        ok = ok || strcmp(kvvm_bundle_facts(b)->thumbprint, thumbs[i]) == 0;
    kvvm_free_secret(both, strlen(both));
  }
  if (!ok)
    fprintf(stderr, "  %s/%s + %s: %s\n", dir, crt, key, c && k ? why : "missing");
  kvvm_bundle_free(b);
  kvvm_free_secret(c, cl);
  kvvm_free_secret(k, kl);
  return ok;
}

/* <stable>.live resolves to a whole set: csi's pair, or certbot's fullchain and cert.pem each
 * with privkey.pem (and the chain file of one CA). Absent only when allowed. */
static bool live_ok(const char *stable, bool csi, bool may_be_absent)
{
  char *live = kvvm_xasprintf("%s/%s.live", store, stable), crt[96], key[96];
  bool ok;
  if (!kvvm_path_exists(live)) {
    ok = may_be_absent;
  } else if (csi) {
    snprintf(crt, sizeof crt, "%s.crt", stable);
    snprintf(key, sizeof key, "%s.key", stable);
    ok = pair_ok(live, crt, key);
  } else {
    ok = pair_ok(live, "fullchain.pem", "privkey.pem") && pair_ok(live, "cert.pem", "privkey.pem");
    char *n = fx_out("grep -c BEGIN '%s/chain.pem'", live);
    ok = ok && strcmp(n, "1\n") == 0;
    free(n);
  }
  if (!ok)
    fprintf(stderr, "  %s: not a whole set\n", live);
  free(live);
  return ok;
}

/* kvvmd starts again: sweep, one pass, then nothing temporary is left. */
static bool restart(int run)
{
  struct kvvm_store_opts o = {.state_dir = state};
  struct kvvm_store *s = NULL;
  char secret[32], v[64];
  snprintf(secret, sizeof secret, "n%d", run);
  struct kvvm_cert_cfg cc[2] = {fx_cc("main", store, NULL), fx_cc(secret, store, NULL)};
  struct kvvm_config cfg = {.certs = cc, .n_certs = 2};
  char *corrupt = kvvm_path_join(state, "installed.json.corrupt");
  cc[0].key_exportable = true;
  cc[0].layout = KVVM_LAYOUT_CERTBOT;
  cc[1].layout = KVVM_LAYOUT_CSI;
  kvvm_store_open(&o, &s);
  kvvm_store_sweep(s, &cfg);
  snprintf(v, sizeof v, "restart%d", run);
  pass(s, &cc[0], run % 3, v);
  kvvm_store_close(s);
  bool ok = fx_count_prefix(store, ".kvvm-tmp") == 0 && !kvvm_path_exists(corrupt) &&
            link_ok("kvt.main", false) && live_ok("kvt.main", false, false) &&
            fx_sh("ls -A '%s'/*.live/ | grep -q kvvm-tmp", store) != 0;
  free(corrupt);
  fx_cc_free(&cc[0]);
  fx_cc_free(&cc[1]);
  return ok;
}

static void one_run(int run, unsigned *rng, struct tally *t)
{
  int p[2];
  char c;
  if (pipe(p) != 0)
    return;
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    child(p[1], run);
  }
  close(p[1]);
  if (read(p[0], &c, 1) != 1)
    fprintf(stderr, "  child %d did not start\n", run);
  close(p[0]);
  /* Anywhere in the first three cycles: the first install of the new certificate, the
   * renewals after it, and the commits between them. */
  int64_t us = (int64_t)(rand_r(rng) % (unsigned)(3 * cycle_us + 1));
  struct timespec d = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
  nanosleep(&d, NULL);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  char name[64];
  snprintf(name, sizeof name, "kvt.n%d", run);
  t->runs++;
  t->temps_left += fx_count_prefix(store, ".kvvm-tmp") > 0;
  char *link = kvvm_path_join(store, name);
  t->new_links += kvvm_path_exists(link);
  free(link);
  t->links_ok += link_ok("kvt.main", false) && link_ok(name, true) &&
                 live_ok("kvt.main", false, false) && live_ok(name, true, true);
  t->sweeps_ok += restart(run);
}

/* Average install + commit time, to spread the kills over the recipe. */
static int64_t measure(void)
{
  struct kvvm_store_opts o = {.state_dir = state};
  struct kvvm_store *s = NULL;
  struct kvvm_cert_cfg cc = fx_cc("main", store, NULL);
  char v[32];
  cc.key_exportable = true;
  cc.layout = KVVM_LAYOUT_CERTBOT;
  kvvm_store_open(&o, &s);
  int64_t t0 = kvvm_clock_mono_ms();
  for (int i = 0; i < 20; i++) {
    snprintf(v, sizeof v, "warm%d", i);
    pass(s, &cc, i % 3, v);
  }
  int64_t us = (kvvm_clock_mono_ms() - t0) * 1000 / 20;
  kvvm_store_close(s);
  fx_cc_free(&cc);
  return us > 200 ? us : 200;
}

static void crash_runs(void)
{
  struct tally t = {0};
  unsigned start_seed = seed;
  int64_t t0 = kvvm_clock_mono_ms();
  cycle_us = measure();
  for (int run = 0; run < runs; run++)
    one_run(run, &seed, &t);
  printf("crash: %d kills (seed %u, install+commit %lld us): %d left temp files (killed "
         "mid-write), %d first installs got their link, stable names valid %d/%d, clean "
         "after restart %d/%d, %lld ms\n", t.runs, start_seed, (long long)cycle_us, t.temps_left,
         t.new_links, t.links_ok, t.runs, t.sweeps_ok, t.runs,
         (long long)(kvvm_clock_mono_ms() - t0));
  KT_CHECK(t.runs == runs && t.links_ok == runs && t.sweeps_ok == runs);
  /* The kills must have landed inside installs, not only between them. */
  KT_CHECK(t.temps_left > 0 && t.new_links > 0 && t.new_links < runs);
}

int main(int argc, char **argv)
{
  kvvm_log_set_stderr_level((enum kvvm_log_level)(KVVM_LOG_ERR + 1));
  runs = argc > 1 ? atoi(argv[1]) : RUNS_DEFAULT;
  seed = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : (unsigned)time(NULL);
  fx = kt_tmpdir();
  top = kt_tmpdir();
  if (!fx || !top || fx_gen(fx) != 0) {
    fprintf(stderr, "cannot make certificates with openssl\n");
    return 1;
  }
  state = kvvm_path_join(top, "state");
  store = kvvm_path_join(top, "store");
  const char *names[] = {"a", "b", "c"};
  for (int i = 0; i < 3; i++) {
    bundles[i] = fx_bundle(fx, names[i]);
    thumbs[i] = bundles[i] ? kvvm_bundle_facts(bundles[i])->thumbprint : "";
  }
  static const struct kt_case cases[] = {KT_CASE(crash_runs)};
  int rc = KT_RUN("store_crash", cases);
  for (int i = 0; i < 3; i++)
    kvvm_bundle_free(bundles[i]);
  kt_rmtree(fx);
  kt_rmtree(top);
  free(fx);
  free(top);
  free(state);
  free(store);
  return rc;
}
