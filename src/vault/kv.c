/* Fetching secrets from Key Vault: many at once with at most KVVM_KV_MAX_IN_FLIGHT in
 * flight, each answer judged, retried or explained. One loop drives the shared HTTP handle;
 * each secret is a job that waits (not before due_ms, nor before its vault's throttling
 * gate opens), runs, then is done or waits again. */
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kvvm/clock.h"
#include "kvvm/http.h"
#include "kvvm/kv.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/phase.h"
#include "kvvm/rand.h"

/* Backoff windows without Retry-After: full jitter in [floor, 1 s * 2^(try-1)], at most
 * BACKOFF_CAP_MS; the floor keeps a retry from ever being immediate. */
#define BACKOFF_BASE_MS 1000
#define BACKOFF_CAP_MS 16000
#define BACKOFF_FLOOR_MS 100
/* How long the loop sleeps at most before it looks at its schedule again. */
#define STEP_MS 1000
/* The service's words as quoted after ours: " Forbidden/ForbiddenByRbac: \"...\"". */
#define WORDS_MAX (KVVM_KV_QUOTE_MAX + 160)
/* 401s one request may meet and still be tried again with a renewed token: tokens that
 * expire within a request's round trip must not keep a pass going for ever. */
#define MAX_REFUSED 3
#define BEARER "Authorization: Bearer "

enum job_state { J_WAIT, J_RUN, J_DONE };

struct gate {
  char *host;
  int64_t not_before;  /* the vault throttled us: nothing is sent to it before this */
};

/* A token the requests share (those given the same one): renewed once for all of them when
 * the vault refuses it after having accepted it, so a pass that outlives its token costs one
 * token request per lifetime, and the 401s at each expiry are those already in flight. */
struct tok {
  const char *given;   /* the caller's token, to match requests by */
  char *value;         /* the token now handed out: given, or the latest renewal (wiped) */
  unsigned gen;        /* renewals so far */
  bool accepted;       /* the vault answered a request sent with this generation (not 401) */
  bool stale;          /* ... and refused one since: renew before the next request starts */
  enum kvvm_err err;   /* the renewal failed: requests still needing the token fail so */
  char words[WORDS_MAX];  /* the vault's, with the refusal that made it stale */
  char why[300];       /* why the renewal failed */
};

struct fetch;

struct job {
  const struct kvvm_kv_request *req;
  struct kvvm_kv_result *res;
  struct fetch *f;
  char *url, *host, *name, *version;
  char *auth;           /* the header of the last request sent, with its token (wiped) */
  size_t gate, tok;
  unsigned gen;         /* the token generation the last request was sent with */
  int faults, throttled, refused;
  int64_t due_ms;
  enum job_state state;
};

struct fetch {
  struct job *jobs;
  size_t n, running, done, peak, requests, ok;
  struct gate *gates;
  size_t ngates;
  struct tok *toks;
  size_t ntoks;
  kvvm_kv_renew_fn renew;
  enum kvvm_err first_err;
  /* Finished jobs not yet handed to the caller's callback, oldest first. */
  size_t *ready, nready, handed;
  /* Why the job just answered waits to be tried again, for the log line on_done writes
   * right after (one buffer for the fetch, not one per job: a pass has thousands). */
  char retry_why[200];
  kvvm_kv_done_fn cb;
  void *user;
  bool owns;   /* results are made per job (res_of) and freed after the callback */
};

/* A job's result: the caller's, or (kvvm_kv_fetch_each without a results array) one made
 * when the job first needs it and freed once handed over, so a pass over many certificates
 * holds results only for the requests under way. */
static struct kvvm_kv_result *res_of(struct job *j)
{
  if (!j->res)
    j->res = kvvm_xcalloc(1, sizeof *j->res);
  return j->res;
}

/* The service's error words, safe to quote, and the inner code (e.g. SecretDisabled). */
struct kv_error {
  char words[WORDS_MAX];
  char inner[64];
};

