/* The request and answer of worker_int.h as JSON (docs/worker-protocol.md). Names, never
 * numbers, for states and errors: two builds may order their enums differently. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/settings.h"
#include "service/worker_int.h"

static const char *const err_names[KVVM_E__MAX] = {
  [KVVM_OK] = "ok", [KVVM_E_NOMEM] = "nomem", [KVVM_E_IO] = "io",
  [KVVM_E_NOENT] = "noent", [KVVM_E_HENV] = "henv", [KVVM_E_SEQNO] = "seqno",
  [KVVM_E_SETTINGS] = "settings", [KVVM_E_STATE] = "state", [KVVM_E_SERVICE] = "service",
  [KVVM_E_LOCKED] = "locked", [KVVM_E_USAGE] = "usage", [KVVM_E_CERT] = "cert",
  [KVVM_E_INTERNAL] = "internal", [KVVM_E_NET] = "net", [KVVM_E_AUTH] = "auth",
  [KVVM_E_NOTFOUND] = "notfound", [KVVM_E_INACTIVE] = "inactive", [KVVM_E_STORE] = "store",
  [KVVM_E_GRANT] = "grant", [KVVM_E_HOOK] = "hook", [KVVM_E_TLS] = "tls",
};

static const char *const state_names[] = {
  [KVVM_CERT_INSTALLED] = "installed", [KVVM_CERT_PENDING] = "pending",
  [KVVM_CERT_FAILED] = "failed",
};

static const char *const job_names[] = {
  [KVVM_JOB_START_UP] = "start-up", [KVVM_JOB_PASS] = "pass",
};

/* The index of name in names, or -1. */
static int name_index(const char *const *names, size_t n, const char *name)
{
  for (size_t i = 0; name && i < n; i++)
    if (names[i] && strcmp(names[i], name) == 0)
      return (int)i;
  return -1;
}

/* FNV-1a over the canonical JSON: a check that both ends loaded the same settings, not a
 * defence (both read the same root-owned file). */
char *kvvm_worker_settings_fp(const struct kvvm_config *cfg)
{
  char *json = kvvm_config_to_json(cfg);
  uint64_t h = 14695981039346656037u;
  for (const unsigned char *p = (const unsigned char *)json; p && *p; p++)
    h = (h ^ *p) * 1099511628211u;
  free(json);
  return kvvm_xasprintf("%016" PRIx64, h);
}

/* A JSON string of s; bytes that are not UTF-8 (a server's words quoted in a why) become
 * '?' rather than losing the whole message. */
static json_t *text_json(const char *s)
{
  json_t *j = json_string(s);
  if (j)
    return j;
  char *copy = kvvm_xstrdup(s);
  for (char *p = copy; *p; p++)
    if ((unsigned char)*p >= 0x80)
      *p = '?';
  j = json_string(copy);
  free(copy);
  return j;
}

static json_t *outcome_json(const struct kvvm_cert_outcome *o)
{
  json_t *j = json_pack("{s:s, s:s, s:b, s:b, s:b, s:o, s:o, s:I, s:o}", "state",
                        state_names[o->state], "err", err_names[o->err], "changed", o->changed,
                        "in_place", o->in_place, "hook_again", o->hook_again, "version",
                        text_json(o->version), "thumbprint", text_json(o->thumbprint),
                        "not_after", (json_int_t)o->not_after, "why",
                        text_json(kvvm_outcome_why(o)));
  if (o->note)  /* 1.1 */
    json_object_set_new(j, "note", text_json(o->note));
  if (o->installed_at)  /* 1.2 */
    json_object_set_new(j, "installed_at", json_integer((json_int_t)o->installed_at));
  if (o->checked_at)  /* 1.2 */
    json_object_set_new(j, "checked_at", json_integer((json_int_t)o->checked_at));
  return j;
}

static json_t *outcomes_json(const struct kvvm_cert_outcome *out, size_t n)
{
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(a, outcome_json(&out[i]));
  return a;
}

static char *dump(json_t *doc, size_t *len)
{
  char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
  json_decref(doc);
  if (!text) {
    KVVM_ERR("cannot write the pass worker's message (a field out of range)");
    return NULL;
  }
  *len = strlen(text);
  return text;
}

static json_t *version_json(void)
{
  char v[24];
  snprintf(v, sizeof v, "%d.%d", KVVM_WORKER_MAJOR, KVVM_WORKER_MINOR);
  return json_string(v);
}

char *kvvm_worker_req_encode(const struct kvvm_worker_req *r, size_t *len)
{
  json_t *due = json_array();
  for (size_t i = 0; r->due && i < r->n; i++)
    if (r->due[i])
      json_array_append_new(due, json_integer((json_int_t)i));
  json_t *doc = json_pack("{s:o, s:s, s:s, s:I, s:b, s:I, s:o, s:o}", "kvvm_worker",
                          version_json(), "job", job_names[r->job], "root", r->root, "seq",
                          (json_int_t)r->seq, "reconcile_grants", r->reconcile, "certificates",
                          (json_int_t)r->n, "due", due, "outcomes",
                          outcomes_json(r->out, r->out ? r->n : 0));
  if (r->settings_fp)
    json_object_set_new(doc, "settings_fp", json_string(r->settings_fp));
  return dump(doc, len);
}

