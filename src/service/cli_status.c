/* kvvm status: what installed.json records per certificate and whether kvvmd runs, as a
 * table for people or JSON for scripts. Read-only: it never asks kvvmd anything, so it
 * answers while a pass runs or when kvvmd is down. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/cli.h"
#include "kvvm/installed.h"
#include "kvvm/paths.h"
#include "kvvm/service.h"
#include "kvvm/state.h"
#include "kvvm/version.h"

static const char status_help[] =
    "usage: kvvm status [--json]\n"
    "Show kvvmd (running, pid, executable), the settings sequence it serves, and every\n"
    "certificate kvvm has observed (installed.json): stable path, version, thumbprint,\n"
    "expiry, last success, last error. Certificates the served settings no longer name\n"
    "are marked \"not observed\" (their files stay; kvvm no longer polls them).\n"
    "--json prints the same as one JSON object.\n"
    "Exit status: 0 kvvmd runs and no observed certificate has an error; 1 one has an\n"
    "error; 2 usage; 3 kvvmd does not run.\n";

struct view {
  struct kvvm_daemon d;
  struct kvvm_state *st;
  struct kvvm_installed *inst;
  struct kvvm_installed_cert *certs;
  size_t n;
  struct kvvm_config *cfg;  /* the settings kvvmd serves; NULL: unknown (e.g. kvvm run) */
};

static void view_load(struct view *v)
{
  memset(v, 0, sizeof(*v));
  kvvm_service_query(&v->d);
  kvvm_state_load(kvvm_paths_state_dir(), &v->st);
  if (kvvm_installed_load(kvvm_paths_state_dir(), &v->inst) == KVVM_OK)
    v->n = kvvm_installed_list(v->inst, &v->certs);
  char why[512];
  v->cfg = kvvm_cli_served_config(why, sizeof(why));
}

/* Without known settings every record counts as observed (kvvm run, or before enable). */
static bool observed(const struct view *v, const struct kvvm_installed_cert *c)
{
  for (size_t i = 0; v->cfg && i < v->cfg->n_certs; i++)
    if (strcmp(v->cfg->certs[i].url, c->url) == 0 &&
        strcmp(v->cfg->certs[i].store_dir, c->store_dir) == 0)
      return true;
  return !v->cfg;
}

static void view_free(struct view *v)
{
  kvvm_config_free(v->cfg);
  free(v->certs);
  kvvm_installed_free(v->inst);
  kvvm_state_free(v->st);
  kvvm_daemon_clear(&v->d);
}

static const char *cert_error(const struct kvvm_installed_cert *c)
{
  return c->last_error ? c->last_error : c->hook_error;
}

static int exit_code(const struct view *v)
{
  if (!v->d.running)
    return KVVM_CLI_NOT_RUNNING;
  for (size_t i = 0; i < v->n; i++)
    if (cert_error(&v->certs[i]) && observed(v, &v->certs[i]))
      return KVVM_CLI_FAIL;
  return KVVM_CLI_OK;
}

static const char *or_dash(const char *s) { return s && *s ? s : "-"; }

static void print_cert(const struct kvvm_installed_cert *c, bool seen, int width)
{
  char exp[32], ok[32];
  kvvm_cli_time(c->not_after, exp, sizeof(exp));
  kvvm_cli_time(c->installed_at, ok, sizeof(ok));
  printf("%-*s  %-32s  %-40s  %-20s  %-20s  %s\n", width, or_dash(c->link), or_dash(c->version),
         or_dash(c->thumbprint), exp, ok, or_dash(cert_error(c)));
  printf("  %s%s\n", c->url, seen ? "" : "  (not observed: no longer in the settings)");
  if (c->key_provider)
    printf("  key: %s; readers: %s\n", c->key_provider, or_dash(c->readers));
  if (c->files)
    printf("  files (%s): %s/\n", or_dash(c->layout), c->files);
  if (c->note)
    printf("  note: %s\n", c->note);
  if (c->versions_note)
    printf("  versions: %s\n", c->versions_note);
}

/* The path column is as wide as the longest path, so the other columns line up. */
static int path_width(const struct view *v)
{
  size_t w = 4;
  for (size_t i = 0; i < v->n; i++) {
    size_t l = strlen(or_dash(v->certs[i].link));
    w = l > w ? l : w;
  }
  return (int)(w < 120 ? w : 120);
}

