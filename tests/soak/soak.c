/* The compressed 24-hour run (issue 6, Proof): the real engine -- kvvm_sync_pass, the store,
 * hooks, report and status file, on kvvmd's schedule (kvvm_sched_*: the poll interval with
 * jitter, failed certificates on their own capped backoff) -- over N simulated hours against
 * the emulator, with time replaced.
 *
 * Time: this program defines kvvm_clock_*, which the library then calls instead of its own
 * (clock.h). The monotonic clock is real time plus the time skipped: the gaps between passes
 * and every backoff sleep inside a pass are skipped, not slept. The wall clock moves with it.
 *
 * Driven by tests/soak/soak.py over a pipe: at the start of each simulated hour this prints
 * "H <hour>" and waits for one line on stdin ("ok", or "jump <seconds>" to step the wall
 * clock; the driver rotates versions and injects or clears
 * faults in the emulator meanwhile). After each pass it samples VmRSS and the open
 * descriptors. At the end it prints one line "R <json>": passes, samples, final outcomes.
 *
 * usage: soak SETTINGS_FILE WORK_DIR HOURS   (KVVM_CA_FILE, KVVM_CONNECT_TO from the driver) */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "kvvm/clock.h"
#include "kvvm/fileio.h"
#include "kvvm/hooks.h"
#include "kvvm/identity.h"
#include "kvvm/http.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/report.h"
#include "kvvm/sched.h"
#include "kvvm/settings.h"
#include "kvvm/status.h"
#include "kvvm/store.h"
#include "kvvm/sync.h"

/* --- the fake clock ------------------------------------------------------------------------- */

static int64_t skipped_ms;
static int64_t slept_ms;  /* backoff sleeps skipped inside passes */
static time_t wall_base;
static int64_t mono_base;

static int64_t real_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t kvvm_clock_mono_ms(void) { return real_ms() + skipped_ms; }
time_t kvvm_clock_now(void)
{
  return wall_base + (time_t)((kvvm_clock_mono_ms() - mono_base) / 1000);
}
void kvvm_clock_sleep_ms(int64_t ms)
{
  if (ms > 0) {
    skipped_ms += ms;
    slept_ms += ms;
  }
}
bool kvvm_clock_stopping(void) { return false; }

static void advance_to(int64_t t)
{
  int64_t now = kvvm_clock_mono_ms();
  if (t > now)
    skipped_ms += t - now;
}

/* --- measurements --------------------------------------------------------------------------- */

static long rss_kb(void)
{
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  if (!f)
    return -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
      break;
  fclose(f);
  return kb;
}

static int open_fds(void)
{
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  struct dirent *e;
  if (!d)
    return -1;
  while ((e = readdir(d)) != NULL)
    n += e->d_name[0] != '.';
  closedir(d);
  return n - 1;  /* the descriptor opendir holds */
}

struct sample {
  double hour;
  long rss;
  int fds;
  int pending;
};