static void say(struct job *j, enum kvvm_err e, const char *fmt, ...)
    __attribute__((format(gnu_printf, 3, 4)));

static void say(struct job *j, enum kvvm_err e, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(res_of(j)->why, sizeof j->res->why, fmt, ap);
  va_end(ap);
  res_of(j)->err = e;
}

static const char *who(const struct job *j)
{
  return j->req->identity ? j->req->identity : "the managed identity";
}

/* "secret web" or "secret web version 0123...". */
static const char *what(const struct job *j, char *buf, size_t n)
{
  snprintf(buf, n, "secret %s%s%s", j->name, j->version ? " version " : "",
           j->version ? j->version : "");
  return buf;
}

/* xorshift64, seeded from the kernel: the instances of a scale set that are throttled
 * together must not retry together. */
static uint64_t rng_next(void)
{
  static uint64_t s;
  /* Without the system's bytes, uptimes differ enough between machines, and the address of
   * s adds what ASLR gives; | 1 because xorshift never leaves zero. */
  if (!s && (kvvm_rand_bytes(&s, sizeof s) != KVVM_OK || !s))
    s = ((uint64_t)kvvm_clock_mono_ms() * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)&s) | 1;
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

static int64_t jitter_with(int tries, uint64_t rnd)
{
  int64_t window = (int64_t)BACKOFF_BASE_MS << (tries < 6 ? tries - 1 : 5);
  if (window > BACKOFF_CAP_MS)
    window = BACKOFF_CAP_MS;
  return BACKOFF_FLOOR_MS + (int64_t)(rnd % (uint64_t)(window - BACKOFF_FLOOR_MS + 1));
}

static int64_t jitter_ms(int tries)
{
  return jitter_with(tries, rng_next());
}

int64_t kvvm_kv_throttle_ms(int throttled, long retry_after_s, uint64_t rnd)
{
  int64_t delay = jitter_with(throttled, rnd);
  if (retry_after_s >= 0) {
    /* Never earlier than asked (within the cap), and up to a quarter later: every client a
     * vault throttles hears the same Retry-After, and coming back all at once would only
     * throttle them again (tests/stress/scaleset.c measured the herd). */
    int64_t asked = retry_after_s < KVVM_KV_RETRY_AFTER_CAP_S ? retry_after_s * 1000
                                                              : KVVM_KV_RETRY_AFTER_CAP_S * 1000;
    delay = asked + (int64_t)(rnd % (uint64_t)(asked / 4 + 1));
  }
  return delay < BACKOFF_FLOOR_MS ? BACKOFF_FLOOR_MS : delay;
}

/* The token the answer being read was asked with (a renewal may have replaced the given one). */
static const char *sent_token(const struct job *j)
{
  return j->auth ? j->auth + strlen(BEARER) : j->req->token;
}

static void read_error(const struct job *j, const struct kvvm_http_resp *r, struct kv_error *e)
{
  struct kvvm_kv_error ke;
  kvvm_kv_parse_error(r->body, r->len, sent_token(j), &ke);
  memcpy(e->inner, ke.inner, sizeof e->inner);
  if (ke.code[0] || ke.message[0])
    snprintf(e->words, sizeof e->words, " %s%s%s: \"%s\"", ke.code, ke.inner[0] ? "/" : "",
             ke.inner, ke.message);
  else
    e->words[0] = '\0';
}

/* A fault worth another try (network, 5xx, garbled answer): the delay, or -1 when the tries
 * are spent and the job fails (KVVM_E_NET) with the words given. */
static int64_t fault(struct job *j, const char *words)
{
  snprintf(j->f->retry_why, sizeof j->f->retry_why, "%s", words);
  if (++j->faults < KVVM_KV_MAX_TRIES)
    return jitter_ms(j->faults);
  say(j, KVVM_E_NET, "vault %s: %s (gave up after %d tries)", j->host, words,
      res_of(j)->tries);
  return -1;
}

