/* The <seq>.status file (agent-protocol.md §4, design.md "Status and dependency ordering").
 * The whole file is kept under 128 KiB, the size the agent passes untouched; below that its
 * own cuts never apply, so what we write is what the portal shows. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/status.h"

/* Limits in bytes, each kept strictly below (the agent's are in characters, never fewer). */
#define TOP_TEXT_MAX 1024
#define SUB_TEXT_MAX (10 * 1024)
#define FILE_MAX (128 * 1024)
/* Room kept for the summary entry that stands for entries past the budget. */
#define SUMMARY_ROOM 512
#define READ_MAX (1024 * 1024)
#define CUT_MARK "..."
#define LANG "en-US"
/* The file holds no secrets by contract and its content is published to Azure anyway (the
 * portal shows it); access is controlled by the status folder (root, 0700). 0644 is what
 * the agent's own handlers write, so tools reading the folder see nothing unusual. */
#define STATUS_MODE 0644

static const char *value_word(enum kvvm_status_value v)
{
  switch (v) {
  case KVVM_ST_TRANSITIONING:
    return "transitioning";
  case KVVM_ST_SUCCESS:
    return "success";
  case KVVM_ST_ERROR:
    break;
  }
  /* Anything else is a bug; error is what the agent would make of it too. */
  return "error";
}

/* A substatus is success or error: the agent rejects the whole file for any other value. */
static bool sub_failed(const struct kvvm_substatus *s) { return s->value != KVVM_ST_SUCCESS; }

/* Length of the valid UTF-8 sequence at p, 0 if invalid. As strict as jansson, which
 * refuses the whole string otherwise: no overlong forms, surrogates or code points past
 * U+10FFFF. A NUL ends a sequence early, so reads stay inside the string. */
static size_t utf8_len(const unsigned char *p)
{
  size_t n;
  uint32_t cp, min;
  if (p[0] < 0x80)
    return 1;
  if (p[0] >= 0xc2 && p[0] <= 0xdf)
    n = 2, cp = p[0] & 0x1fu, min = 0x80;
  else if ((p[0] & 0xf0) == 0xe0)
    n = 3, cp = p[0] & 0x0fu, min = 0x800;
  else if (p[0] >= 0xf0 && p[0] <= 0xf4)
    n = 4, cp = p[0] & 0x07u, min = 0x10000;
  else
    return 0;
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    cp = cp << 6 | (p[i] & 0x3fu);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

/* A copy of s (NULL: "") that jansson and the agent take as is: invalid UTF-8 bytes become
 * '?', and a text of max bytes or more is cut at a character boundary to end in "...",
 * max - 1 bytes at most. */
static char *clean_text(const char *s, size_t max)
{
  const unsigned char *p = (const unsigned char *)(s ? s : "");
  size_t len = strlen((const char *)p);
  /* Replacing a bad byte by '?' keeps the length, so whether to cut is known up front. */
  size_t room = len < max ? len : max - sizeof(CUT_MARK);
  char *out = kvvm_xmalloc(len < max ? len + 1 : max);
  size_t n = 0;
  while (*p) {
    size_t k = utf8_len(p);
    if (n + (k ? k : 1) > room)
      break;
    if (k) {
      memcpy(out + n, p, k);
    } else {
      out[n] = '?';
      k = 1;
    }
    n += k;
    p += k;
  }
  if (*p) {
    memcpy(out + n, CUT_MARK, sizeof(CUT_MARK) - 1);
    n += sizeof(CUT_MARK) - 1;
  }
  out[n] = '\0';
  return out;
}

static json_t *sub_json(const struct kvvm_substatus *s)
{
  char *name = clean_text(s->name, SUB_TEXT_MAX), *msg = clean_text(s->message, SUB_TEXT_MAX);
  json_t *j = json_pack("{s:s, s:s, s:i, s:{s:s, s:s}}", "name", name, "status",
                        sub_failed(s) ? "error" : "success", "code", s->code,
                        "formattedMessage", "lang", LANG, "message", msg);
  free(name);
  free(msg);
  return j;
}

/* Failing entries first (what a reader looks for, and what survives the size budget),
 * each group in the caller's order. */
static const struct kvvm_substatus **failing_first(const struct kvvm_status *st)
{
  const struct kvvm_substatus **v = kvvm_xcalloc(st->n_subs, sizeof(*v));
  size_t k = 0;
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < st->n_subs; i++) {
      const struct kvvm_substatus *s = &st->subs[i];
      if (sub_failed(s) != (pass == 0))
        continue;
      if (s->value != KVVM_ST_ERROR && s->value != KVVM_ST_SUCCESS)
        KVVM_WARN("status: substatus %s has value %d; written as error",
                  s->name ? s->name : "(unnamed)", (int)s->value);
      v[k++] = s;
    }
  }
  return v;
}

/* One entry standing for the n left out. Failing entries come first, so rest[0] fails if
 * any of them does, and its code is the most telling one. */
static json_t *summary_json(const struct kvvm_substatus *const *rest, size_t n)
{
  size_t failed = 0;
  for (size_t i = 0; i < n; i++)
    failed += sub_failed(rest[i]);
  char *msg = kvvm_xasprintf("%zu more certificates not listed (status size limit), "
                             "%zu of them failing",
                             n, failed);
  struct kvvm_substatus s = {"(more certificates)", failed ? KVVM_ST_ERROR : KVVM_ST_SUCCESS,
                             failed ? rest[0]->code : 0, msg};
  json_t *j = sub_json(&s);
  free(msg);
  return j;
}

