/* A scale set booting together against one vault, simulated in virtual time with kvvm's own
 * schedule and backoff code linked in (kvvm_sched_poll_ms, kvvm_sched_retry_ms,
 * kvvm_kv_throttle_ms, the limits of kvvm/kv.h): nothing of kvvm's timing is re-derived here.
 *
 *   scaleset [-n INSTANCES] [-c CERTS] [-l LIMIT] [-w WINDOW_MS] [-b BOOT_SPREAD_S]
 *            [-h HOURS] [-s SEED] [-L] [-v VAULT_SECRETS]
 *
 * Model. Each instance runs kvvmd with requireInitialSync: at boot (uniform over the boot
 * spread) a pass fetches its certificates, at most KVVM_KV_MAX_IN_FLIGHT at a time, each
 * answer 20 ms after its request. The vault accepts LIMIT GETs per sliding WINDOW_MS and
 * answers any other with 429 and Retry-After (seconds until the window frees one). A 429
 * holds the instance's every request to that vault for kvvm_kv_throttle_ms; after
 * KVVM_KV_MAX_THROTTLED of them a certificate fails the pass and is retried after
 * kvvm_sched_retry_ms, as kvvmd's plan does. An instance reports success when every
 * certificate is installed; afterwards it polls every hour with kvvm_sched_poll_ms's jitter.
 * With -L, a poll after success is the steady pass with the listing: kvvm_listing_choose
 * (kvvm's own rule) decides between listing the vault, whose VAULT_SECRETS secrets (default:
 * the certificates) are ceil(VAULT_SECRETS / 25) pages read one after another, and one GET per
 * certificate; a listing throttled KVVM_KV_MAX_THROTTLED times falls back to the GETs. The
 * certificates are unchanged (a rotation adds one GET per instance, once).
 *
 * Prints the time until every instance reports success, the peak request rate offered to the
 * vault (per second and per window), the 429s, and the same after the first burst; with -j a
 * JSON line. Exit 1 if an instance never succeeds within the simulated hours. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvvm/kv.h"
#include "kvvm/kv_list.h"
#include "kvvm/listing.h"
#include "kvvm/sched.h"

#define LATENCY_MS 20
#define MAX_CERTS 64

enum ev_kind { EV_WAKE, EV_ANSWER };

struct ev {
  int64_t t;
  uint32_t inst;
  uint16_t job;
  uint8_t kind;
};

struct job {
  int64_t due;
  int throttled;
  uint8_t state;  /* 0 idle, 1 waiting, 2 running */
};

struct inst {
  int64_t gate, next_poll, success_at, wake_at;
  int64_t cert_due[MAX_CERTS];
  unsigned failures[MAX_CERTS];
  bool installed[MAX_CERTS], in_pass;
  int running, open_jobs;
  int pages_left;               /* of the listing under way (-L) */
  struct job jobs[MAX_CERTS + 1];   /* [certs]: the listing, one page after another */
};

/* -L: the steady pass lists; the vault holds this many secrets. */
static bool list_mode;
static long vault_secrets;

static struct {
  struct ev *heap;
  size_t n, cap;
} q;

static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint32_t rnd(void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 16);
}

static void push(struct ev e)
{
  if (q.n == q.cap) {
    q.cap = q.cap ? 2 * q.cap : 1024;
    q.heap = realloc(q.heap, q.cap * sizeof *q.heap);
  }
  size_t i = q.n++;
  while (i && q.heap[(i - 1) / 2].t > e.t) {
    q.heap[i] = q.heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  q.heap[i] = e;
}

static struct ev pop(void)
{
  struct ev top = q.heap[0], last = q.heap[--q.n];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= q.n)
      break;
    if (c + 1 < q.n && q.heap[c + 1].t < q.heap[c].t)
      c++;
    if (q.heap[c].t >= last.t)
      break;
    q.heap[i] = q.heap[c];
    i = c;
  }
  if (q.n)
    q.heap[i] = last;
  return top;
}

/* The vault: a ring of the last `limit` accepted request times. */
static struct {
  int64_t *ring, window;
  size_t limit, head, count;
  uint64_t offered, accepted, refused;
} vault;