static int64_t transport(struct job *j, const struct kvvm_http_resp *r)
{
  if (r->fail == KVVM_HTTP_TRANSIENT)
    return fault(j, r->error);
  if (r->fail == KVVM_HTTP_REFUSED)
    say(j, KVVM_E_SETTINGS, "vault %s not asked: %s", j->host, r->error);
  else if (r->fail == KVVM_HTTP_TLS)
    say(j, KVVM_E_TLS, "vault %s: TLS verification failed: %s (a TLS-inspecting proxy on "
        "the way, or a CA bundle without the vault's issuer?)", j->host, r->error);
  else  /* waiting does not shrink it: this version's error; later passes look for a new one */
    say(j, KVVM_E_CERT, "vault %s: the answer for %s is larger than any secret (%s), so this "
        "version cannot be installed; a newer version is fetched when there is one", j->host,
        j->name, r->error);
  return -1;
}

static bool ctype_ok(const char *t)
{
  size_t n = t ? strcspn(t, "; ") : 0;
  return (n == 20 && strncasecmp(t, "application/x-pkcs12", n) == 0) ||
         (n == 22 && strncasecmp(t, "application/x-pem-file", n) == 0);
}

/* The bundle must be the one asked for: https://<host>/secrets/<name>/[<version>]. */
static bool same_secret(const struct job *j, const struct kvvm_secret *s)
{
  char *want = kvvm_xasprintf("https://%s/secrets/%s/", j->host, j->name);
  bool ok = strncasecmp(s->id, want, strlen(want)) == 0 &&
            (!j->version || strcmp(s->version, j->version) == 0);
  free(want);
  return ok;
}

static void drop_value(struct kvvm_secret *s)
{
  kvvm_free_secret(s->value, s->value_len);
  s->value = NULL;
  s->value_len = 0;
}

static void inactive(struct job *j, const char *state)
{
  char w[300];
  drop_value(&res_of(j)->secret);
  say(j, KVVM_E_INACTIVE, "%s in vault %s is %s: it is not installed until a version that "
      "is enabled and valid is current", what(j, w, sizeof w), j->host, state);
}

static int64_t fetched(struct job *j, const struct kvvm_http_resp *r)
{
  struct kvvm_secret *s = &res_of(j)->secret;
  char reason[200], w[300], since[64];
  struct kvvm_phase_mark m;
  kvvm_kv_secret_clear(s);
  kvvm_phase_begin(&m);
  enum kvvm_err e = kvvm_kv_parse_bundle(r->body, r->len, s, reason, sizeof reason);
  kvvm_phase_end(KVVM_PHASE_PARSE, &m);
  if (e != KVVM_OK)
    return fault(j, reason);
  if (!same_secret(j, s)) {
    kvvm_kv_secret_clear(s);
    return fault(j, "the answer is for another secret");
  }
  if (!s->enabled || s->nbf > (int64_t)kvvm_clock_now()) {
    snprintf(since, sizeof since, "not valid before %lld (Unix time)", (long long)s->nbf);
    inactive(j, s->enabled ? since : "disabled");
    return -1;
  }
  if (!s->value) {
    kvvm_kv_secret_clear(s);
    return fault(j, "the answer has no value");
  }
  if (!ctype_ok(s->content_type)) {
    drop_value(s);
    say(j, KVVM_E_CERT, "%s in vault %s has content type %.80s; a certificate's secret is "
        "application/x-pkcs12 or application/x-pem-file", what(j, w, sizeof w), j->host,
        s->content_type ? s->content_type : "(none)");
    return -1;
  }
  res_of(j)->err = KVVM_OK;
  return -1;
}

