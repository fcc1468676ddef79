/* One pass: tokens, secrets, bundles, installs, outcomes. Each step hands plain values to the
 * next (design.md, Data flow): kv gets its token from here, store never writes status. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/certmat.h"
#include "kvvm/clock.h"
#include "kvvm/identity.h"
#include "kvvm/installed.h"
#include "kvvm/kv.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/phase.h"
#include "kvvm/store.h"
#include "kvvm/sync.h"
#include "service/sync_int.h"
#include "service/sync_list_int.h"

/* One identity in one cloud: the certificates that share it share one token. */
struct slot {
  char identity[320];       /* kvvm_identity_describe's words: distinct per identity */
  const char *resource;
  size_t first;             /* a certificate using it (the identity is read from its cfg) */
  char *token;              /* NULL when it could not be had */
};

struct pass {
  struct kvvm_store *store;
  const struct kvvm_config *cfg;
  const bool *due;
  struct kvvm_cert_outcome *out;
  struct slot *slots;
  size_t n_slots;
  size_t *slot_of;          /* per due certificate: its slot */
  bool *kept;               /* per certificate: its vault's listing showed it unchanged */
  int64_t started;          /* when the pass began asking Key Vault (Unix seconds) */
};

static bool is_due(const struct pass *p, size_t i) { return !p->due || p->due[i]; }

void kvvm_outcome_say(struct kvvm_cert_outcome *o, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0)
    s = NULL;
  va_end(ap);
  free(o->why);
  o->why = s && *s ? s : NULL;
  if (!o->why)
    free(s);
}

const char *kvvm_outcome_why(const struct kvvm_cert_outcome *o) { return o->why ? o->why : ""; }

void kvvm_outcome_note(struct kvvm_cert_outcome *o, const char *note)
{
  free(o->note);
  o->note = note && *note ? kvvm_xstrdup(note) : NULL;
}

void kvvm_outcomes_clear(struct kvvm_cert_outcome *out, size_t n)
{
  for (size_t i = 0; out && i < n; i++) {
    free(out[i].why);
    free(out[i].note);
    out[i].why = NULL;
    out[i].note = NULL;
  }
}

/* Errors waiting can fix (access granted later, network back, throttling over, secret
 * created or enabled later) versus content or settings that will stay wrong. */
static bool transient(enum kvvm_err e)
{
  return e == KVVM_E_NET || e == KVVM_E_AUTH || e == KVVM_E_NOTFOUND || e == KVVM_E_INACTIVE ||
         e == KVVM_E_IO;
}

static void fail(struct pass *p, size_t i, enum kvvm_err e, const char *why)
{
  struct kvvm_cert_outcome *o = &p->out[i];
  const struct kvvm_cert_cfg *cc = &p->cfg->certs[i];
  o->err = e;
  o->changed = false;
  kvvm_outcome_say(o, "%s", why && *why ? why : kvvm_err_str(e));
  o->state = o->in_place ? KVVM_CERT_INSTALLED : transient(e) ? KVVM_CERT_PENDING
                                                              : KVVM_CERT_FAILED;
  kvvm_installed_set_error(kvvm_store_installed(p->store), cc->url, cc->store_dir, o->why);
}

/* What an earlier pass left in place, so a failing fetch does not hide an installed file. */
static void recall(struct pass *p, size_t i)
{
  struct kvvm_installed_cert rec;
  struct kvvm_cert_outcome *o = &p->out[i];
  const struct kvvm_cert_cfg *cc = &p->cfg->certs[i];
  o->in_place = kvvm_installed_get(kvvm_store_installed(p->store), cc->url, cc->store_dir, &rec) &&
                rec.version;
  kvvm_outcome_note(o, o->in_place ? rec.note : NULL);
  if (!o->in_place)
    return;
  snprintf(o->version, sizeof(o->version), "%s", rec.version);
  snprintf(o->thumbprint, sizeof(o->thumbprint), "%s", rec.thumbprint ? rec.thumbprint : "");
  o->not_after = rec.not_after;
  o->installed_at = rec.installed_at;
}