/* Text grown in place: the answer's outcomes are appended one at a time. */
struct text {
  char *p;
  size_t len, cap;
};

static char *text_room(struct text *t, size_t n)
{
  if (t->cap - t->len <= n) {
    while (t->cap - t->len <= n)
      t->cap = t->cap ? 2 * t->cap : 65536;
    t->p = kvvm_xrealloc(t->p, t->cap);
  }
  return t->p + t->len;
}

static void text_put(struct text *t, const char *s)
{
  size_t n = strlen(s);
  memcpy(text_room(t, n), s, n + 1);
  t->len += n;
}

/* One outcome's compact JSON after the text; false when it cannot be written. */
static bool put_outcome(struct text *t, const struct kvvm_cert_outcome *o)
{
  json_t *j = outcome_json(o);
  size_t n = j ? json_dumpb(j, NULL, 0, JSON_COMPACT) : 0;
  bool ok = n > 0 && json_dumpb(j, text_room(t, n), n, JSON_COMPACT) == n;
  json_decref(j);
  t->len += ok ? n : 0;
  t->p[t->len] = '\0';
  return ok;
}

/* Written as it is made, not as one tree: the tree of a first sync's 1,000 outcomes was
 * the worker's peak (1.5 MiB of jansson's pieces besides its text). */
char *kvvm_worker_ans_encode(const struct kvvm_worker_ans *a, size_t *len)
{
  json_t *doc = json_pack("{s:o, s:I, s:b, s:s}", "kvvm_worker", version_json(), "changed",
                          (json_int_t)a->changed, "stopping", a->stopping, "pass_hook_error",
                          a->pass_hook_error);
  size_t head_len = 0;
  char *head = dump(doc, &head_len);
  if (!head)
    return NULL;
  struct text t = {NULL, 0, 0};
  head[head_len - 1] = '\0';   /* its closing brace: the outcomes come first */
  text_put(&t, head);
  free(head);
  text_put(&t, ",\"outcomes\":[");
  bool ok = true;
  for (size_t i = 0; ok && i < a->n; i++) {
    if (i)
      text_put(&t, ",");
    ok = put_outcome(&t, &a->out[i]);
  }
  text_put(&t, "]}");
  if (!ok) {
    KVVM_ERR("cannot write the pass worker's answer (an outcome out of range)");
    free(t.p);
    return NULL;
  }
  *len = t.len;
  return t.p;
}

/* Parse text and check its version; NULL (logged) when it is not ours. */
static json_t *load(const char *text, size_t len, const char *what)
{
  json_error_t jerr;
  json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  const char *v = json_string_value(json_object_get(doc, "kvvm_worker"));
  char *end = NULL;
  long major = v ? strtol(v, &end, 10) : -1;
  if (!json_is_object(doc))
    KVVM_ERR("the pass worker's %s is not a JSON object (%s, at byte %d)", what, jerr.text,
             jerr.position);
  else if (!v || end == v || (*end != '.' && *end != '\0'))
    KVVM_ERR("the pass worker's %s has no \"kvvm_worker\" version", what);
  else if (major != KVVM_WORKER_MAJOR)
    KVVM_ERR("the pass worker's %s is in format %s; this kvvm reads only %d.x (kvvmd and its "
             "worker come from different kvvm versions)", what, v, KVVM_WORKER_MAJOR);
  else
    return doc;
  json_decref(doc);
  return NULL;
}

/* Copy a JSON string into a fixed field; false when absent or too long. */
static bool take_text(json_t *o, const char *key, char *buf, size_t cap)
{
  const char *s = json_string_value(json_object_get(o, key));
  if (!s || strlen(s) >= cap)
    return false;
  memcpy(buf, s, strlen(s) + 1);
  return true;
}

static bool take_outcome(json_t *j, struct kvvm_cert_outcome *o)
{
  const char *state = NULL, *err = NULL, *why = NULL;
  int changed, in_place, again;
  json_int_t not_after;
  if (json_unpack(j, "{s:s, s:s, s:b, s:b, s:b, s:I, s:s}", "state", &state, "err", &err,
                  "changed", &changed, "in_place", &in_place, "hook_again", &again,
                  "not_after", &not_after, "why", &why) != 0)
    return false;
  int st = name_index(state_names, 3, state), e = name_index(err_names, KVVM_E__MAX, err);
  if (st < 0 || e < 0 || !take_text(j, "version", o->version, sizeof o->version) ||
      !take_text(j, "thumbprint", o->thumbprint, sizeof o->thumbprint))
    return false;
  o->state = (enum kvvm_cert_state)st;
  o->err = (enum kvvm_err)e;
  o->changed = changed;
  o->in_place = in_place;
  o->hook_again = again;
  o->not_after = (time_t)not_after;
  kvvm_outcome_say(o, "%s", why);
  kvvm_outcome_note(o, json_string_value(json_object_get(j, "note")));
  o->installed_at = (time_t)json_integer_value(json_object_get(j, "installed_at"));
  o->checked_at = (time_t)json_integer_value(json_object_get(j, "checked_at"));
  return true;
}