static int64_t throttled(struct job *j, const struct kvvm_http_resp *r)
{
  long ra = kvvm_http_retry_after_s(r->retry_after, kvvm_clock_now());
  struct gate *g = &j->f->gates[j->gate];
  snprintf(j->f->retry_why, sizeof j->f->retry_why, "throttled (429%s%s)",
           r->retry_after ? ", Retry-After: " : "", r->retry_after ? r->retry_after : "");
  if (++j->throttled >= KVVM_KV_MAX_THROTTLED) {
    say(j, KVVM_E_NET, "vault %s kept throttling (429) through %d tries; it is shared with "
        "too many clients, or polling is too frequent", j->host, j->throttled);
    return -1;
  }
  int64_t delay = kvvm_kv_throttle_ms(j->throttled, ra, rng_next());
  /* Throttling is per vault: hold every request to it, not just this one. */
  int64_t until = kvvm_clock_mono_ms() + delay;
  if (g->not_before < until)
    g->not_before = until;
  return delay;
}

static void unauthorized(struct job *j, const struct kvvm_http_resp *r, const char *words)
{
  char why[300], *res = NULL;
  if (kvvm_kv_check_challenge(r->www_authenticate, j->host, &res, why, sizeof why) != KVVM_OK)
    say(j, KVVM_E_AUTH, "vault %s refused the token of %s; %s (401%s)", j->host, who(j), why,
        words);
  else
    say(j, KVVM_E_AUTH, "vault %s refused the token of %s: it wants a token for %s issued "
        "by the vault's tenant (401%s)", j->host, who(j), res, words);
  free(res);
}

/* A 401 for a token the vault accepted before in this call: it expired (or was revoked) in
 * the middle of the pass, and the request goes again with a new token. The first such 401
 * for a generation marks it stale (said once in the log, as info: nothing is wrong); the
 * requests refused with it, or with an older one, wait for the renewal, which the next
 * launch does. A token never accepted is refused for another reason (audience, tenant),
 * and so is a request refused again with the token renewed for it: those refusals stand,
 * as does a request refused MAX_REFUSED times. */
static bool renewable(struct job *j, const struct kvvm_http_resp *r)
{
  struct tok *t = &j->f->toks[j->tok];
  if (!j->f->renew || ++j->refused > MAX_REFUSED)
    return false;
  if (j->gen < t->gen || t->stale)
    return true;
  if (!t->accepted || j->refused > 1)
    return false;
  struct kv_error e;
  read_error(j, r, &e);
  memcpy(t->words, e.words, sizeof t->words);
  KVVM_INFO("key vault: vault %s refused the token of %s it had accepted (401%s); asking for "
            "a new token", j->host, who(j), t->words);
  t->stale = true;
  return true;
}

/* A 403 told by its inner code: a network rule or a missing permission, and which kind. */
static void forbidden(struct job *j, const struct kv_error *e)
{
  char w[300];
  const char *in = e->inner;
  if (strcasecmp(in, "SecretDisabled") == 0)
    inactive(j, "disabled");
  else if (strcasecmp(in, "ForbiddenByFirewall") == 0)
    say(j, KVVM_E_AUTH, "vault %s refused this VM's network address (the vault's firewall), "
        "not %s's permissions: allow the VM's subnet (service endpoint) or address in the "
        "vault's networking rules, or reach the vault through a private endpoint (403%s)",
        j->host, who(j), e->words);
  else if (strcasecmp(in, "ForbiddenByConnection") == 0)
    say(j, KVVM_E_AUTH, "vault %s takes requests only through an approved private endpoint "
        "(public network access is disabled): connect the VM's network to one, and make %s "
        "resolve to its private address (403%s)", j->host, j->host, e->words);
  else if (strcasecmp(in, "ForbiddenByRbac") == 0)
    say(j, KVVM_E_AUTH, "%s may not read %s in vault %s, which uses Azure RBAC: assign it the "
        "\"Key Vault Secrets User\" role on the vault or the secret (a new assignment can "
        "take a few minutes to apply) (403%s)", who(j), what(j, w, sizeof w), j->host,
        e->words);
  else if (strcasecmp(in, "AccessDenied") == 0)
    say(j, KVVM_E_AUTH, "%s may not read %s in vault %s, which uses access policies: give it "
        "the \"get\" permission on secrets in the vault's access policies (403%s)", who(j),
        what(j, w, sizeof w), j->host, e->words);
  else
    say(j, KVVM_E_AUTH, "%s may not read %s in vault %s: grant it the \"get\" permission on "
        "secrets in the vault's access policies, or the \"Key Vault Secrets User\" role when "
        "the vault uses Azure RBAC (403%s)", who(j), what(j, w, sizeof w), j->host, e->words);
}

