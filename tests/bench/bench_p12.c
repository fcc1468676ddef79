/* Decoding a Key Vault-style PFX: how much CPU one decode costs in kvvm, beside the same
 * work done the usual way, `openssl pkcs12 -in x.pfx -nodes -passin pass:` as a process
 * per file. Not part of `make check` (timings, not assertions).
 *
 *   bench_p12 [-n N] [FILE [PASSWORD]]
 *
 * Without FILE it makes one the way Key Vault's are made (OpenSSL 3 defaults: PBES2
 * AES-256-CBC with PBKDF2-HMAC-SHA256, 2048 iterations, for the key and the certificates,
 * a SHA-256 MAC of 2048 iterations, an empty password; an RSA-2048 leaf with its
 * intermediate and root). Prints, for N rounds each: the PKCS#12 reader alone (with the key
 * checked against the certificates), the whole bundle (reader, chain order, facts) and
 * the openssl process. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvvm/certmat.h"
#include "kvvm/log.h"
#include "kvvm/p12.h"

static double cpu_now(void)
{
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double wall_now(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double children_cpu(void)
{
  struct rusage ru;
  getrusage(RUSAGE_CHILDREN, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static unsigned char *slurp(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
  *len = b ? fread(b, 1, (size_t)n, f) : 0;
  fclose(f);
  return b;
}

/* A Key Vault-style PFX in dir/kv.pfx, made with the openssl CLI. */
static int make_pfx(const char *dir)
{
  char cmd[2048];
  snprintf(cmd, sizeof(cmd),
           "set -e; cd '%s'; "
           "printf '[x]\\nbasicConstraints=critical,CA:TRUE\\n' >ca.cnf; "
           "openssl req -x509 -newkey rsa:2048 -nodes -keyout root.key -subj /CN=root "
           "-days 30 -out root.crt 2>/dev/null; "
           "openssl req -newkey rsa:2048 -nodes -keyout int.key -subj /CN=int -out int.csr "
           "2>/dev/null; "
           "openssl x509 -req -in int.csr -CA root.crt -CAkey root.key -set_serial 2 -days 30 "
           "-extfile ca.cnf -extensions x -out int.crt 2>/dev/null; "
           "openssl req -newkey rsa:2048 -nodes -keyout leaf.key -subj /CN=leaf.example.com "
           "-out leaf.csr 2>/dev/null; "
           "openssl x509 -req -in leaf.csr -CA int.crt -CAkey int.key -set_serial 3 -days 30 "
           "-out leaf.crt 2>/dev/null; "
           "cat int.crt root.crt >chain.pem; "
           "openssl pkcs12 -export -inkey leaf.key -in leaf.crt -certfile chain.pem "
           "-passout pass: -out kv.pfx",
           dir);
  return system(cmd);
}

static void report(const char *what, int n, double cpu, double wall)
{
  printf("%-34s %6d runs  %8.3f ms CPU each  %8.3f ms wall each  %8.0f PFX/s\n", what, n,
         1e3 * cpu / n, 1e3 * wall / n, n / wall);
}

static int bench_reader(const unsigned char *der, size_t len, const char *pw, int n)
{
  struct kvvm_p12_summary s = {0};
  char why[256];
  double c0 = cpu_now(), w0 = wall_now();
  for (int i = 0; i < n; i++)
    if (kvvm_p12_inspect(der, len, pw, &s, why, sizeof(why)) != KVVM_OK) {
      fprintf(stderr, "bench_p12: %s\n", why);
      return 1;
    }
  report("kvvm PKCS#12 reader", n, cpu_now() - c0, wall_now() - w0);
  printf("  (%u certificates, %s key of %u bits, MAC %s, bags %s)\n", s.n_certs, s.key_type,
         s.key_bits, s.mac, s.schemes);
  return 0;
}

static int bench_bundle(const unsigned char *der, size_t len, const char *pw, int n)
{
  char why[256];
  double c0 = cpu_now(), w0 = wall_now();
  for (int i = 0; i < n; i++) {
    struct kvvm_bundle *b = NULL;
    if (kvvm_certmat_from_pkcs12(der, len, pw, &b, why, sizeof(why)) != KVVM_OK) {
      fprintf(stderr, "bench_p12: %s\n", why);
      return 1;
    }
    kvvm_bundle_free(b);
  }
  report("kvvm bundle (reader+chain+facts)", n, cpu_now() - c0, wall_now() - w0);
  return 0;
}

/* One `openssl pkcs12` process per file, its output discarded. */
static int bench_openssl(const char *file, const char *pw, int n)
{
  char pass[300];
  snprintf(pass, sizeof(pass), "pass:%s", pw);
  fflush(NULL);   /* or each child would write our buffered lines again */
  double c0 = children_cpu(), w0 = wall_now();
  for (int i = 0; i < n; i++) {
    pid_t pid = fork();
    if (pid == 0) {
      if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
        _exit(126);
      execlp("openssl", "openssl", "pkcs12", "-in", file, "-nodes", "-passin", pass,
             (char *)NULL);
      _exit(127);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fprintf(stderr, "bench_p12: openssl pkcs12 failed on %s\n", file);
      return 1;
    }
  }
  report("openssl pkcs12 process per file", n, children_cpu() - c0, wall_now() - w0);
  return 0;
}

int main(int argc, char **argv)
{
  int n = 500, a = 1, rc;
  char dir[] = "/tmp/kvvm-bench.XXXXXX", path[64];
  const char *file, *pw = "";
  if (argc > 2 && strcmp(argv[1], "-n") == 0) {
    n = atoi(argv[2]);
    a = 3;
  }
  if (n <= 0) {
    fprintf(stderr, "usage: bench_p12 [-n N] [FILE [PASSWORD]]\n");
    return 2;
  }
  kvvm_log_set_stderr_level(KVVM_LOG_ERR);
  if (a < argc) {
    file = argv[a];
    if (a + 1 < argc)
      pw = argv[a + 1];
  } else {
    if (!mkdtemp(dir) || make_pfx(dir) != 0) {
      fprintf(stderr, "bench_p12: could not make a PFX with the openssl CLI\n");
      return 1;
    }
    snprintf(path, sizeof(path), "%s/kv.pfx", dir);
    file = path;
  }
  size_t len;
  unsigned char *der = slurp(file, &len);
  if (!der) {
    perror(file);
    return 1;
  }
  printf("%s: %zu bytes\n", file, len);
  rc = bench_reader(der, len, pw, n) || bench_bundle(der, len, pw, n) ||
       bench_openssl(file, pw, n / 10 > 20 ? n / 10 : 20);
  free(der);
  if (file == path) {
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    rc |= system(cmd) != 0;
  }
  return rc;
}