/* n outcomes from arr into a new array; NULL when any is malformed or the count differs. */
static struct kvvm_cert_outcome *take_outcomes(json_t *arr, size_t n)
{
  if (!json_is_array(arr) || json_array_size(arr) != n)
    return NULL;
  struct kvvm_cert_outcome *out = kvvm_xcalloc(n ? n : 1, sizeof *out);
  for (size_t i = 0; i < n; i++)
    if (!take_outcome(json_array_get(arr, i), &out[i])) {
      kvvm_outcomes_clear(out, n);
      free(out);
      return NULL;
    }
  return out;
}

static bool take_due(json_t *arr, struct kvvm_worker_req *r)
{
  size_t i;
  json_t *v;
  if (!json_is_array(arr))
    return false;
  r->due = kvvm_xcalloc(r->n ? r->n : 1, sizeof *r->due);
  json_array_foreach(arr, i, v) {
    json_int_t k = json_integer_value(v);
    if (!json_is_integer(v) || k < 0 || (size_t)k >= r->n)
      return false;
    r->due[k] = true;
  }
  return true;
}

static bool take_req(json_t *doc, struct kvvm_worker_req *r)
{
  const char *job, *root;
  json_int_t seq, n;
  int reconcile;
  json_t *due, *out;
  if (json_unpack(doc, "{s:s, s:s, s:I, s:b, s:I, s:o, s:o}", "job", &job, "root", &root,
                  "seq", &seq, "reconcile_grants", &reconcile, "certificates", &n, "due", &due,
                  "outcomes", &out) != 0 || n < 0 || json_array_size(out) != (size_t)n)
    return false;
  int j = name_index(job_names, 2, job);
  const char *fp = json_string_value(json_object_get(doc, "settings_fp"));
  r->job = (enum kvvm_worker_job)j;
  r->root = kvvm_xstrdup(root);
  r->seq = (long)seq;
  r->settings_fp = kvvm_xstrdup(fp);
  r->reconcile = reconcile;
  r->n = (size_t)n;
  return j >= 0 && take_due(due, r) && (r->out = take_outcomes(out, r->n)) != NULL;
}

enum kvvm_err kvvm_worker_req_decode(const char *text, size_t len, struct kvvm_worker_req *r)
{
  memset(r, 0, sizeof *r);
  json_t *doc = load(text, len, "request");
  if (!doc)
    return KVVM_E_INTERNAL;
  bool ok = take_req(doc, r);
  json_decref(doc);
  if (ok)
    return KVVM_OK;
  KVVM_ERR("the pass worker's request is malformed (a member missing, mistyped or too long)");
  kvvm_worker_req_clear(r);
  return KVVM_E_INTERNAL;
}

void kvvm_worker_req_clear(struct kvvm_worker_req *r)
{
  if (r->out)
    kvvm_outcomes_clear(r->out, r->n);
  free(r->out);
  free(r->due);
  free(r->root);
  free(r->settings_fp);
  memset(r, 0, sizeof *r);
}

static bool take_ans(json_t *doc, size_t n, struct kvvm_worker_ans *a)
{
  json_int_t changed;
  int stopping;
  json_t *out;
  if (json_unpack(doc, "{s:I, s:b, s:o}", "changed", &changed, "stopping", &stopping,
                  "outcomes", &out) != 0 || changed < 0 ||
      !take_text(doc, "pass_hook_error", a->pass_hook_error, sizeof a->pass_hook_error))
    return false;
  a->changed = (size_t)changed;
  a->stopping = stopping;
  a->n = n;
  return (a->out = take_outcomes(out, n)) != NULL;
}

enum kvvm_err kvvm_worker_ans_decode(const char *text, size_t len, size_t n,
                                     struct kvvm_worker_ans *a)
{
  memset(a, 0, sizeof *a);
  json_t *doc = load(text, len, "answer");
  if (!doc)
    return KVVM_E_INTERNAL;
  bool ok = take_ans(doc, n, a);
  json_decref(doc);
  if (ok)
    return KVVM_OK;
  KVVM_ERR("the pass worker's answer is malformed (a member missing, mistyped or too long, "
           "or not %zu outcome(s))", n);
  kvvm_worker_ans_clear(a);
  return KVVM_E_INTERNAL;
}

void kvvm_worker_ans_clear(struct kvvm_worker_ans *a)
{
  if (a->out)
    kvvm_outcomes_clear(a->out, a->n);
  free(a->out);
  memset(a, 0, sizeof *a);
}