/* Appends entries while the file stays under FILE_MAX, keeping room for a summary unless
 * the entry is the last; `used` is the size of the document so far. */
static void add_subs(json_t *arr, const struct kvvm_substatus *const *v, size_t n, size_t used)
{
  size_t i;
  for (i = 0; i < n; i++) {
    json_t *j = sub_json(v[i]);
    size_t size = json_dumpb(j, NULL, 0, JSON_COMPACT) + 1;  /* + the comma */
    size_t room = i + 1 == n ? 0 : SUMMARY_ROOM;
    if (used + size + room >= FILE_MAX) {
      json_decref(j);
      break;
    }
    json_array_append_new(arr, j);
    used += size;
  }
  if (i < n)
    json_array_append_new(arr, summary_json(v + i, n - i));
}

/* The document with `subs` (stolen) as its substatus array. */
static json_t *doc_json(const struct kvvm_status *st, time_t now, json_t *subs)
{
  char stamp[32];
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
  char *op = clean_text(st->operation, TOP_TEXT_MAX), *msg = clean_text(st->message, TOP_TEXT_MAX);
  json_t *doc = json_pack("[{s:f, s:s, s:{s:s, s:s, s:s, s:i, s:{s:s, s:s}, s:o}}]",
                          "version", 1.0, "timestampUTC", stamp, "status", "name", "kvvm",
                          "operation", op, "status", value_word(st->value), "code", st->code,
                          "formattedMessage", "lang", LANG, "message", msg, "substatus", subs);
  free(op);
  free(msg);
  return doc;
}

char *kvvm_status_render(const struct kvvm_status *st, time_t now)
{
  json_t *subs = json_array();
  /* subs stays valid while doc holds it: filled after the rest is measured. */
  json_t *doc = doc_json(st, now, subs);
  char *text = NULL;
  if (doc) {
    const struct kvvm_substatus **v = failing_first(st);
    add_subs(subs, v, st->n_subs, json_dumpb(doc, NULL, 0, JSON_COMPACT));
    free(v);
    /* Sized, then written once: json_dumps would double a buffer and copy it. */
    size_t len = json_dumpb(doc, NULL, 0, JSON_COMPACT | JSON_PRESERVE_ORDER);
    text = kvvm_xmalloc(len + 1);
    text[json_dumpb(doc, text, len, JSON_COMPACT | JSON_PRESERVE_ORDER)] = '\0';
  }
  /* Only jansson running out of memory gets here. */
  if (!text)
    KVVM_ERR("status: cannot render the status document");
  json_decref(doc);
  return text;
}

static char *status_path(const char *dir, long seq)
{
  char name[32];
  snprintf(name, sizeof(name), "%ld.status", seq);
  return kvvm_path_join(dir, name);
}

enum kvvm_err kvvm_status_write(const char *status_dir, long seq, const struct kvvm_status *st)
{
  if (seq < 0) {
    KVVM_ERR("status: no file for sequence number %ld", seq);
    return KVVM_E_SEQNO;
  }
  char *text = kvvm_status_render(st, time(NULL));
  if (!text)
    return KVVM_E_NOMEM;
  char *path = status_path(status_dir, seq);
  /* The agent creates the folder; if it went missing, a status nobody can read helps no one:
   * put it back with the agent's own mode. A link in its place is not written through (the
   * store folders' rule): the status would land wherever the link points. */
  enum kvvm_err rc = KVVM_OK;
  if (kvvm_path_is_link(status_dir)) {
    KVVM_ERR("status folder %s is a symbolic link; kvvm does not write through it (remove it: "
             "the agent makes the folder itself)", status_dir);
    rc = KVVM_E_STORE;
  }
  if (rc == KVVM_OK)
    rc = kvvm_dir_ensure(status_dir, 0700);
  if (rc == KVVM_OK)
    rc = kvvm_file_write_atomic(path, text, strlen(text), STATUS_MODE);
  if (rc == KVVM_OK)
    KVVM_DEBUG("%s: %s", path, value_word(st->value));
  free(path);
  free(text);
  return rc;
}

static bool word_value(const char *word, enum kvvm_status_value *out)
{
  static const enum kvvm_status_value all[] = {KVVM_ST_TRANSITIONING, KVVM_ST_SUCCESS,
                                               KVVM_ST_ERROR};
  for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
    if (strcmp(word, value_word(all[i])) == 0) {
      *out = all[i];
      return true;
    }
  }
  return false;
}

enum kvvm_err kvvm_status_read_value(const char *status_dir, long seq,
                                     enum kvvm_status_value *out)
{
  char *path = status_path(status_dir, seq), *text = NULL;
  size_t len = 0;
  json_t *doc = NULL;
  json_error_t jerr;
  const char *word = NULL;
  enum kvvm_err rc = kvvm_file_read(path, READ_MAX, &text, &len);
  if (rc != KVVM_OK)
    goto out;  /* kvvm_file_read logged it, or it is NOENT, which the caller judges */
  rc = KVVM_E_IO;
  doc = json_loadb(text, len, 0, &jerr);
  if (!doc || json_unpack_ex(doc, &jerr, 0, "[{s:{s:s}}]", "status", "status", &word) != 0)
    KVVM_ERR("%s: not a status file: %s", path, jerr.text);
  else if (!word_value(word, out))
    KVVM_ERR("%s: unexpected status value \"%s\"", path, word);
  else
    rc = KVVM_OK;
out:
  json_decref(doc);
  free(text);
  free(path);
  return rc;
}
