/* installed.json: {"format": 1, "certs": {"<url> <store_dir>": record}, "folders": {...},
 * "pass_hook": {...}, "seq": n}. Records are edited in place, so keys this version does not
 * know (written by a newer one) survive a rewrite.
 *
 * In memory a record is either parsed (a JSON object, while it is used) or parked: the
 * string of its compact JSON text. Parsed, a record costs about 2.5 KiB in jansson's pieces;
 * parked, about 600 bytes, so a pass over 1,000 certificates parks each record once its
 * certificate is done (kvvm_installed_park) and holds a few MB less at its peak. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/installed_int.h"
#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"

#define INSTALLED_NAME "installed.json"
#define INSTALLED_MAX (64 * 1024 * 1024)

struct kvvm_installed {
  char *dir;
  json_t *doc;
  int loaded_format;
  bool dirty;
  unsigned long changes, parked_at;  /* changes made; their count at the last park */
  json_t *live;   /* the records parsed since the last park: key -> their parked text */
  char *folders;  /* FOLDERS_NAME's content as last read or written ("{}" when none) */
  int hooks;      /* installed_hooks_memo: store.c's answer this pass; -1: not asked yet */
};

static void note_change(struct kvvm_installed *st)
{
  st->dirty = true;
  st->changes++;
}

/* certs[key] = the compact text of its record, when it is a parsed one: the text it was
 * parsed from (was) when nothing changed since, so an unchanged pass dumps nothing. */
static void park_one(json_t *certs, const char *key, json_t *was)
{
  json_t *rec = json_object_get(certs, key);
  if (!json_is_object(rec))
    return;
  if (json_is_string(was)) {
    json_object_set(certs, key, was);
    return;
  }
  char *text = json_dumps(rec, JSON_COMPACT);
  if (text)
    json_object_set_new(certs, key, json_string(text));
  free(text);
}

void kvvm_installed_park(struct kvvm_installed *st)
{
  json_t *certs = json_object_get(st->doc, "certs"), *was;
  const char *key;
  bool same = st->changes == st->parked_at;
  json_object_foreach(st->live, key, was)
    park_one(certs, key, same ? was : NULL);
  json_object_clear(st->live);
  st->parked_at = st->changes;
}

/* A parked record parsed back and put in its place (the same object if it is parsed);
 * NULL when it is neither. Replacing the value of an existing key leaves jansson's
 * iteration over certs intact. */
static json_t *unpark(struct kvvm_installed *st, json_t *certs, const char *key, json_t *rec)
{
  if (!json_is_string(rec))
    return json_is_object(rec) ? rec : NULL;
  json_t *obj = json_loads(json_string_value(rec), 0, NULL);
  if (!json_is_object(obj)) {
    json_decref(obj);
    return NULL;   /* not text this code parked: treated as no record */
  }
  json_object_set(st->live, key, rec);   /* kept: the record's text while nothing changes */
  json_object_set_new(certs, key, obj);
  return obj;
}

json_t *installed_unpark_if(struct kvvm_installed *st, const char *key, json_t *rec,
                            const char *needle)
{
  if (needle && json_is_string(rec) && !strstr(json_string_value(rec), needle))
    return NULL;
  return unpark(st, json_object_get(st->doc, "certs"), key, rec);
}

json_t *installed_certs(struct kvvm_installed *st)
{
  json_t *certs = json_object_get(st->doc, "certs"), *rec;
  const char *key;
  json_object_foreach(certs, key, rec)
    unpark(st, certs, key, rec);
  return certs;
}

/* Every record parked, as a file just loaded is. A record that is not an object is no
 * record in any version's format; dropped (a string would read as parked text). */
static void park_all(struct kvvm_installed *st)
{
  json_t *certs = json_object_get(st->doc, "certs"), *rec;
  const char *key;
  void *tmp;
  json_object_foreach_safe(certs, tmp, key, rec) {
    if (json_is_object(rec)) {
      park_one(certs, key, NULL);
      continue;
    }
    KVVM_WARN("installed.json: the record \"%s\" is not an object; dropped", key);
    json_object_del(certs, key);
    note_change(st);
  }
  st->parked_at = st->changes;
}