/* -1: accepted; else the Retry-After in seconds. */
static long vault_take(int64_t t)
{
  vault.offered++;
  if (vault.count == vault.limit) {
    int64_t oldest = vault.ring[vault.head];
    if (oldest > t - vault.window) {
      vault.refused++;
      return (long)((oldest + vault.window - t + 999) / 1000);
    }
    vault.count--;
    vault.head = (vault.head + 1) % vault.limit;
  }
  vault.ring[(vault.head + vault.count++) % vault.limit] = t;
  vault.accepted++;
  return -1;
}

/* Offered requests per second, kept for the whole run (for peaks by phase). */
static uint32_t *per_s;
static size_t n_s;

static void offered_at(int64_t t)
{
  size_t s = (size_t)(t / 1000);
  if (s < n_s)
    per_s[s]++;
}

static struct inst *inst;
static int certs;

static void wake(uint32_t i, int64_t t)
{
  if (inst[i].wake_at <= t && inst[i].wake_at >= 0)
    return;
  inst[i].wake_at = t;
  push((struct ev){t, i, 0, EV_WAKE});
}

/* Pages the steady pass lists instead of its GETs, as kvvm_sync_list decides it (0: the
 * GETs are no dearer). Every certificate is installed, fetched long ago, unchanged. */
static int listing_pages(int64_t t)
{
  struct kvvm_listing_cert c[MAX_CERTS];
  struct kvvm_listing_pick picks[MAX_CERTS];
  bool by[MAX_CERTS];
  int64_t now = 1900000000 + t / 1000;
  size_t pages = (size_t)(vault_secrets + KVVM_KV_LIST_PAGE - 1) / KVVM_KV_LIST_PAGE;
  struct kvvm_listing_vault v = {"v.vault.azure.net", 0, pages};
  for (int k = 0; k < certs; k++)
    c[k] = (struct kvvm_listing_cert){v.host, "c", 0, false, true,
                                      {now - 86400 * 30, now - 86400 * 30, now - 3600}};
  return kvvm_listing_choose(c, (size_t)certs, &v, 1, now, by, picks) ? (int)pages : 0;
}

/* kvvmd's plan: which certificates are due, and a new poll time when the poll is. */
static void start_pass(struct inst *in, int64_t t)
{
  bool poll = t >= in->next_poll;
  if (poll)
    in->next_poll = t + kvvm_sched_poll_ms(3600, rnd());
  if (poll && list_mode && in->success_at >= 0 && (in->pages_left = listing_pages(t)) > 0) {
    in->jobs[certs] = (struct job){t, 0, 1};
    in->open_jobs = 1;
    in->in_pass = true;
    return;
  }
  for (int c = 0; c < certs; c++)
    if (poll || in->cert_due[c] <= t) {
      in->jobs[c] = (struct job){t, 0, 1};
      in->open_jobs++;
    }
  in->in_pass = in->open_jobs > 0;
}

static void end_pass(struct inst *in, int64_t t)
{
  bool all = true;
  for (int c = 0; c < certs; c++)
    all = all && in->installed[c];
  if (all && in->success_at < 0)
    in->success_at = t;
  in->in_pass = false;
}

/* Start what may start (kv.c's launch_ready); returns the next time a waiting job may. */
static int64_t launch(uint32_t i, int64_t t)
{
  struct inst *in = &inst[i];
  int64_t next = INT64_MAX;
  for (int c = 0; c <= certs; c++) {
    struct job *j = &in->jobs[c];
    if (j->state != 1)
      continue;
    int64_t at = j->due > in->gate ? j->due : in->gate;
    if (at <= t && in->running < KVVM_KV_MAX_IN_FLIGHT) {
      j->state = 2;
      in->running++;
      offered_at(t);
      push((struct ev){t + LATENCY_MS, i, (uint16_t)c, EV_ANSWER});
    } else if (at < next) {
      next = at;
    }
  }
  return next;
}

static int64_t earliest_due(const struct inst *in)
{
  int64_t t = in->next_poll;
  for (int c = 0; c < certs; c++)
    if (in->cert_due[c] < t)
      t = in->cert_due[c];
  return t;
}