static void refused(struct job *j, const struct kvvm_http_resp *r)
{
  struct kv_error e;
  char w[300];
  read_error(j, r, &e);
  if (r->status == 401)
    unauthorized(j, r, e.words);
  else if (r->status == 403)
    forbidden(j, &e);
  else if (r->status == 404)
    say(j, KVVM_E_NOTFOUND, "%s does not exist in vault %s: check the certificate URL; %s "
        "also needs the \"get\" permission on secrets there (404%s)", what(j, w, sizeof w),
        j->host, who(j), e.words);
  else if (r->status >= 300 && r->status < 400)
    say(j, KVVM_E_NET, "vault %s answered %ld for %s, a redirect, which kvvm does not follow: "
        "secrets come only from the vault the settings name (a proxy or captive portal on the "
        "way?)", j->host, r->status, what(j, w, sizeof w));
  else
    say(j, KVVM_E_NET, "vault %s answered %ld for %s%s", j->host, r->status,
        what(j, w, sizeof w), e.words);
}

/* Failures are logged here, once; successes only in the summary (most passes change
 * nothing, and the install that follows a new version logs that). */
static void finish(struct job *j)
{
  j->state = J_DONE;
  j->f->ready[j->f->nready++] = (size_t)(j - j->f->jobs);
  j->f->done++;
  if (j->auth)
    kvvm_free_secret(j->auth, strlen(j->auth));
  j->auth = NULL;
  if (res_of(j)->err != KVVM_OK)
    KVVM_WARN("key vault: %s", j->res->why);
}

static void on_done(void *user, const struct kvvm_http_resp *r)
{
  struct job *j = user;
  struct kv_error e;
  int64_t delay = -1;
  struct tok *t = &j->f->toks[j->tok];
  j->f->running--;
  res_of(j)->tries++;
  j->res->status = r->status;
  if (r->fail == KVVM_HTTP_OK && r->status != 401 && j->gen == t->gen)
    t->accepted = true;
  if (r->fail != KVVM_HTTP_OK) {
    delay = transport(j, r);
  } else if (r->status == 200) {
    delay = fetched(j, r);
  } else if (r->status == 429) {
    delay = throttled(j, r);
  } else if (r->status >= 500) {
    read_error(j, r, &e);
    char buf[WORDS_MAX + 32];
    snprintf(buf, sizeof buf, "answered %ld%s", r->status, e.words);
    delay = fault(j, buf);
  } else if (r->status == 401 && renewable(j, r)) {
    j->state = J_WAIT;   /* at once, with the renewed token: logged once, in renewable() */
    j->due_ms = kvvm_clock_mono_ms();
    return;
  } else {
    refused(j, r);
  }
  if (delay < 0) {
    finish(j);
    return;
  }
  KVVM_INFO("key vault: %s/%s: %s; try %d, the next in %lld ms", j->host, j->name,
            j->f->retry_why, res_of(j)->tries, (long long)delay);
  j->state = J_WAIT;
  j->due_ms = kvvm_clock_mono_ms() + delay;
}

static size_t gate_for(struct fetch *f, const char *host)
{
  for (size_t i = 0; i < f->ngates; i++)
    if (strcmp(f->gates[i].host, host) == 0)
      return i;
  f->gates = kvvm_xrealloc(f->gates, (f->ngates + 1) * sizeof *f->gates);
  f->gates[f->ngates] = (struct gate){kvvm_xstrdup(host), 0};
  return f->ngates++;
}

static size_t tok_for(struct fetch *f, const char *token)
{
  for (size_t i = 0; i < f->ntoks; i++)
    if (strcmp(f->toks[i].given, token) == 0)
      return i;
  f->toks = kvvm_xrealloc(f->toks, (f->ntoks + 1) * sizeof *f->toks);
  f->toks[f->ntoks] = (struct tok){.given = token, .value = kvvm_xstrdup(token)};
  return f->ntoks++;
}

