/* HandlerEnvironment.json: found beside the binaries or one folder up (bin/ sits one level
 * below the package root), via the agent's variable, or in the current folder. */
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/fileio.h"
#include "kvvm/henv.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"

#define HENV_NAME "HandlerEnvironment.json"
#define HENV_MAX (64 * 1024)

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

/* A required folder key must be an absolute path. */
static enum kvvm_err take_path(json_t *obj, const char *key, bool required, char **out)
{
  json_t *v = json_object_get(obj, key);
  const char *s = json_string_value(v);
  if (!s || s[0] != '/') {
    if (!required && (!v || json_is_null(v)))
      return KVVM_OK;
    KVVM_ERR(HENV_NAME ": handlerEnvironment.%s must be an absolute path", key);
    return KVVM_E_HENV;
  }
  *out = kvvm_xstrdup(s);
  return KVVM_OK;
}

enum kvvm_err kvvm_henv_parse(const char *text, const char *root, struct kvvm_henv **out)
{
  enum kvvm_err rc = KVVM_E_HENV;
  json_error_t jerr;
  struct kvvm_henv *h = kvvm_xcalloc(1, sizeof(*h));
  json_t *doc = json_loads(text, 0, &jerr);
  *out = NULL;
  if (!doc) {
    KVVM_ERR(HENV_NAME ": not JSON: %s (line %d)", jerr.text, jerr.line);
    goto out;
  }
  /* The agent writes an array of one; tolerate a bare object as some tools do. */
  json_t *first = json_is_array(doc) ? json_array_get(doc, 0) : doc;
  json_t *env = json_object_get(first, "handlerEnvironment");
  if (!json_is_object(env)) {
    KVVM_ERR(HENV_NAME ": no handlerEnvironment object");
    goto out;
  }
  if (take_path(env, "logFolder", true, &h->log_dir) || take_path(env, "configFolder", true, &h->config_dir) ||
      take_path(env, "statusFolder", true, &h->status_dir) ||
      take_path(env, "heartbeatFile", false, &h->heartbeat_file))
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

static enum kvvm_err try_dir(const char *dir, struct kvvm_henv **out)
{
  char *path = kvvm_path_join(dir, HENV_NAME), *text = NULL;
  enum kvvm_err rc = kvvm_file_read(path, HENV_MAX, &text, NULL);
  if (rc == KVVM_OK) {
    /* Every path handed on must be absolute: the daemon does not share our cwd. */
    char *abs = realpath(dir, NULL);
    rc = kvvm_henv_parse(text, abs ? abs : dir, out);
    free(abs);
    KVVM_DEBUG("read %s", path);
  }
  free(text);
  free(path);
  return rc;
}

enum kvvm_err kvvm_henv_load(const char *exe, struct kvvm_henv **out)
{
  char *dirs[4] = {0};
  size_t n = 0;
  const char *agent = getenv("AZURE_GUEST_AGENT_EXTENSION_PATH");
  if (agent && agent[0] == '/')
    dirs[n++] = kvvm_xstrdup(agent);
  if (exe && exe[0] == '/') {
    dirs[n] = kvvm_path_dirname(exe);
    dirs[n + 1] = kvvm_path_dirname(dirs[n]);
    n += 2;
  }
  dirs[n++] = kvvm_xstrdup(".");
  enum kvvm_err rc = KVVM_E_NOENT;
  for (size_t i = 0; i < n && rc == KVVM_E_NOENT; i++)
    rc = try_dir(dirs[i], out);
  if (rc == KVVM_E_NOENT) {
    KVVM_ERR(HENV_NAME " not found (looked in the agent's extension path, beside and above "
             "the executable, and the current folder)");
    rc = KVVM_E_HENV;
  }
  for (size_t i = 0; i < n; i++)
    free(dirs[i]);
  return rc;
}