/* The slot of certificate i, added when it is the first of its identity and cloud. */
static size_t slot_for(struct pass *p, size_t i)
{
  const struct kvvm_cert_cfg *cc = &p->cfg->certs[i];
  struct slot s = {.resource = cc->resource, .first = i};
  kvvm_identity_describe(p->cfg, cc, s.identity, sizeof(s.identity));
  for (size_t k = 0; k < p->n_slots; k++)
    if (strcmp(p->slots[k].identity, s.identity) == 0 &&
        strcmp(p->slots[k].resource, s.resource) == 0)
      return k;
  p->slots[p->n_slots] = s;
  return p->n_slots++;
}

/* One token per identity and cloud, however many certificates use it: a VM usually has one
 * of each, and a few certificates with their own identity (authenticationOverride). A
 * refusal is the error of the certificates of that slot only. */
static void get_tokens(struct pass *p)
{
  size_t n = p->cfg->n_certs;
  p->slots = kvvm_xcalloc(n, sizeof(*p->slots));
  p->slot_of = kvvm_xcalloc(n, sizeof(*p->slot_of));
  for (size_t i = 0; i < n; i++)
    if (is_due(p, i))
      p->slot_of[i] = slot_for(p, i);
  for (size_t k = 0; k < p->n_slots; k++) {
    struct slot *s = &p->slots[k];
    char why[512] = "";
    enum kvvm_err e = kvvm_identity_token(p->cfg, &p->cfg->certs[s->first], s->resource,
                                          &s->token, why, sizeof(why));
    for (size_t j = 0; e != KVVM_OK && j < n; j++)
      if (is_due(p, j) && p->slot_of[j] == k) {
        recall(p, j);
        fail(p, j, e, why);
      }
  }
}

/* The version recorded is still in place (its files and link checked, grants applied): no
 * decoding, no writes. The outcome keeps what recall() read from the record. */
static bool keep_one(struct pass *p, size_t i, const struct kvvm_secret *sec)
{
  struct kvvm_cert_outcome *o = &p->out[i];
  struct kvvm_install_result res;
  enum kvvm_err e;
  if (!o->in_place || strcmp(o->version, sec->version) != 0 ||
      !kvvm_store_keep(p->store, &p->cfg->certs[i], sec->version, &res, &e))
    return false;
  o->state = KVVM_CERT_INSTALLED;
  o->changed = false;
  o->err = e;
  kvvm_outcome_say(o, "%s", e == KVVM_OK ? "" : res.why);
  if (e != KVVM_OK && e != KVVM_E_GRANT)
    fail(p, i, e, res.why);
  kvvm_install_result_clear(&res);
  return true;
}