/* --- the loop ------------------------------------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  if (buf) {
    buf[n] = 0;
    *len = (size_t)n;
  }
  return buf;
}

static const char *state_name(enum kvvm_cert_state s)
{
  return s == KVVM_CERT_INSTALLED ? "installed" : s == KVVM_CERT_PENDING ? "pending" : "failed";
}

static void json_str(const char *s)
{
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      printf("\\%c", *s);
    else if ((unsigned char)*s < 0x20)
      printf("\\u%04x", *s);
    else
      putchar(*s);
  }
  putchar('"');
}

int main(int argc, char **argv)
{
  if (argc != 4) {
    fprintf(stderr, "usage: soak SETTINGS_FILE WORK_DIR HOURS\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char *work = argv[2];
  int hours = atoi(argv[3]);
  char store_root[512], state_dir[512], log_dir[512], status_dir[512], hooks_dir[512];
  snprintf(store_root, sizeof store_root, "%s/store", work);
  snprintf(state_dir, sizeof state_dir, "%s/state", work);
  snprintf(log_dir, sizeof log_dir, "%s/log", work);
  snprintf(status_dir, sizeof status_dir, "%s/status", work);
  snprintf(hooks_dir, sizeof hooks_dir, "%s/hooks", work);
  mkdir(status_dir, 0700);
  kvvm_log_open(log_dir, "soak");
  kvvm_log_set_stderr_level(KVVM_LOG_ERR);

  wall_base = time(NULL);
  mono_base = kvvm_clock_mono_ms();
  const int64_t t0 = mono_base;

  size_t len = 0;
  char *text = slurp(argv[1], &len);
  char why[1024] = "";
  struct kvvm_config *cfg = NULL;
  struct kvvm_settings_opts sopts = {store_root, NULL, false};
  if (!text || kvvm_settings_parse(text, len, &sopts, &cfg, why, sizeof why) != KVVM_OK) {
    fprintf(stderr, "soak: settings: %s\n", why);
    return 2;
  }
  free(text);
  struct kvvm_store *store = NULL;
  struct kvvm_store_opts stopts = {state_dir, 0};
  if (kvvm_store_open(&stopts, &store) != KVVM_OK) {
    fprintf(stderr, "soak: cannot open the store\n");
    return 2;
  }
  size_t n = cfg->n_certs;
  struct kvvm_cert_outcome *out = kvvm_xcalloc(n, sizeof(*out));
  int64_t *due_ms = kvvm_xcalloc(n, sizeof(*due_ms));
  unsigned *failures = kvvm_xcalloc(n, sizeof(*failures));
  bool *due = kvvm_xcalloc(n, sizeof(*due));
  int64_t next_poll = t0;
  for (size_t i = 0; i < n; i++)
    due_ms[i] = t0;

  size_t cap = 4096, n_samples = 0;
  struct sample *samples = kvvm_xcalloc(cap, sizeof(*samples));
  long passes = 0, changed_total = 0, retry_passes = 0;
  int announced = -1;
  char line[256];

  for (;;) {
    int64_t nd = next_poll;
    for (size_t i = 0; i < n; i++)
      nd = due_ms[i] < nd ? due_ms[i] : nd;
    int64_t boundary = t0 + (int64_t)(announced + 1) * 3600000;
    if (nd >= boundary) {
      advance_to(boundary);
      announced++;
      if (announced >= hours)
        break;
      printf("H %d\n", announced);
      if (!fgets(line, sizeof line, stdin))
        return 3;  /* the driver is gone */
      long jump;
      if (sscanf(line, "jump %ld", &jump) == 1)
        wall_base += (time_t)jump;  /* the wall clock steps (NTP, a resumed VM); mono does not */
      continue;
    }
    advance_to(nd);

    /* One pass, as kvvmd's run_pass does it. */
    int64_t now = kvvm_clock_mono_ms();
    bool poll = now >= next_poll;
    for (size_t i = 0; i < n; i++)
      due[i] = poll || due_ms[i] <= now;
    if (poll)
      next_poll = now + kvvm_sched_poll_ms(cfg->polling_s, kvvm_sched_random());
    else
      retry_passes++;
    if (!store && kvvm_store_open(&stopts, &store) != KVVM_OK) {
      fprintf(stderr, "soak: cannot open the store\n");
      return 2;
    }
    changed_total += (long)kvvm_sync_pass(store, cfg, due, out);
    kvvm_store_commit(store);
    struct kvvm_hooks_opts hopts = {hooks_dir, 0};
    kvvm_hooks_run_due(kvvm_store_installed(store), &hopts);
    now = kvvm_clock_mono_ms();
    int pending = 0;
    for (size_t i = 0; i < n; i++) {
      pending += out[i].state != KVVM_CERT_INSTALLED || out[i].err != KVVM_OK;
      if (!due[i])
        continue;
      bool retry = out[i].err != KVVM_OK && out[i].state != KVVM_CERT_FAILED &&
                   out[i].err != KVVM_E_GRANT;
      failures[i] = retry ? failures[i] + 1 : 0;
      due_ms[i] = retry ? now + kvvm_sched_retry_ms(failures[i], kvvm_sched_random()) : next_poll;
    }
    struct kvvm_report r;
    kvvm_report_build(cfg, out, kvvm_clock_now(), &r);
    kvvm_status_write(status_dir, 1, &r.status);
    kvvm_report_clear(&r);
    passes++;
    /* What kvvmd's pass worker takes with it when it exits: the store, the connections, the
     * token; and what kvvmd itself does after each pass: give freed pages back. The engine
     * stays in this one process, so anything a pass leaks still accumulates here. */
    kvvm_store_close(store);
    store = NULL;
    kvvm_http_shutdown();
    kvvm_identity_forget();
    kvvm_mem_release();

    if (n_samples == cap) {
      cap *= 2;
      samples = realloc(samples, cap * sizeof(*samples));
      if (!samples)
        return 4;
    }
    samples[n_samples++] = (struct sample){(double)(kvvm_clock_mono_ms() - t0) / 3600000.0,
                                           rss_kb(), open_fds(), pending};
  }

  /* The result, one JSON line. */
  printf("R {\"passes\": %ld, \"retry_passes\": %ld, \"changed\": %ld, \"sim_hours\": %.3f, "
         "\"real_s\": %.1f, \"slept_in_passes_s\": %.1f, \"samples\": [",
         passes, retry_passes, changed_total, (double)(kvvm_clock_mono_ms() - t0) / 3600000.0,
         (double)(real_ms() - t0) / 1000.0,
         (double)slept_ms / 1000.0);
  for (size_t i = 0; i < n_samples; i++)
    printf("%s[%.4f, %ld, %d, %d]", i ? ", " : "", samples[i].hour, samples[i].rss, samples[i].fds,
           samples[i].pending);
  printf("], \"certs\": [");
  for (size_t i = 0; i < n; i++) {
    printf("%s{\"url\": ", i ? ", " : "");
    json_str(cfg->certs[i].url);
    printf(", \"state\": \"%s\", \"err\": ", state_name(out[i].state));
    json_str(kvvm_err_str(out[i].err));
    printf(", \"version\": ");
    json_str(out[i].version);
    printf(", \"thumbprint\": ");
    json_str(out[i].thumbprint);
    printf(", \"why\": ");
    json_str(kvvm_outcome_why(&out[i]));
    printf("}");
  }
  printf("]}\n");

  kvvm_store_close(store);
  kvvm_identity_forget();
  kvvm_http_shutdown();
  kvvm_outcomes_clear(out, n);
  free(out);
  free(due_ms);
  free(failures);
  free(due);
  free(samples);
  kvvm_config_free(cfg);
  kvvm_log_close();
  return 0;
}