static void prepare(struct fetch *f, size_t i, const struct kvvm_kv_request *req,
                    struct kvvm_kv_result *res)
{
  struct job *j = &f->jobs[i];
  if (res)
    memset(res, 0, sizeof *res);
  *j = (struct job){.req = req, .res = res, .f = f};
  char why[sizeof res->why];
  if (kvvm_kv_check_url(req->url, &j->host, &j->name, &j->version, why, sizeof why) !=
      KVVM_OK) {
    snprintf(res_of(j)->why, sizeof j->res->why, "%s", why);
    j->res->err = KVVM_E_SETTINGS;
    finish(j);
    return;
  }
  if (!req->token || !*req->token) {
    say(j, KVVM_E_INTERNAL, "vault %s: no token was given for %s", j->host, j->name);
    finish(j);
    return;
  }
  j->url = kvvm_xasprintf("%s?api-version=" KVVM_KV_API_VERSION, req->url);
  j->gate = gate_for(f, j->host);
  j->tok = tok_for(f, req->token);
}

/* The token went stale: one new one for every request sharing it. Requests in flight move on
 * meanwhile (their answers may arrive here); the identity endpoint's own retries apply. */
static void renew_token(struct fetch *f, size_t i)
{
  struct tok *t = &f->toks[f->jobs[i].tok];
  char *fresh = NULL;
  t->stale = false;
  enum kvvm_err rc = f->renew(f->user, i, &fresh, t->why, sizeof t->why);
  if (rc != KVVM_OK || !fresh) {
    t->err = rc != KVVM_OK ? rc : KVVM_E_INTERNAL;
    kvvm_free_secret(fresh, fresh ? strlen(fresh) : 0);
    return;
  }
  kvvm_free_secret(t->value, strlen(t->value));
  t->value = fresh;
  t->gen++;
  t->accepted = false;
}

static void launch(struct job *j)
{
  struct tok *t = &j->f->toks[j->tok];
  if (t->stale && !t->err)
    renew_token(j->f, (size_t)(j - j->f->jobs));
  if (t->err) {
    say(j, t->err, "vault %s refused the token of %s it had accepted (401%s), and no new one "
        "came: %s", j->host, who(j), t->words, t->why);
    finish(j);
    return;
  }
  if (j->auth)
    kvvm_free_secret(j->auth, strlen(j->auth));
  j->auth = kvvm_xasprintf(BEARER "%s", t->value);
  j->gen = t->gen;
  const char *hdrs[] = {j->auth, NULL};
  struct kvvm_http_req req = {KVVM_HTTP_KEYVAULT, j->url, hdrs, 0, j->req->timeout_ms ?
                              j->req->timeout_ms : KVVM_KV_TIMEOUT_MS, 0};
  j->state = J_RUN;
  j->f->requests++;
  if (++j->f->running > j->f->peak)
    j->f->peak = j->f->running;
  kvvm_http_start(&req, on_done, j);
}

static int64_t ready_at(const struct fetch *f, const struct job *j)
{
  int64_t gate = f->gates[j->gate].not_before;
  return j->due_ms > gate ? j->due_ms : gate;
}

/* Start what may start; returns when the next waiting job may (INT64_MAX: none waits). */
static int64_t launch_ready(struct fetch *f, int64_t now)
{
  int64_t next = INT64_MAX;
  for (size_t i = 0; i < f->n; i++) {
    struct job *j = &f->jobs[i];
    if (j->state != J_WAIT)
      continue;
    int64_t at = ready_at(f, j);
    if (at <= now && f->running < KVVM_KV_MAX_IN_FLIGHT)
      launch(j);
    else if (at < next)
      next = at;
  }
  return next;
}