static void finish_job(struct inst *in, int c, bool ok, int64_t t)
{
  in->jobs[c].state = 0;
  in->open_jobs--;
  in->installed[c] = in->installed[c] || ok;
  in->failures[c] = ok ? 0 : in->failures[c] + 1;
  in->cert_due[c] = ok ? INT64_MAX : t + kvvm_sched_retry_ms(in->failures[c], rnd());
}

/* A page answered (accepted or not): the next page at once, the end of the listing, or
 * (throttled for good) the fall-back to one GET per certificate. */
static void listed(struct inst *in, bool ok, bool given_up, int64_t t)
{
  struct job *j = &in->jobs[certs];
  if (ok && --in->pages_left > 0) {
    *j = (struct job){t, 0, 1};
    return;
  }
  if (!ok && !given_up)
    return;
  j->state = 0;
  in->open_jobs = 0;
  for (int c = 0; given_up && c < certs; c++) {
    in->jobs[c] = (struct job){t, 0, 1};
    in->open_jobs++;
  }
}

static void answer(uint32_t i, int c, int64_t t)
{
  struct inst *in = &inst[i];
  struct job *j = &in->jobs[c];
  in->running--;
  long ra = vault_take(t - LATENCY_MS);
  bool give_up = ra >= 0 && j->throttled + 1 >= KVVM_KV_MAX_THROTTLED;
  if (c == certs)
    listed(in, ra < 0, give_up, t);
  if (c == certs && (ra < 0 || give_up))
    return;
  if (ra < 0) {
    finish_job(in, c, true, t);
  } else if (++j->throttled >= KVVM_KV_MAX_THROTTLED) {
    finish_job(in, c, false, t);
  } else {
    int64_t delay = kvvm_kv_throttle_ms(j->throttled, ra, rnd());
    j->state = 1;
    j->due = t + delay;
    if (in->gate < t + delay)
      in->gate = t + delay;
  }
}

static void step(struct ev e)
{
  struct inst *in = &inst[e.inst];
  if (e.kind == EV_ANSWER)
    answer(e.inst, e.job, e.t);
  else if (e.t != in->wake_at)
    return;   /* superseded by an earlier wake-up */
  in->wake_at = -1;
  if (!in->in_pass && e.t >= earliest_due(in))
    start_pass(in, e.t);
  int64_t next = in->in_pass ? launch(e.inst, e.t) : INT64_MAX;
  if (in->in_pass && in->open_jobs == 0)
    end_pass(in, e.t);
  if (!in->in_pass) {
    /* Overdue (a certificate's retry fell due while the pass ran): the next pass starts at
     * once, as kvvmd's loop does. */
    next = earliest_due(in);
    wake(e.inst, next > e.t ? next : e.t);
  } else if (next != INT64_MAX && next > e.t) {
    wake(e.inst, next);   /* else all slots are busy, and an answer calls again */
  }
}

static uint32_t peak_window(size_t from_s, size_t to_s, size_t w_s)
{
  uint32_t best = 0, sum = 0;
  for (size_t s = from_s; s < to_s && s < n_s; s++) {
    sum += per_s[s];
    if (s >= from_s + w_s)
      sum -= per_s[s - w_s];
    best = sum > best ? sum : best;
  }
  return best;
}

/* Requests offered per hour from from_s on: the steady load of the polls. */
static double per_hour(size_t from_s)
{
  uint64_t sum = 0;
  for (size_t s = from_s; s < n_s; s++)
    sum += per_s[s];
  return from_s < n_s ? (double)sum * 3600.0 / (double)(n_s - from_s) : 0.0;
}

static uint32_t peak_second(size_t from_s, size_t to_s)
{
  uint32_t best = 0;
  for (size_t s = from_s; s < to_s && s < n_s; s++)
    best = per_s[s] > best ? per_s[s] : best;
  return best;
}