static void install_one(struct pass *p, size_t i, const struct kvvm_secret *sec)
{
  const struct kvvm_cert_cfg *cc = &p->cfg->certs[i];
  struct kvvm_cert_outcome *o = &p->out[i];
  struct kvvm_bundle *b = NULL;
  struct kvvm_install_result res;
  char why[512] = "";
  struct kvvm_phase_mark m;
  memset(&res, 0, sizeof(res));
  kvvm_phase_begin(&m);
  bool kept = keep_one(p, i, sec);
  kvvm_phase_end(KVVM_PHASE_INSTALL, &m);
  if (kept)
    return;
  kvvm_phase_begin(&m);
  enum kvvm_err e = kvvm_certmat_from_secret(sec->content_type, sec->value, sec->value_len, &b,
                                             why, sizeof(why));
  kvvm_phase_end(KVVM_PHASE_DECODE, &m);
  if (e != KVVM_OK) {
    char msg[600];
    snprintf(msg, sizeof(msg), "version %s cannot be installed: %s", sec->version, why);
    fail(p, i, e, msg);
    goto out;
  }
  kvvm_phase_begin(&m);
  e = kvvm_store_install(p->store, cc, b, sec->version, &res);
  kvvm_phase_end(KVVM_PHASE_INSTALL, &m);
  if (e != KVVM_OK && e != KVVM_E_GRANT) {
    fail(p, i, e, res.why);
    goto out;
  }
  const struct kvvm_cert_facts *f = kvvm_bundle_facts(b);
  o->state = KVVM_CERT_INSTALLED;
  o->in_place = true;
  o->changed = res.changed;
  o->err = e;
  kvvm_outcome_say(o, "%s", e == KVVM_OK ? "" : res.why);
  snprintf(o->version, sizeof(o->version), "%s", sec->version);
  snprintf(o->thumbprint, sizeof(o->thumbprint), "%s", f->thumbprint);
  o->not_after = f->not_after;
  struct kvvm_installed_cert rec;
  bool known = kvvm_installed_get(kvvm_store_installed(p->store), cc->url, cc->store_dir, &rec);
  kvvm_outcome_note(o, known ? rec.note : NULL);
  o->installed_at = known ? rec.installed_at : 0;
out:
  kvvm_install_result_clear(&res);
  kvvm_bundle_free(b);
}

struct fetched {
  struct pass *p;
  const size_t *idx;   /* request k is certificate idx[k] */
  struct sync_pipe *pipe;   /* the second thread; NULL: installs run on this one */
};

/* Each secret is installed, and its value wiped, as soon as it arrives; its record is then
 * parked (installed.h), so the pass holds one parsed record, not all of them. Runs on the
 * pipe's thread, the only one that touches the store during the fetch. */
static void install_fetched(void *user, size_t k, struct kvvm_kv_result *r)
{
  struct fetched *f = user;
  size_t i = f->idx[k];
  const struct kvvm_cert_cfg *cc = &f->p->cfg->certs[i];
  struct kvvm_installed *inst = kvvm_store_installed(f->p->store);
  struct kvvm_phase_mark m;
  kvvm_phase_begin(&m);
  recall(f->p, i);   /* here, not up front: the record is parsed once for both */
  kvvm_phase_end(KVVM_PHASE_RECORD, &m);
  if (r->err == KVVM_OK)
    install_one(f->p, i, &r->secret);
  else
    fail(f->p, i, r->err, r->why);
  if (f->p->out[i].err == KVVM_OK) {
    kvvm_installed_set_error(inst, cc->url, cc->store_dir, NULL);
    f->p->out[i].checked_at = kvvm_clock_now();
    kvvm_sync_saw(inst, cc, &r->secret, f->p->started);
  }
  kvvm_phase_begin(&m);
  kvvm_installed_park(inst);
  kvvm_phase_end(KVVM_PHASE_RECORD, &m);
  kvvm_kv_result_clear(r);
}

/* On the fetching thread: the token first (it is this thread's), then the install, handed
 * over so the next answers are read meanwhile. */
static void on_fetched(void *user, size_t k, struct kvvm_kv_result *r)
{
  struct fetched *f = user;
  /* A vault that refuses the token (revoked, or expired early) gets a new one on the retry,
   * not the cached one again. */
  if (r->status == 401)
    kvvm_identity_forget();
  if (!f->pipe) {
    install_fetched(user, k, r);
    return;
  }
  struct kvvm_phase_mark m;
  kvvm_phase_begin(&m);
  sync_pipe_push(f->pipe, k, r);
  kvvm_phase_end(KVVM_PHASE_LOCAL_WAIT, &m);
}

/* The vault refused mid-pass a token it had accepted (it expired during a long pass): the
 * cached one is dropped and the identity endpoint asked again, once for all the requests
 * that shared it (kv coalesces). */
static enum kvvm_err renew_token(void *user, size_t k, char **token, char *why, size_t whylen)
{
  struct fetched *f = user;
  const struct kvvm_cert_cfg *cc = &f->p->cfg->certs[f->idx[k]];
  kvvm_identity_forget();
  return kvvm_identity_token(f->p->cfg, cc, cc->resource, token, why, whylen);
}