static void move_aside(const char *path)
{
  char *bad = kvvm_xasprintf("%s.corrupt", path);
  if (rename(path, bad) != 0)
    KVVM_WARN("%s: cannot move aside: %s", path, strerror(errno));
  else
    KVVM_WARN("%s was not valid; kept as %s and started afresh (certificates are reinstalled "
              "once)", path, bad);
  free(bad);
}

/* The folder ACL entries kvvm added ("folders") are also kept in a file of their own: with
 * installed.json lost or unreadable, kvvm would otherwise not know them, and a grantee
 * removed from the settings would keep traverse on every folder above the store. */
#define FOLDERS_NAME "folder-acls.json"

static char *folders_text(const json_t *folders)
{
  return json_is_object(folders) && json_object_size(folders)
             ? json_dumps(folders, JSON_COMPACT | JSON_SORT_KEYS) : kvvm_xstrdup("{}");
}

/* The side file's entries, into a document that lost its own (a fresh or a moved-aside
 * installed.json); st->folders is what the file holds. */
static void load_folders(struct kvvm_installed *st)
{
  char *path = kvvm_path_join(st->dir, FOLDERS_NAME), *text = NULL;
  json_t *side = NULL;
  if (kvvm_file_read(path, INSTALLED_MAX, &text, NULL) == KVVM_OK)
    side = json_loads(text, 0, NULL);
  st->folders = folders_text(side);
  if (json_object_size(side) && !json_object_get(st->doc, "folders")) {
    KVVM_WARN("%s: the folder ACL entries kvvm added are known again from %s", st->dir,
              FOLDERS_NAME);
    json_object_set(st->doc, "folders", side);
    note_change(st);
  }
  json_decref(side);
  free(text);
  free(path);
}

/* Rewritten whenever the entries changed since it was last read or written. */
static enum kvvm_err save_folders(struct kvvm_installed *st)
{
  char *text = folders_text(json_object_get(st->doc, "folders"));
  enum kvvm_err rc = KVVM_OK;
  if (strcmp(text, st->folders) != 0) {
    char *path = kvvm_path_join(st->dir, FOLDERS_NAME);
    rc = kvvm_file_write_atomic(path, text, strlen(text), 0600);
    free(path);
  }
  if (rc == KVVM_OK) {
    free(st->folders);
    st->folders = text;
  } else {
    free(text);
  }
  return rc == KVVM_OK ? KVVM_OK : KVVM_E_STATE;
}

enum kvvm_err kvvm_installed_load(const char *dir, struct kvvm_installed **out)
{
  char *path = kvvm_path_join(dir, INSTALLED_NAME), *text = NULL;
  struct kvvm_installed *st = kvvm_xcalloc(1, sizeof *st);
  st->dir = kvvm_xstrdup(dir);
  st->hooks = -1;
  enum kvvm_err rc = kvvm_file_read(path, INSTALLED_MAX, &text, NULL);
  if (rc == KVVM_OK) {
    json_error_t jerr;
    st->doc = json_loads(text, 0, &jerr);
    if (!json_is_object(st->doc) || !json_is_object(json_object_get(st->doc, "certs"))) {
      json_decref(st->doc);
      st->doc = NULL;
      move_aside(path);
    }
  } else if (rc != KVVM_E_NOENT) {
    move_aside(path);
  }
  if (!st->doc)
    st->doc = json_pack("{s:{}}", "certs");
  load_folders(st);
  st->live = json_object();
  park_all(st);
  st->loaded_format = (int)json_integer_value(json_object_get(st->doc, "format"));
  free(text);
  free(path);
  *out = st;
  return KVVM_OK;
}

/* installed.json is streamed to the file through a small buffer: built in memory first it
 * would cost its whole size (1.4 MB for 1,000 certificates) at the peak of a pass. */
struct sink {
  struct kvvm_wfile *f;
  int err;
  size_t used;
  char buf[32768];
};

static int sink_put(const char *p, size_t n, void *ctx)
{
  struct sink *k = ctx;
  if (k->used + n > sizeof k->buf) {
    if (kvvm_wfile_write(k->f, k->buf, k->used) != 0)
      return k->err = -1;
    k->used = 0;
  }
  if (n > sizeof k->buf)
    return kvvm_wfile_write(k->f, p, n) != 0 ? (k->err = -1) : 0;
  memcpy(k->buf + k->used, p, n);
  k->used += n;
  return 0;
}

