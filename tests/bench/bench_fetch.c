/* The request itself: the CPU kvvm spends fetching N secrets (connections and their TLS
 * handshakes, HTTP, the JSON of each secret bundle) with nothing done to them afterwards. tests/bench/bench.py subtracts it from
 * a steady-state pass to get what the pass costs beyond the requests.
 *
 *   bench_fetch URLFILE TOKENFILE      (KVVM_CA_FILE / KVVM_CONNECT_TO point at the emulator)
 *
 * Prints one JSON line: {"n": N, "ok": N, "cpu_s": S, "wall_s": S}. Not part of make check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "kvvm/http.h"
#include "kvvm/kv.h"
#include "kvvm/log.h"

static double cpu_now(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double wall_now(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static char *read_line(FILE *f)
{
  char buf[4096];
  if (!fgets(buf, sizeof buf, f))
    return NULL;
  buf[strcspn(buf, "\r\n")] = '\0';
  return strdup(buf);
}

int main(int argc, char **argv)
{
  if (argc != 3) {
    fprintf(stderr, "usage: %s URLFILE TOKENFILE\n", argv[0]);
    return 2;
  }
  FILE *uf = fopen(argv[1], "r"), *tf = fopen(argv[2], "r");
  if (!uf || !tf) {
    perror("open");
    return 2;
  }
  char *token = read_line(tf), *u;
  size_t n = 0, cap = 0;
  char **urls = NULL;
  while ((u = read_line(uf)) != NULL) {
    if (n == cap)
      urls = realloc(urls, (cap = cap ? 2 * cap : 64) * sizeof *urls);
    urls[n++] = u;
  }
  struct kvvm_kv_request *reqs = calloc(n ? n : 1, sizeof *reqs);
  struct kvvm_kv_result *res = calloc(n ? n : 1, sizeof *res);
  for (size_t i = 0; i < n; i++)
    reqs[i] = (struct kvvm_kv_request){urls[i], token, "bench identity", 0};
  kvvm_log_set_stderr_level(KVVM_LOG_ERR);
  /* From cold, as kvvmd's pass after an idle sleep (it lets its connections go): the TLS
   * handshakes are part of fetching. */
  double c0 = cpu_now(), w0 = wall_now();
  kvvm_kv_fetch_many(reqs, n, res);
  double cpu = cpu_now() - c0, wall = wall_now() - w0;
  size_t ok = 0;
  for (size_t i = 0; i < n; i++) {
    ok += res[i].err == KVVM_OK;
    kvvm_kv_result_clear(&res[i]);
    free(urls[i]);
  }
  printf("{\"n\": %zu, \"ok\": %zu, \"cpu_s\": %.4f, \"wall_s\": %.4f}\n", n, ok, cpu, wall);
  kvvm_http_shutdown();
  free(urls);
  free(reqs);
  free(res);
  free(token);
  fclose(uf);
  fclose(tf);
  return ok == n ? 0 : 1;
}