static void fetch_and_install(struct pass *p)
{
  size_t n = p->cfg->n_certs, m = 0;
  struct kvvm_kv_request *reqs = kvvm_xcalloc(n, sizeof(*reqs));
  size_t *idx = kvvm_xcalloc(n, sizeof(*idx));
  for (size_t i = 0; i < n; i++) {
    if (!is_due(p, i) || !p->slots[p->slot_of[i]].token || p->kept[i])
      continue;
    const struct slot *s = &p->slots[p->slot_of[i]];
    reqs[m] = (struct kvvm_kv_request){p->cfg->certs[i].url, s->token, s->identity, 0};
    idx[m++] = i;
  }
  /* The queue holds about one round of answers: enough to ride out one slow install. */
  struct fetched f = {p, idx, NULL};
  if (m > 1)
    f.pipe = sync_pipe_start(install_fetched, &f, 16);
  struct kvvm_phase_mark mark;
  kvvm_phase_begin(&mark);
  if (m)   /* results live only while in use */
    kvvm_kv_fetch_each(reqs, m, NULL, on_fetched, renew_token, &f);
  kvvm_phase_end(KVVM_PHASE_FETCH, &mark);
  kvvm_phase_begin(&mark);
  if (f.pipe)
    sync_pipe_finish(f.pipe);
  kvvm_phase_end(KVVM_PHASE_DRAIN, &mark);
  free(idx);
  free(reqs);
}

/* The steady pass: vaults whose listing is cheaper than asking each secret are listed, and
 * the certificates it shows unchanged are kept as installed with no request of their own
 * (listing.h); the others are fetched as before. */
static void list_and_keep(struct pass *p)
{
  size_t n = p->cfg->n_certs;
  const char **token = kvvm_xcalloc(n + 1, sizeof(*token));
  struct kvvm_installed *inst = kvvm_store_installed(p->store);
  p->kept = kvvm_xcalloc(n + 1, sizeof(*p->kept));
  for (size_t i = 0; i < n; i++)
    token[i] = is_due(p, i) ? p->slots[p->slot_of[i]].token : NULL;
  kvvm_sync_list(inst, p->cfg, p->due, token, p->slot_of, p->started, p->kept);
  for (size_t i = 0; i < n; i++) {
    if (!p->kept[i])
      continue;
    recall(p, i);
    struct kvvm_secret sec = {.version = p->out[i].version};
    p->kept[i] = p->out[i].in_place && keep_one(p, i, &sec);
    if (p->kept[i] && p->out[i].err == KVVM_OK) {
      kvvm_installed_set_error(inst, p->cfg->certs[i].url, p->cfg->certs[i].store_dir, NULL);
      p->out[i].checked_at = kvvm_clock_now();
    }
    kvvm_installed_park(inst);
  }
  free(token);
}

size_t kvvm_sync_pass(struct kvvm_store *store, const struct kvvm_config *cfg, const bool *due,
                      struct kvvm_cert_outcome *out)
{
  struct pass p = {.store = store, .cfg = cfg, .due = due, .out = out};
  struct kvvm_phase_mark m;
  kvvm_phase_begin(&m);
  get_tokens(&p);
  kvvm_phase_end(KVVM_PHASE_TOKENS, &m);
  p.started = (int64_t)kvvm_clock_now();
  list_and_keep(&p);
  fetch_and_install(&p);
  size_t changed = 0;
  for (size_t i = 0; i < cfg->n_certs; i++)
    changed += is_due(&p, i) && out[i].changed;
  for (size_t k = 0; k < p.n_slots; k++)
    if (p.slots[k].token)
      kvvm_free_secret(p.slots[k].token, strlen(p.slots[k].token));
  free(p.slots);
  free(p.slot_of);
  free(p.kept);
  return changed;
}