int main(int argc, char **argv)
{
  long n = 1000, limit = 4000, window_ms = 10000, boot_s = 10, hours = 3;
  bool as_json = false;
  int opt;
  certs = 10;
  while ((opt = getopt(argc, argv, "n:c:l:w:b:h:s:jLv:")) != -1) {
    switch (opt) {
    case 'n': n = atol(optarg); break;
    case 'c': certs = atoi(optarg); break;
    case 'l': limit = atol(optarg); break;
    case 'w': window_ms = atol(optarg); break;
    case 'b': boot_s = atol(optarg); break;
    case 'h': hours = atol(optarg); break;
    case 's': rng = strtoull(optarg, NULL, 10) | 1; break;
    case 'j': as_json = true; break;
    case 'L': list_mode = true; break;
    case 'v': vault_secrets = atol(optarg); break;
    default: fprintf(stderr, "usage: %s [-n N] [-c C] [-l LIMIT] [-w MS] [-b S] [-h H] [-s SEED] [-j] [-L] [-v SECRETS]\n", argv[0]); return 2;
    }
  }
  if (n <= 0 || certs <= 0 || certs > MAX_CERTS || limit <= 0 || window_ms <= 0) {
    fprintf(stderr, "scaleset: bad arguments\n");
    return 2;
  }
  if (vault_secrets < certs)
    vault_secrets = certs;
  int64_t end_ms = hours * 3600 * 1000;
  vault.limit = (size_t)limit;
  vault.window = window_ms;
  vault.ring = calloc(vault.limit, sizeof *vault.ring);
  n_s = (size_t)(end_ms / 1000) + 1;
  per_s = calloc(n_s, sizeof *per_s);
  inst = calloc((size_t)n, sizeof *inst);
  for (long i = 0; i < n; i++) {
    struct inst *in = &inst[i];
    in->success_at = -1;
    in->wake_at = -1;
    in->next_poll = (int64_t)(rnd() % (uint32_t)(boot_s * 1000 + 1));   /* boot: first poll */
    for (int c = 0; c < certs; c++)
      in->cert_due[c] = INT64_MAX;
    wake((uint32_t)i, in->next_poll);
  }
  while (q.n && q.heap[0].t <= end_ms)
    step(pop());
  int64_t all_ok = 0;
  long never = 0;
  for (long i = 0; i < n; i++) {
    if (inst[i].success_at < 0)
      never++;
    else if (inst[i].success_at > all_ok)
      all_ok = inst[i].success_at;
  }
  size_t burst_end = (size_t)(all_ok / 1000) + 1, w_s = (size_t)(window_ms / 1000);
  uint32_t pk_w = peak_window(0, n_s, w_s), pk_s = peak_second(0, n_s);
  uint32_t after_w = peak_window(burst_end, n_s, w_s), after_s = peak_second(burst_end, n_s);
  if (as_json) {
    printf("{\"instances\": %ld, \"certs\": %d, \"limit\": %ld, \"window_ms\": %ld, "
           "\"boot_spread_s\": %ld, \"hours\": %ld, \"all_success_s\": %.1f, \"never\": %ld, "
           "\"offered\": %" PRIu64 ", \"accepted\": %" PRIu64 ", \"refused_429\": %" PRIu64 ", "
           "\"peak_per_s\": %u, \"peak_per_window\": %u, \"after_burst_peak_per_s\": %u, "
           "\"after_burst_peak_per_window\": %u, \"list\": %s, \"vault_secrets\": %ld, "
           "\"after_burst_per_hour\": %.0f}\n",
           n, certs, limit, window_ms, boot_s, hours, all_ok / 1000.0, never, vault.offered,
           vault.accepted, vault.refused, pk_s, pk_w, after_s, after_w,
           list_mode ? "true" : "false", vault_secrets, per_hour(burst_end));
  } else {
    printf("scale set: %ld instances x %d certificates, vault %ld GETs per %ld ms, boot over %ld s\n",
           n, certs, limit, window_ms, boot_s);
    printf("  every instance success after %.1f s (%ld never within %ld h)\n", all_ok / 1000.0,
           never, hours);
    printf("  requests offered %" PRIu64 ", accepted %" PRIu64 ", 429s %" PRIu64 "\n",
           vault.offered, vault.accepted, vault.refused);
    printf("  peak offered: %u per second, %u per window; after the first burst: %u per second, "
           "%u per window, %.0f per hour (%s)\n", pk_s, pk_w, after_s, after_w,
           per_hour(burst_end), list_mode ? "the steady pass lists" : "one GET per certificate");
  }
  free(vault.ring);
  free(per_s);
  free(inst);
  free(q.heap);
  return never ? 1 : 0;
}