/* Any JSON value, compact, into the sink; -1 on failure. */
static int put_json(struct sink *k, const json_t *v)
{
  return json_dump_callback(v, sink_put, k, JSON_COMPACT | JSON_ENCODE_ANY) != 0 ? -1 : 0;
}

static int put_str(struct sink *k, const char *s) { return sink_put(s, strlen(s), k); }

/* lead, then "key": with the key quoted and escaped by jansson. */
static int put_key(struct sink *k, const char *key, const char *lead)
{
  json_t *name = json_string(key);
  int rc = put_str(k, lead) || put_json(k, name) || put_str(k, ":") ? -1 : 0;
  json_decref(name);
  return rc;
}

/* The records, one a line: a parked one's text as it is, a parsed one dumped. */
static int put_certs(struct sink *k, json_t *certs)
{
  const char *key;
  json_t *rec;
  bool first = true;
  if (put_str(k, "\"certs\":{"))
    return -1;
  json_object_foreach(certs, key, rec) {
    if (put_key(k, key, first ? "\n" : ",\n") ||
        (json_is_string(rec) ? put_str(k, json_string_value(rec)) : put_json(k, rec)))
      return -1;
    first = false;
  }
  return put_str(k, "}");
}

/* The whole document, streamed: the other top-level keys first, then the records. */
static int write_doc(struct kvvm_wfile *f, void *doc)
{
  struct sink *k = kvvm_xcalloc(1, sizeof *k);
  k->f = f;
  const char *key;
  json_t *v;
  int rc = put_str(k, "{");
  json_object_foreach(doc, key, v)
    if (rc == 0 && strcmp(key, "certs") != 0)
      rc = put_key(k, key, "\n") || put_json(k, v) || put_str(k, ",") ? -1 : 0;
  if (rc == 0)
    rc = put_certs(k, json_object_get(doc, "certs")) || put_str(k, "\n}\n") ? -1 : 0;
  rc = rc || k->err || kvvm_wfile_write(f, k->buf, k->used) != 0 ? -1 : 0;
  free(k);
  return rc;
}

enum kvvm_err kvvm_installed_save(struct kvvm_installed *st)
{
  st->hooks = -1;   /* a save ends a pass (its commit) or a hook run: ask again in the next */
  if (!st->dirty)
    return KVVM_OK;
  /* Never lower the format number a newer version wrote: its readers rely on it. */
  if (st->loaded_format < KVVM_INSTALLED_FORMAT)
    json_object_set_new(st->doc, "format", json_integer(KVVM_INSTALLED_FORMAT));
  if (kvvm_dir_ensure(st->dir, 0700) != KVVM_OK)
    return KVVM_E_STATE;
  char *path = kvvm_path_join(st->dir, INSTALLED_NAME);
  enum kvvm_err rc = kvvm_file_write_atomic_with(path, 0600, write_doc, st->doc);
  free(path);
  if (rc != KVVM_OK || save_folders(st) != KVVM_OK)
    return KVVM_E_STATE;
  st->dirty = false;
  return KVVM_OK;
}

void kvvm_installed_free(struct kvvm_installed *st)
{
  if (!st)
    return;
  json_decref(st->doc);
  json_decref(st->live);
  free(st->folders);
  free(st->dir);
  free(st);
}

int kvvm_installed_format(const struct kvvm_installed *st) { return st->loaded_format; }

json_t *installed_root(struct kvvm_installed *st) { return st->doc; }

const char *installed_str(const json_t *obj, const char *key)
{
  return json_string_value(json_object_get(obj, key));
}

void installed_set(struct kvvm_installed *st, json_t *obj, const char *key, json_t *val)
{
  json_t *old = json_object_get(obj, key);
  if (!val) {
    if (old) {
      json_object_del(obj, key);
      note_change(st);
    }
    return;
  }
  if (old && json_equal(old, val)) {
    json_decref(val);
    return;
  }
  json_object_set_new(obj, key, val);
  note_change(st);
}

void installed_set_str(struct kvvm_installed *st, json_t *obj, const char *key, const char *s)
{
  installed_set(st, obj, key, s ? json_string(s) : NULL);
}

void installed_changed(struct kvvm_installed *st) { note_change(st); }

json_t *installed_obj(struct kvvm_installed *st, json_t *obj, const char *key)
{
  json_t *o = json_object_get(obj, key);
  if (!json_is_object(o)) {
    o = json_object();
    json_object_set_new(obj, key, o);
    note_change(st);
  }
  return o;
}

