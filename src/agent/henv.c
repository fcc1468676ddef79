/* HandlerEnvironment.json: found beside the binaries or one folder up (bin/ sits one level
 * below the package root), via the agent's variable, or in the current folder (the package
 * folder: the agent runs every command there). Its folder is the package root. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/clock.h"
#include "kvvm/fileio.h"
#include "kvvm/henv.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"

#define HENV_NAME "HandlerEnvironment.json"
#define HENV_MAX (64 * 1024)
#define HENV_TRIES 5
#define HENV_FIRST_PAUSE_MS 100

void kvvm_henv_free(struct kvvm_henv *h)
{
  if (!h)
    return;
  free(h->root);
  free(h->log_dir);
  free(h->config_dir);
  free(h->status_dir);
  free(h->heartbeat_file);
  free(h);
}

/* A required folder key must be an absolute path of this system (Windows: "C:\...", with
 * backslashes as the agent writes them). */
static enum kvvm_err take_path(json_t *obj, const char *key, bool required, char **out,
                               char *why, size_t n)
{
  json_t *v = json_object_get(obj, key);
  const char *s = json_string_value(v);
  if (!s || !kvvm_path_is_absolute(s)) {
    if (!required && (!v || json_is_null(v)))
      return KVVM_OK;
    snprintf(why, n, "handlerEnvironment.%s must be an absolute path", key);
    return KVVM_E_HENV;
  }
  *out = kvvm_xstrdup(s);
  return KVVM_OK;
}

/* `version` is not read: the agent writes a number (1.0), Azure Arc a string ("1.0"), and
 * nothing kvvm needs depends on it. */
static enum kvvm_err parse(const char *text, const char *root, struct kvvm_henv **out,
                           char *why, size_t n)
{
  enum kvvm_err rc = KVVM_E_HENV;
  json_error_t jerr;
  struct kvvm_henv *h = kvvm_xcalloc(1, sizeof(*h));
  json_t *doc = json_loads(text, 0, &jerr);
  *out = NULL;
  if (!doc) {
    snprintf(why, n, "not JSON: %s (line %d)", jerr.text, jerr.line);
    goto out;
  }
  /* The agent writes an array of one; tolerate a bare object as some tools do. */
  json_t *first = json_is_array(doc) ? json_array_get(doc, 0) : doc;
  json_t *env = json_object_get(first, "handlerEnvironment");
  if (!json_is_object(env)) {
    snprintf(why, n, "no handlerEnvironment object");
    goto out;
  }
  if (take_path(env, "logFolder", true, &h->log_dir, why, n) ||
      take_path(env, "configFolder", true, &h->config_dir, why, n) ||
      take_path(env, "statusFolder", true, &h->status_dir, why, n) ||
      take_path(env, "heartbeatFile", false, &h->heartbeat_file, why, n))
    goto out;
  h->root = kvvm_xstrdup(root);
  *out = h;
  h = NULL;
  rc = KVVM_OK;
out:
  json_decref(doc);
  kvvm_henv_free(h);
  return rc;
}

enum kvvm_err kvvm_henv_parse(const char *text, const char *root, struct kvvm_henv **out)
{
  char why[256];
  enum kvvm_err rc = parse(text, root, out, why, sizeof why);
  if (rc != KVVM_OK)
    KVVM_ERR(HENV_NAME ": %s", why);
  return rc;
}

/* KVVM_E_NOENT when dir has no such file; other failures say why (not logged: the caller
 * may try again). */
static enum kvvm_err try_dir(const char *dir, struct kvvm_henv **out, char *why, size_t n)
{
  char *path = kvvm_path_join(dir, HENV_NAME), *text = NULL;
  enum kvvm_err rc = kvvm_file_read(path, HENV_MAX, &text, NULL);
  if (rc == KVVM_OK) {
    /* Every path handed on must be absolute: the daemon does not share our cwd. */
    char *abs = kvvm_path_absolute(dir);
    char detail[200];
    rc = parse(text, abs ? abs : dir, out, detail, sizeof detail);
    if (rc != KVVM_OK)
      snprintf(why, n, "%s: %s", path, detail);
    free(abs);
    KVVM_DEBUG("read %s", path);
  } else if (rc != KVVM_E_NOENT) {
    snprintf(why, n, "%s cannot be read", path);
    rc = KVVM_E_HENV;
  }
  free(text);
  free(path);
  return rc;
}

/* The first folder that has the file decides. */
static enum kvvm_err find_once(char *const *dirs, size_t n, struct kvvm_henv **out, char *why,
                               size_t whylen)
{
  enum kvvm_err rc = KVVM_E_NOENT;
  for (size_t i = 0; i < n && rc == KVVM_E_NOENT; i++)
    rc = try_dir(dirs[i], out, why, whylen);
  if (rc == KVVM_E_NOENT)
    snprintf(why, whylen, HENV_NAME " not found (looked in the agent's extension path, beside "
             "and above the executable, and the current folder)");
  return rc;
}

/* The agent may be writing the file as a command starts (missing, or cut short): read it
 * again after a pause, doubling, HENV_TRIES times in all (1.5 s), and report the last
 * failure only. */
static enum kvvm_err find(char *const *dirs, size_t n, struct kvvm_henv **out)
{
  char why[512];
  int64_t pause = HENV_FIRST_PAUSE_MS;
  enum kvvm_err rc = KVVM_E_HENV;
  for (int attempt = 1; attempt <= HENV_TRIES; attempt++, pause *= 2) {
    if ((rc = find_once(dirs, n, out, why, sizeof why)) == KVVM_OK)
      return KVVM_OK;
    if (attempt < HENV_TRIES)
      kvvm_clock_sleep_ms(pause);
  }
  KVVM_ERR("%s (%d attempts)", why, HENV_TRIES);
  return KVVM_E_HENV;
}

enum kvvm_err kvvm_henv_load(const char *exe, struct kvvm_henv **out)
{
  char *dirs[4] = {0};
  size_t n = 0;
  const char *agent = getenv("AZURE_GUEST_AGENT_EXTENSION_PATH");
  if (kvvm_path_is_absolute(agent))
    dirs[n++] = kvvm_xstrdup(agent);
  if (kvvm_path_is_absolute(exe)) {
    dirs[n] = kvvm_path_dirname(exe);
    dirs[n + 1] = kvvm_path_dirname(dirs[n]);
    n += 2;
  }
  dirs[n++] = kvvm_xstrdup(".");
  enum kvvm_err rc = find(dirs, n, out);
  for (size_t i = 0; i < n; i++)
    free(dirs[i]);
  return rc;
}
