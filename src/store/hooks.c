/* The due-hook queue kept in installed.json: the store marks a certificate's hooks (and the
 * pass hooks) due in the same save that records the install, before anything runs; marks
 * are cleared only after the hooks ran. A crash between the two replays hooks, never loses
 * them. Running a hook is the platform's (hooks_posix.c). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/hooks_int.h"
#include "store/installed_int.h"
#include "kvvm/hooks.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"

#define WHY_MAX 1024

#define REC_VARS 14  /* the variables read from the record (env_of): 9, and fileLayout's 5 */

/* fileLayout's files through the link (the record's "files"; empty without a layout). */
static const char *const split_vars[] = {"KVVM_CERT_FILE", "KVVM_CHAIN_FILE",
                                         "KVVM_FULLCHAIN_FILE", "KVVM_KEY_FILE"};

/* NAME=value into env, unless the due mark already set NAME (marks written by kvvm before
 * 0.1.1 carried every variable). */
static void put_var(char **env, size_t *n, const char *name, const char *value)
{
  size_t len = strlen(name);
  for (size_t i = 0; i < *n; i++)
    if (strncmp(env[i], name, len) == 0 && env[i][len] == '=')
      return;
  env[(*n)++] = kvvm_xasprintf("%s=%s", name, value ? value : "");
}

static char *sans_of(const json_t *rec)
{
  char *sans = kvvm_xstrdup("");
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(rec, "sans"), i, v) {
    char *next = kvvm_xasprintf("%s%s%s", sans, *sans ? " " : "", json_string_value(v));
    free(sans);
    sans = next;
  }
  return sans;
}

/* The hooks' environment: the due mark's variables (the event, what was there before), then
 * the certificate's from its record. */
static char **env_of(const json_t *rec, json_t *due_env)
{
  char **env = kvvm_xcalloc(json_object_size(due_env) + REC_VARS + 1, sizeof *env);
  const char *k;
  json_t *v;
  size_t n = 0;
  json_object_foreach(due_env, k, v)
    if (json_is_string(v) && strncmp(k, "KVVM_", 5) == 0)
      env[n++] = kvvm_xasprintf("%s=%s", k, json_string_value(v));
  char when[32] = "", *sans = sans_of(rec);
  time_t na = (time_t)json_integer_value(json_object_get(rec, "not_after"));
  struct tm tm;
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&na, &tm));
  put_var(env, &n, "KVVM_URL", installed_str(rec, "url"));
  put_var(env, &n, "KVVM_VERSION", installed_str(rec, "version"));
  put_var(env, &n, "KVVM_STORE_DIR", installed_str(rec, "store_dir"));
  put_var(env, &n, "KVVM_FILE", installed_str(rec, "file"));
  put_var(env, &n, "KVVM_LINK", installed_str(rec, "link"));
  put_var(env, &n, "KVVM_PFX", installed_str(rec, "pfx"));
  put_var(env, &n, "KVVM_THUMBPRINT", installed_str(rec, "thumbprint"));
  put_var(env, &n, "KVVM_SANS", sans);
  put_var(env, &n, "KVVM_NOT_AFTER", when);
  put_var(env, &n, "KVVM_FILES_DIR", installed_str(rec, "files_link"));
  for (size_t i = 0; i < sizeof split_vars / sizeof *split_vars; i++)
    put_var(env, &n, split_vars[i], installed_str(json_object_get(rec, "files"), split_vars[i]));
  free(sans);
  return env;
}

/* A record with hooks due: its key in the certs object and its place in the order. */
struct due_rec {
  char *key;
  json_int_t seq;
};

static int seq_cmp(const void *a, const void *b)
{
  json_int_t x = ((const struct due_rec *)a)->seq, y = ((const struct due_rec *)b)->seq;
  return (x > y) - (x < y);
}

static enum kvvm_err run(const struct kvvm_hooks_opts *opts, char **env, char *why)
{
  enum kvvm_err rc = kvvm_hooks_run(opts, (const char *const *)env, why, WHY_MAX);
  kvvm_strv_free(env);
  return rc;
}

/* After a failed run: counts it in obj's "tries" and says whether obj's hooks are due again
 * for the next pass (kvvmd's retry schedule brings one soon: a reload that failed once, say on
 * a busy server, is not left until the next renewal), until KVVM_HOOK_MAX_TRIES runs have
 * failed. obj is a certificate's due mark, or the pass hooks' record. */
static bool due_again(struct kvvm_installed *st, json_t *obj)
{
  json_int_t tries = json_integer_value(json_object_get(obj, "tries")) + 1;
  if (tries >= KVVM_HOOK_MAX_TRIES)
    return false;
  installed_set(st, obj, "tries", json_integer(tries));
  return true;
}

/* The records with hooks due, by key and order; each is parked again once read, so a scan
 * after a first sync (every record due) holds one parsed record at a time. */
static struct due_rec *find_due(struct kvvm_installed *st, size_t *n)
{
  json_t *certs = json_object_get(installed_root(st), "certs"), *rec;
  struct due_rec *due = kvvm_xcalloc(json_object_size(certs) + 1, sizeof *due);
  const char *key;
  *n = 0;
  json_object_foreach(certs, key, rec) {
    json_t *r = installed_unpark_if(st, key, rec, "\"hook_due\":");
    json_t *mark = json_object_get(r, "hook_due");
    if (json_is_object(mark))
      due[(*n)++] = (struct due_rec){kvvm_xstrdup(key),
                                     json_integer_value(json_object_get(mark, "seq"))};
    kvvm_installed_park(st);
  }
  qsort(due, *n, sizeof *due, seq_cmp);
  return due;
}