/* kvvmd is stopping: what has not started does not start (requests in flight finish). */
static void abandon_waiting(struct fetch *f)
{
  for (size_t i = 0; i < f->n; i++) {
    struct job *j = &f->jobs[i];
    if (j->state != J_WAIT)
      continue;
    say(j, KVVM_E_NET, "not fetched: kvvmd is stopping");
    finish(j);
  }
}

/* Finished results go to the caller after the next requests have been started, so its work
 * (decoding, installing) overlaps the network instead of following it. */
static void hand_over(struct fetch *f)
{
  while (f->handed < f->nready) {
    size_t i = f->ready[f->handed++];
    struct kvvm_kv_result *res = res_of(&f->jobs[i]);
    f->ok += res->err == KVVM_OK;
    if (f->first_err == KVVM_OK)
      f->first_err = res->err;
    if (f->cb)
      f->cb(f->user, i, res);
    if (f->owns) {
      kvvm_kv_result_clear(res);
      free(res);
      f->jobs[i].res = NULL;
    }
  }
}

static void run(struct fetch *f)
{
  hand_over(f);   /* those refused before any request */
  while (f->done < f->n) {
    if (kvvm_clock_stopping())
      abandon_waiting(f);
    if (f->done == f->n)
      break;
    int64_t now = kvvm_clock_mono_ms(), next = launch_ready(f, now);
    if (f->running == 0 && next != INT64_MAX) {
      kvvm_clock_sleep_ms(next - now);  /* nothing in flight: a backoff, nothing else */
      continue;
    }
    int64_t wait = f->running < KVVM_KV_MAX_IN_FLIGHT && next != INT64_MAX ? next - now
                                                                          : STEP_MS;
    kvvm_http_step((int)(wait < 1 ? 1 : wait > STEP_MS ? STEP_MS : wait));
    launch_ready(f, kvvm_clock_mono_ms());
    hand_over(f);
  }
  hand_over(f);
}

static void release(struct fetch *f)
{
  for (size_t i = 0; i < f->n; i++) {
    struct job *j = &f->jobs[i];
    if (j->auth)
      kvvm_free_secret(j->auth, strlen(j->auth));
    free(j->url);
    free(j->host);
    free(j->name);
    free(j->version);
  }
  for (size_t i = 0; i < f->ngates; i++)
    free(f->gates[i].host);
  free(f->gates);
  for (size_t i = 0; i < f->ntoks; i++)
    kvvm_free_secret(f->toks[i].value, strlen(f->toks[i].value));
  free(f->toks);
  free(f->jobs);
  free(f->ready);
}

enum kvvm_err kvvm_kv_fetch_each(const struct kvvm_kv_request *reqs, size_t n,
                                 struct kvvm_kv_result *results, kvvm_kv_done_fn cb,
                                 kvvm_kv_renew_fn renew, void *user)
{
  struct fetch f = {.jobs = kvvm_xcalloc(n, sizeof(struct job)), .n = n,
                    .ready = kvvm_xcalloc(n ? n : 1, sizeof(size_t)), .cb = cb, .user = user,
                    .owns = results == NULL, .renew = renew};
  int64_t start = kvvm_clock_mono_ms();
  for (size_t i = 0; i < n; i++)
    prepare(&f, i, &reqs[i], results ? &results[i] : NULL);
  run(&f);
  KVVM_INFO("key vault: %zu of %zu secret(s) fetched in %lld ms (%zu requests, at most %zu in "
            "flight)", f.ok, n, (long long)(kvvm_clock_mono_ms() - start), f.requests, f.peak);
  enum kvvm_err rc = f.first_err;
  release(&f);
  return rc;
}

enum kvvm_err kvvm_kv_fetch_many(const struct kvvm_kv_request *reqs, size_t n,
                                 struct kvvm_kv_result *results)
{
  return kvvm_kv_fetch_each(reqs, n, results, NULL, NULL, NULL);
}

void kvvm_kv_result_clear(struct kvvm_kv_result *r)
{
  if (!r)
    return;
  kvvm_kv_secret_clear(&r->secret);
  memset(r, 0, sizeof *r);
}
