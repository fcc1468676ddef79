/* state.json: a JSON object of which this version reads the keys it knows and keeps the rest. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/state.h"

#define STATE_NAME "state.json"
#define STATE_MAX (16 * 1024 * 1024)

struct kvvm_state {
  json_t *doc;
  int loaded_format;
};

void kvvm_state_free(struct kvvm_state *st)
{
  if (!st)
    return;
  json_decref(st->doc);
  free(st);
}

static void move_aside(const char *path)
{
  char *bad = kvvm_xasprintf("%s.corrupt", path);
  if (rename(path, bad) != 0)
    KVVM_WARN("%s: cannot move aside: %s", path, strerror(errno));
  else
    KVVM_WARN("%s was not valid JSON; kept as %s and started afresh", path, bad);
  free(bad);
}

enum kvvm_err kvvm_state_load(const char *dir, struct kvvm_state **out)
{
  char *path = kvvm_path_join(dir, STATE_NAME), *text = NULL;
  struct kvvm_state *st = kvvm_xcalloc(1, sizeof(*st));
  enum kvvm_err rc = kvvm_file_read(path, STATE_MAX, &text, NULL);
  if (rc == KVVM_OK) {
    json_error_t jerr;
    st->doc = json_loads(text, 0, &jerr);
    if (!json_is_object(st->doc)) {
      json_decref(st->doc);
      st->doc = NULL;
      move_aside(path);
    }
  } else if (rc != KVVM_E_NOENT) {
    move_aside(path);
  }
  if (!st->doc)
    st->doc = json_object();
  st->loaded_format = (int)json_integer_value(json_object_get(st->doc, "format"));
  free(text);
  free(path);
  *out = st;
  return KVVM_OK;
}

enum kvvm_err kvvm_state_save(const char *dir, struct kvvm_state *st)
{
  /* Never lower the format number a newer version wrote: its readers rely on it. */
  if (st->loaded_format < KVVM_STATE_FORMAT)
    json_object_set_new(st->doc, "format", json_integer(KVVM_STATE_FORMAT));
  enum kvvm_err rc = kvvm_dir_ensure(dir, 0700);
  if (rc != KVVM_OK)
    return KVVM_E_STATE;
  char *text = json_dumps(st->doc, JSON_INDENT(1) | JSON_SORT_KEYS);
  char *path = kvvm_path_join(dir, STATE_NAME);
  rc = kvvm_file_write_atomic(path, text, strlen(text), 0600);
  free(path);
  free(text);
  return rc == KVVM_OK ? KVVM_OK : KVVM_E_STATE;
}

const char *kvvm_state_get_str(const struct kvvm_state *st, const char *key)
{
  return json_string_value(json_object_get(st->doc, key));
}

long kvvm_state_get_int(const struct kvvm_state *st, const char *key, long dflt)
{
  json_t *v = json_object_get(st->doc, key);
  return json_is_integer(v) ? (long)json_integer_value(v) : dflt;
}

void kvvm_state_set_str(struct kvvm_state *st, const char *key, const char *val)
{
  json_object_set_new(st->doc, key, json_string(val));
}

void kvvm_state_set_int(struct kvvm_state *st, const char *key, long val)
{
  json_object_set_new(st->doc, key, json_integer(val));
}

void kvvm_state_del(struct kvvm_state *st, const char *key) { json_object_del(st->doc, key); }

int kvvm_state_format(const struct kvvm_state *st) { return st->loaded_format; }

enum kvvm_err kvvm_state_remove_all(const char *dir)
{
  static const char *const files[] = {"state.json", "state.json.corrupt", "installed.json",
                                      "installed.json.corrupt", "folder-acls.json", "kvvmd.env", "kvvmd.pid",
                                      "kvvmd.lock", "kvvmd-worker.lock", NULL};
  enum kvvm_err rc = KVVM_OK;
  for (const char *const *f = files; *f; f++) {
    char *path = kvvm_path_join(dir, *f);
    if (kvvm_file_remove(path) != KVVM_OK)
      rc = KVVM_E_STATE;
    free(path);
  }
  kvvm_dir_sweep_prefix(dir, KVVM_TEMP_PREFIX);
  if (kvvm_dir_remove(dir) != KVVM_OK)
    KVVM_INFO("%s kept: not empty, or not removable", dir);
  return rc;
}