/* Each certificate's due hooks, oldest due first. Returns how many ran. */
static size_t run_certs(struct kvvm_installed *st, const struct kvvm_hooks_opts *opts,
                        enum kvvm_err *rc)
{
  size_t n;
  struct due_rec *due = find_due(st, &n);
  json_t *certs = json_object_get(installed_root(st), "certs");
  char why[WHY_MAX];
  for (size_t i = 0; i < n; i++) {
    json_t *rec = installed_unpark_if(st, due[i].key, json_object_get(certs, due[i].key), NULL);
    if (!rec) {   /* found a moment ago: cannot be gone, but never run a hook without it */
      free(due[i].key);
      continue;
    }
    json_t *env = json_object_get(json_object_get(rec, "hook_due"), "env");
    KVVM_INFO("hooks for %s (%s)", installed_str(rec, "url"),
              installed_str(env, "KVVM_HOOK_EVENT"));
    enum kvvm_err r = run(opts, env_of(rec, env), why);
    installed_set_str(st, rec, "hook_error", r == KVVM_OK ? NULL : why);
    if (r == KVVM_OK || !due_again(st, json_object_get(rec, "hook_due")))
      installed_set(st, rec, "hook_due", NULL);
    *rc = r == KVVM_OK ? *rc : r;
    kvvm_installed_park(st);
    free(due[i].key);
  }
  free(due);
  return n;
}

static enum kvvm_err run_pass(struct kvvm_installed *st, const struct kvvm_hooks_opts *opts)
{
  json_t *pass = json_object_get(installed_root(st), "pass_hook"), *e;
  char why[WHY_MAX], *links = kvvm_xstrdup("");
  size_t i;
  json_array_foreach(json_object_get(pass, "links"), i, e) {
    char *next = kvvm_xasprintf("%s%s%s", links, i ? "\n" : "", json_string_value(e));
    free(links);
    links = next;
  }
  char **env = kvvm_xcalloc(4, sizeof *env);
  env[0] = kvvm_xstrdup("KVVM_HOOK_EVENT=pass");
  env[1] = kvvm_xasprintf("KVVM_CHANGED_COUNT=%zu", json_array_size(json_object_get(pass,
                                                                                      "links")));
  env[2] = kvvm_xasprintf("KVVM_CHANGED_LINKS=%s", links);
  free(links);
  KVVM_INFO("pass hooks (%zu changed)", json_array_size(json_object_get(pass, "links")));
  enum kvvm_err rc = run(opts, env, why);
  installed_set_str(st, pass, "error", rc == KVVM_OK ? NULL : why);
  if (rc == KVVM_OK || !due_again(st, pass)) {
    installed_set(st, pass, "due", NULL);
    installed_set(st, pass, "links", NULL);
    installed_set(st, pass, "tries", NULL);
  }
  return rc;
}

enum kvvm_err kvvm_hooks_run_due(struct kvvm_installed *st, const struct kvvm_hooks_opts *opts)
{
  enum kvvm_err rc = KVVM_OK;
  if (run_certs(st, opts, &rc) && kvvm_installed_save(st) != KVVM_OK)
    return KVVM_E_STATE;
  if (!json_is_true(json_object_get(json_object_get(installed_root(st), "pass_hook"), "due")))
    return rc;
  enum kvvm_err r = run_pass(st, opts);
  if (kvvm_installed_save(st) != KVVM_OK)
    return KVVM_E_STATE;
  return rc == KVVM_OK ? r : rc;
}

void hook_note(struct hook_notes *n, const char *fmt, ...)
{
  va_list ap;
  if (n->used + 3 >= n->len)
    return;
  if (n->used)
    n->used += (size_t)snprintf(n->s + n->used, n->len - n->used, "; ");
  va_start(ap, fmt);
  int k = vsnprintf(n->s + n->used, n->len - n->used, fmt, ap);
  va_end(ap);
  n->used = k < 0 ? n->used : n->used + (size_t)k < n->len ? n->used + (size_t)k : n->len - 1;
}

int hook_name_cmp(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void hook_out_flush(struct hook_out *o)
{
  if (!o->fill)
    return;
  o->line[o->fill] = '\0';
  if (o->logged < HOOK_OUTPUT_LOG_MAX)
    KVVM_INFO("hook %s: %s", o->name, o->line);
  o->logged += o->fill;
  if (o->logged >= HOOK_OUTPUT_LOG_MAX && o->logged - o->fill < HOOK_OUTPUT_LOG_MAX)
    KVVM_INFO("hook %s: further output not logged", o->name);
  o->fill = 0;
}

void hook_out_feed(struct hook_out *o, const char *buf, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    if (buf[i] == '\n' || o->fill == HOOK_LINE_MAX_LOG)
      hook_out_flush(o);
    if (buf[i] != '\n' && !(o->drop_cr && buf[i] == '\r'))
      o->line[o->fill++] = (unsigned char)buf[i] >= 0x20 && buf[i] != 0x7f ? buf[i] : '?';
  }
}