static void print_table(const struct view *v)
{
  const char *pkg = kvvm_state_get_str(v->st, "package_dir");
  printf("kvvm %s\n", kvvm_version());
  if (v->d.running)
    printf("kvvmd: running, pid %ld, %s\n", v->d.pid, v->d.exe ? v->d.exe : "?");
  else
    printf("kvvmd: not running\n");
  printf("settings: sequence %ld from %s\n", kvvm_state_get_int(v->st, "applied_seq", -1),
         pkg ? pkg : "(none applied)");
  printf("state folder: %s\n\n", kvvm_paths_state_dir());
  if (!v->n) {
    printf("no certificate observed yet\n");
    return;
  }
  int width = path_width(v);
  printf("%-*s  %-32s  %-40s  %-20s  %-20s  %s\n", width, "PATH", "VERSION", "THUMBPRINT",
         "EXPIRES", "LAST SUCCESS", "LAST ERROR");
  for (size_t i = 0; i < v->n; i++)
    print_cert(&v->certs[i], observed(v, &v->certs[i]), width);
}

/* JSON null for what is not known, so scripts test one thing. */
static json_t *str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

static json_t *time_or_null(time_t t)
{
  char buf[32];
  struct tm tm;
  if (!t || !gmtime_r(&t, &tm))
    return json_null();
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return json_string(buf);
}

static json_t *cert_json(const struct kvvm_installed_cert *c, bool seen)
{
  json_t *o = json_pack("{s:s, s:s, s:b, s:o, s:o, s:o, s:o, s:o, s:o}", "url", c->url,
                        "store_dir", c->store_dir, "observed", seen, "link",
                        str_or_null(c->link), "file", str_or_null(c->file), "version",
                        str_or_null(c->version), "thumbprint", str_or_null(c->thumbprint),
                        "not_after", time_or_null(c->not_after), "installed_at",
                        time_or_null(c->installed_at));
  json_object_set_new(o, "last_error", str_or_null(c->last_error));
  json_object_set_new(o, "hook_error", str_or_null(c->hook_error));
  json_object_set_new(o, "pfx", str_or_null(c->pfx));
  json_object_set_new(o, "files", str_or_null(c->files));
  json_object_set_new(o, "file_layout", str_or_null(c->layout));
  json_object_set_new(o, "key_provider", str_or_null(c->key_provider));
  json_object_set_new(o, "readers", str_or_null(c->readers));
  json_object_set_new(o, "note", str_or_null(c->note));
  json_object_set_new(o, "versions_note", str_or_null(c->versions_note));
  return o;
}

static void print_json(const struct view *v)
{
  json_t *certs = json_array();
  for (size_t i = 0; i < v->n; i++)
    json_array_append_new(certs, cert_json(&v->certs[i], observed(v, &v->certs[i])));
  json_t *daemon = json_pack("{s:b, s:o, s:o}", "running", v->d.running, "pid",
                             v->d.running ? json_integer(v->d.pid) : json_null(), "exe",
                             str_or_null(v->d.exe));
  json_t *root = json_pack("{s:s, s:o, s:I, s:o, s:s, s:o}", "version", kvvm_version(),
                           "kvvmd", daemon, "settings_seq",
                           (json_int_t)kvvm_state_get_int(v->st, "applied_seq", -1),
                           "package_dir", str_or_null(kvvm_state_get_str(v->st, "package_dir")),
                           "state_dir", kvvm_paths_state_dir(), "certificates", certs);
  char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
  printf("%s\n", text ? text : "{}");
  free(text);
  json_decref(root);
}

int kvvm_cli_status(int argc, char **argv)
{
  if (kvvm_cli_wants_help(argc, argv, status_help))
    return KVVM_CLI_OK;
  bool json = argc == 3 && strcmp(argv[2], "--json") == 0;
  if (argc > 3 || (argc == 3 && !json)) {
    fputs(status_help, stderr);
    return KVVM_CLI_USAGE;
  }
  struct view v;
  view_load(&v);
  if (json)
    print_json(&v);
  else
    print_table(&v);
  int rc = exit_code(&v);
  view_free(&v);
  return rc;
}