json_t *installed_cert(struct kvvm_installed *st, const char *url, const char *dir, bool create)
{
  json_t *certs = create ? installed_obj(st, st->doc, "certs") :
                           json_object_get(st->doc, "certs");
  char *key = kvvm_xasprintf("%s %s", url, dir);
  json_t *rec = unpark(st, certs, key, json_object_get(certs, key));
  if (!rec && create) {
    rec = json_pack("{s:s, s:s}", "url", url, "store_dir", dir);
    json_object_set_new(certs, key, rec);
    json_object_set_new(st->live, key, json_null());
    note_change(st);
  }
  free(key);
  return rec;
}

json_int_t installed_next_seq(struct kvvm_installed *st)
{
  json_int_t n = json_integer_value(json_object_get(st->doc, "seq")) + 1;
  installed_set(st, st->doc, "seq", json_integer(n));
  return n;
}

static void view(const json_t *rec, struct kvvm_installed_cert *out)
{
  memset(out, 0, sizeof *out);
  out->url = installed_str(rec, "url");
  out->store_dir = installed_str(rec, "store_dir");
  out->version = installed_str(rec, "version");
  out->thumbprint = installed_str(rec, "thumbprint");
  out->file = installed_str(rec, "file");
  out->link = installed_str(rec, "link");
  out->pfx = installed_str(rec, "pfx");
  out->files = installed_str(rec, "files_link");
  out->layout = installed_str(rec, "layout");
  out->grants = installed_str(rec, "grants");
  out->key_provider = installed_str(rec, "key_provider");
  out->readers = installed_str(rec, "readers") ? installed_str(rec, "readers") : out->grants;
  out->note = installed_str(rec, "note");
  out->last_error = installed_str(rec, "last_error");
  out->hook_error = installed_str(rec, "hook_error");
  out->versions_note = installed_str(rec, "versions_note");
  out->hook_due = json_is_object(json_object_get(rec, "hook_due"));
  out->installed_at = (time_t)json_integer_value(json_object_get(rec, "installed_at"));
  out->not_after = (time_t)json_integer_value(json_object_get(rec, "not_after"));
}

bool kvvm_installed_get(struct kvvm_installed *st, const char *url, const char *store_dir,
                        struct kvvm_installed_cert *out)
{
  json_t *rec = installed_cert(st, url, store_dir, false);
  if (!rec)
    return false;
  view(rec, out);
  return true;
}

size_t kvvm_installed_list(struct kvvm_installed *st, struct kvvm_installed_cert **out)
{
  json_t *certs = installed_certs(st), *rec;
  const char *key;
  size_t n = 0;
  *out = kvvm_xcalloc(json_object_size(certs) + 1, sizeof **out);
  json_object_foreach(certs, key, rec)
    if (json_is_object(rec) && installed_str(rec, "url") && installed_str(rec, "store_dir"))
      view(rec, &(*out)[n++]);
  return n;
}

void kvvm_installed_set_error(struct kvvm_installed *st, const char *url, const char *store_dir,
                              const char *why)
{
  json_t *rec;
  if (why) {
    rec = installed_cert(st, url, store_dir, true);
  } else {   /* clearing: a parked record without one is not parsed for nothing */
    char *key = kvvm_xasprintf("%s %s", url, store_dir);
    rec = installed_unpark_if(st, key, json_object_get(json_object_get(st->doc, "certs"), key),
                              "\"last_error\":");
    free(key);
  }
  if (rec)
    installed_set_str(st, rec, "last_error", why);
}

const char *kvvm_installed_hook_error(struct kvvm_installed *st, const char *url,
                                      const char *store_dir, bool *due)
{
  char *key = kvvm_xasprintf("%s %s", url, store_dir);
  json_t *rec = installed_unpark_if(st, key, json_object_get(json_object_get(st->doc, "certs"),
                                                             key), "\"hook_error\":");
  free(key);
  *due = json_is_object(json_object_get(rec, "hook_due"));
  return installed_str(rec, "hook_error");
}

const char *kvvm_installed_pass_hook_error(const struct kvvm_installed *st)
{
  return installed_str(json_object_get(st->doc, "pass_hook"), "error");
}

int *installed_hooks_memo(struct kvvm_installed *st) { return &st->hooks; }
