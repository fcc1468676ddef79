/* status: the exact shape the guest agent accepts, the size limits, failing entries first,
 * atomic writes and reading the value back. */
#include <dirent.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kt.h"
#include "kvvm/fileio.h"
#include "kvvm/mem.h"
#include "kvvm/status.h"

#define NOW ((time_t)1795556525) /* 2026-11-24T21:42:05Z */

/* Exactly these keys, no others. */
static bool has_keys(json_t *obj, const char *const *keys, size_t n)
{
  if (!json_is_object(obj) || json_object_size(obj) != n)
    return false;
  for (size_t i = 0; i < n; i++) {
    if (!json_object_get(obj, keys[i]))
      return false;
  }
  return true;
}

static json_t *render_parsed(const struct kvvm_status *st, char **text_out)
{
  char *text = kvvm_status_render(st, NOW);
  json_error_t err;
  json_t *doc = text ? json_loads(text, 0, &err) : NULL;
  if (text_out)
    *text_out = text;
  else
    free(text);
  return doc;
}

static json_t *status_obj(json_t *doc) { return json_object_get(json_array_get(doc, 0), "status"); }

static json_t *subs_of(json_t *doc) { return json_object_get(status_obj(doc), "substatus"); }

static const char *msg_of(json_t *entry)
{
  return json_string_value(json_object_get(json_object_get(entry, "formattedMessage"), "message"));
}

static const char *value_of(json_t *entry)
{
  return json_string_value(json_object_get(entry, "status"));
}

static void check_formatted(json_t *entry)
{
  static const char *const fm_keys[] = {"lang", "message"};
  json_t *fm = json_object_get(entry, "formattedMessage");
  KT_CHECK(has_keys(fm, fm_keys, 2));
  KT_STREQ(json_string_value(json_object_get(fm, "lang")), "en-US");
  KT_CHECK(json_is_string(json_object_get(fm, "message")));
  KT_CHECK(json_is_integer(json_object_get(entry, "code")));
}

static void minimal_document_is_byte_exact(void)
{
  struct kvvm_status st = {"Enable", KVVM_ST_SUCCESS, 0, "ok", NULL, 0};
  char *text = kvvm_status_render(&st, NOW);
  KT_STREQ(text, "[{\"version\":1.0,\"timestampUTC\":\"2026-11-24T21:42:05Z\",\"status\":"
                 "{\"name\":\"kvvm\",\"operation\":\"Enable\",\"status\":\"success\",\"code\":0,"
                 "\"formattedMessage\":{\"lang\":\"en-US\",\"message\":\"ok\"},\"substatus\":[]}}]");
  free(text);
}

static void shape_and_types_match_the_agent(void)
{
  static const char *const top_keys[] = {"version", "timestampUTC", "status"};
  static const char *const st_keys[] = {"name",   "operation",        "status",
                                        "code",   "formattedMessage", "substatus"};
  static const char *const sub_keys[] = {"name", "status", "code", "formattedMessage"};
  struct kvvm_substatus subs[] = {
    {"https://v.vault.azure.net/secrets/a", KVVM_ST_SUCCESS, 0, "version 1, thumbprint AB"},
    {"https://v.vault.azure.net/secrets/b", KVVM_ST_ERROR, 3, "forbidden (HTTP 403)"},
  };
  struct kvvm_status st = {"kvvmd", KVVM_ST_ERROR, -2, "1 of 2 failed", subs, 2};
  json_t *doc = render_parsed(&st, NULL);
  KT_CHECK(json_is_array(doc) && json_array_size(doc) == 1);
  json_t *top = json_array_get(doc, 0);
  KT_CHECK(has_keys(top, top_keys, 3));
  KT_CHECK(json_is_real(json_object_get(top, "version")));
  KT_CHECK(json_real_value(json_object_get(top, "version")) == 1.0);
  KT_STREQ(json_string_value(json_object_get(top, "timestampUTC")), "2026-11-24T21:42:05Z");
  json_t *s = status_obj(doc);
  KT_CHECK(has_keys(s, st_keys, 6));
  KT_STREQ(json_string_value(json_object_get(s, "name")), "kvvm");
  KT_STREQ(json_string_value(json_object_get(s, "operation")), "kvvmd");
  KT_STREQ(value_of(s), "error");
  KT_CHECK(json_integer_value(json_object_get(s, "code")) == -2);
  check_formatted(s);
  KT_CHECK(json_array_size(subs_of(doc)) == 2);
  for (size_t i = 0; i < json_array_size(subs_of(doc)); i++) {
    json_t *e = json_array_get(subs_of(doc), i);
    KT_CHECK(has_keys(e, sub_keys, 4));
    KT_CHECK(json_is_string(json_object_get(e, "name")));
    check_formatted(e);
  }
  KT_CHECK(json_integer_value(json_object_get(json_array_get(subs_of(doc), 0), "code")) == 3);
  json_decref(doc);
}

static const char *top_word(enum kvvm_status_value v)
{
  static char word[32];
  struct kvvm_status st = {"Enable", v, 0, "m", NULL, 0};
  json_t *doc = render_parsed(&st, NULL);
  snprintf(word, sizeof(word), "%s", value_of(status_obj(doc)) ? value_of(status_obj(doc)) : "");
  json_decref(doc);
  return word;
}

static void values_are_lower_case_and_terminal_only(void)
{
  KT_STREQ(top_word(KVVM_ST_TRANSITIONING), "transitioning");
  KT_STREQ(top_word(KVVM_ST_SUCCESS), "success");
  KT_STREQ(top_word(KVVM_ST_ERROR), "error");
  KT_STREQ(top_word((enum kvvm_status_value)42), "error");
  /* A substatus that is neither success nor error would make the agent reject the file. */
  struct kvvm_substatus sub = {"u", KVVM_ST_TRANSITIONING, 0, "m"};
  struct kvvm_status st = {"Enable", KVVM_ST_SUCCESS, 0, "m", &sub, 1};
  json_t *doc = render_parsed(&st, NULL);
  KT_STREQ(value_of(json_array_get(subs_of(doc), 0)), "error");
  json_decref(doc);
}

static void null_texts_render_empty(void)
{
  struct kvvm_substatus sub = {NULL, KVVM_ST_SUCCESS, 0, NULL};
  struct kvvm_status st = {NULL, KVVM_ST_SUCCESS, 0, NULL, &sub, 1};
  json_t *doc = render_parsed(&st, NULL);
  KT_STREQ(json_string_value(json_object_get(status_obj(doc), "operation")), "");
  KT_STREQ(msg_of(status_obj(doc)), "");
  KT_STREQ(json_string_value(json_object_get(json_array_get(subs_of(doc), 0), "name")), "");
  KT_STREQ(msg_of(json_array_get(subs_of(doc), 0)), "");
  json_decref(doc);
}

static char *repeat(const char *unit, size_t times, const char *prefix)
{
  size_t u = strlen(unit), p = strlen(prefix);
  char *s = kvvm_xmalloc(p + u * times + 1);
  memcpy(s, prefix, p);
  for (size_t i = 0; i < times; i++)
    memcpy(s + p + i * u, unit, u);
  s[p + u * times] = '\0';
  return s;
}

/* The rendered top message for `msg` must be a cut of it at a character boundary. */
static void check_top_cut(const char *msg, size_t want_len)
{
  struct kvvm_status st = {"Enable", KVVM_ST_ERROR, 1, msg, NULL, 0};
  json_t *doc = render_parsed(&st, NULL);
  const char *got = msg_of(status_obj(doc));
  KT_CHECK(got != NULL);
  if (got) {
    size_t n = strlen(got);
    KT_CHECK(n < 1024);
    KT_CHECK(n == want_len);
    KT_CHECK(n >= 3 && strcmp(got + n - 3, "...") == 0);
    KT_CHECK(n >= 3 && memcmp(got, msg, n - 3) == 0);
    /* The byte after the kept part starts a character. */
    KT_CHECK(n >= 3 && ((unsigned char)msg[n - 3] & 0xc0) != 0x80);
  }
  json_decref(doc);
}

static void top_message_cut_below_1k_at_utf8_boundary(void)
{
  char *two = repeat("\xc3\xa9", 1000, "");      /* é: 510 fit in 1020 bytes */
  char *four = repeat("\xf0\x9f\x98\x80", 400, "a");  /* 1 + 254 * 4 = 1017 */
  char *three = repeat("\xe2\x82\xac", 400, "ab");    /* 2 + 339 * 3 = 1019 */
  check_top_cut(two, 1023);
  check_top_cut(four, 1020);
  check_top_cut(three, 1022);
  free(two);
  free(four);
  free(three);
}

static void top_message_under_limit_is_kept(void)
{
  char *fits = repeat("x", 1023, ""), *over = repeat("x", 1024, "");
  struct kvvm_status st = {"Enable", KVVM_ST_ERROR, 1, fits, NULL, 0};
  json_t *doc = render_parsed(&st, NULL);
  KT_STREQ(msg_of(status_obj(doc)), fits);
  json_decref(doc);
  check_top_cut(over, 1023);
  free(fits);
  free(over);
}

static void invalid_utf8_is_replaced(void)
{
  /* A stray byte, an overlong NUL, a surrogate, a truncated sequence at the end. */
  struct kvvm_status st = {"Enable", KVVM_ST_ERROR, 1,
                           "bad\xff \xc0\x80 \xed\xa0\x80 ok\xc3\xa9 end\xe2\x82", NULL, 0};
  json_t *doc = render_parsed(&st, NULL);
  KT_STREQ(msg_of(status_obj(doc)), "bad? ?? ??? ok\xc3\xa9 end??");
  json_decref(doc);
}

static void substatus_message_cut_below_10k(void)
{
  char *big = repeat("\xc3\xa9", 20000, "");
  struct kvvm_substatus sub = {"u", KVVM_ST_ERROR, 1, big};
  struct kvvm_status st = {"Enable", KVVM_ST_ERROR, 1, "m", &sub, 1};
  json_t *doc = render_parsed(&st, NULL);
  const char *got = msg_of(json_array_get(subs_of(doc), 0));
  KT_CHECK(got && strlen(got) < 10240 && strlen(got) > 10200);
  KT_CHECK(got && strcmp(got + strlen(got) - 3, "...") == 0);
  json_decref(doc);
  free(big);
}

static void failing_entries_first_in_stable_order(void)
{
  struct kvvm_substatus subs[] = {
    {"ok1", KVVM_ST_SUCCESS, 0, "m"}, {"bad1", KVVM_ST_ERROR, 1, "m"},
    {"ok2", KVVM_ST_SUCCESS, 0, "m"}, {"bad2", KVVM_ST_ERROR, 2, "m"},
    {"ok3", KVVM_ST_SUCCESS, 0, "m"},
  };
  static const char *const want[] = {"bad1", "bad2", "ok1", "ok2", "ok3"};
  struct kvvm_status st = {"Enable", KVVM_ST_ERROR, 1, "m", subs, 5};
  json_t *doc = render_parsed(&st, NULL);
  KT_CHECK(json_array_size(subs_of(doc)) == 5);
  for (size_t i = 0; i < 5; i++)
    KT_STREQ(json_string_value(json_object_get(json_array_get(subs_of(doc), i), "name")), want[i]);
  json_decref(doc);
}

/* n entries with ~1 KiB messages; every `fail_every`-th fails (0: none). */
static struct kvvm_substatus *many(size_t n, size_t fail_every, char **names, const char *text)
{
  struct kvvm_substatus *subs = kvvm_xcalloc(n, sizeof(*subs));
  for (size_t i = 0; i < n; i++) {
    names[i] = kvvm_xasprintf("https://v.vault.azure.net/secrets/cert%zu", i);
    bool bad = fail_every && i % fail_every == 0;
    subs[i] = (struct kvvm_substatus){names[i], bad ? KVVM_ST_ERROR : KVVM_ST_SUCCESS,
                                      bad ? 7 : 0, text};
  }
  return subs;
}

/* Renders 5000 large entries and checks the file size and the summary entry. */
static void check_budget(size_t fail_every, const char *want_value, int want_code)
{
  enum { N = 5000 };
  char **names = kvvm_xcalloc(N + 1, sizeof(*names));
  char *text_msg = repeat("y", 1000, "");
  struct kvvm_substatus *subs = many(N, fail_every, names, text_msg);
  struct kvvm_status st = {"kvvmd", KVVM_ST_ERROR, 1, "m", subs, N};
  char *text = NULL;
  json_t *doc = render_parsed(&st, &text);
  json_t *arr = subs_of(doc);
  size_t n = json_array_size(arr), kept = n - 1, failing = 0, kept_failing = 0;
  KT_CHECK(text && strlen(text) < 128 * 1024);
  KT_CHECK(n > 50 && n < N);
  for (size_t i = 0; i < N; i++)
    failing += subs[i].value == KVVM_ST_ERROR;
  for (size_t i = 0; i < kept; i++)
    kept_failing += strcmp(value_of(json_array_get(arr, i)), "error") == 0;
  json_t *sum = json_array_get(arr, kept);
  char want[128];
  snprintf(want, sizeof(want), "%zu more certificates not listed", (size_t)N - kept);
  KT_CONTAINS(msg_of(sum), want);
  snprintf(want, sizeof(want), "%zu of them failing", failing - kept_failing);
  KT_CONTAINS(msg_of(sum), want);
  KT_STREQ(value_of(sum), want_value);
  KT_CHECK(json_integer_value(json_object_get(sum, "code")) == want_code);
  json_decref(doc);
  free(text);
  free(subs);
  free(text_msg);
  kvvm_strv_free(names);
}

static void budget_keeps_file_under_128k_with_failing_summary(void)
{
  /* 1667 failing entries of ~1.1 KiB cannot all fit: the summary must say error. */
  check_budget(3, "error", 7);
}

static void budget_summary_success_when_none_dropped_failed(void)
{
  check_budget(0, "success", 0);
}

static void no_summary_when_everything_fits(void)
{
  char *names[11] = {0};
  struct kvvm_substatus *subs = many(10, 2, names, "short");
  struct kvvm_status st = {"kvvmd", KVVM_ST_ERROR, 1, "m", subs, 10};
  json_t *doc = render_parsed(&st, NULL);
  KT_CHECK(json_array_size(subs_of(doc)) == 10);
  json_decref(doc);
  free(subs);
  for (size_t i = 0; i < 10; i++)
    free(names[i]);
}

static char *temp_dir(void) { return kt_tmpdir(); }

static void remove_dir(char *dir)
{
  kt_rmtree(dir);
  free(dir);
}

/* How many entries dir holds; the name of the first one seen goes into `first`. */
static int count_entries(const char *dir, char *first, size_t len)
{
  DIR *d = opendir(dir);
  struct dirent *e;
  int n = 0;
  while (d && (e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    if (n++ == 0)
      snprintf(first, len, "%s", e->d_name);
  }
  if (d)
    closedir(d);
  return n;
}

/* A link planted where the status folder should be is not written through, and what it
 * points to stays empty. */
static void status_folder_link_refused(void)
{
#ifndef _WIN32
  char *dir = temp_dir(), first[256] = "";
  char *target = kvvm_path_join(dir, "elsewhere"), *link = kvvm_path_join(dir, "status");
  struct kvvm_status st = {"Enable", KVVM_ST_SUCCESS, 0, "ok", NULL, 0};
  KT_CHECK(mkdir(target, 0700) == 0 && symlink(target, link) == 0);
  KT_CHECK(kvvm_status_write(link, 1, &st) == KVVM_E_STORE);
  KT_CHECK(count_entries(target, first, sizeof(first)) == 0);
  free(target);
  free(link);
  remove_dir(dir);
#else
  KT_SKIP("a symbolic link as status folder: this test makes it with POSIX symlink(); on "
          "Windows the check reads FILE_ATTRIBUTE_REPARSE_POINT");
#endif
}

static void write_is_atomic_and_replaces(void)
{
  char *dir = temp_dir(), first[256] = "";
  struct kvvm_status st = {"Enable", KVVM_ST_TRANSITIONING, 0, "starting", NULL, 0};
  enum kvvm_status_value v = KVVM_ST_ERROR;
  KT_CHECK(kvvm_status_write(dir, 3, &st) == KVVM_OK);
  KT_CHECK(kvvm_status_read_value(dir, 3, &v) == KVVM_OK && v == KVVM_ST_TRANSITIONING);
  st.value = KVVM_ST_SUCCESS;
  KT_CHECK(kvvm_status_write(dir, 3, &st) == KVVM_OK);
  KT_CHECK(kvvm_status_read_value(dir, 3, &v) == KVVM_OK && v == KVVM_ST_SUCCESS);
  /* No temp file left beside it: the agent copies the whole folder on update. */
  KT_CHECK(count_entries(dir, first, sizeof(first)) == 1);
  KT_STREQ(first, "3.status");
  char *path = kvvm_path_join(dir, "3.status"), *text = NULL;
#ifndef _WIN32
  struct stat sb;
  KT_CHECK(stat(path, &sb) == 0 && (sb.st_mode & 07777) == 0644);
#else
  KT_SKIP("permission bits: Windows files inherit their folder's DACL");
#endif
  KT_CHECK(kvvm_file_read(path, 1 << 20, &text, NULL) == KVVM_OK);
  KT_CONTAINS(text, "\"status\":\"success\"");
  free(text);
  free(path);
  remove_dir(dir);
}

static void read_value_round_trip(void)
{
  static const enum kvvm_status_value all[] = {KVVM_ST_TRANSITIONING, KVVM_ST_SUCCESS,
                                               KVVM_ST_ERROR};
  char *dir = temp_dir();
  for (size_t i = 0; i < 3; i++) {
    struct kvvm_status st = {"Enable", all[i], 0, "m", NULL, 0};
    enum kvvm_status_value v = (enum kvvm_status_value)99;
    KT_CHECK(kvvm_status_write(dir, 7, &st) == KVVM_OK);
    KT_CHECK(kvvm_status_read_value(dir, 7, &v) == KVVM_OK);
    KT_CHECK(v == all[i]);
  }
  remove_dir(dir);
}

static enum kvvm_err read_text(const char *dir, const char *text)
{
  char *path = kvvm_path_join(dir, "5.status");
  enum kvvm_status_value v;
  KT_CHECK(kvvm_file_write_atomic(path, text, strlen(text), 0644) == KVVM_OK);
  free(path);
  return kvvm_status_read_value(dir, 5, &v);
}

static void read_value_missing_and_invalid(void)
{
  char *dir = temp_dir();
  enum kvvm_status_value v;
  KT_CHECK(kvvm_status_read_value(dir, 5, &v) == KVVM_E_NOENT);
  KT_CHECK(read_text(dir, "") == KVVM_E_IO);
  KT_CHECK(read_text(dir, "[{\"status\":{\"status\":\"succ") == KVVM_E_IO);
  KT_CHECK(read_text(dir, "[]") == KVVM_E_IO);
  KT_CHECK(read_text(dir, "{\"status\":{\"status\":\"success\"}}") == KVVM_E_IO);
  KT_CHECK(read_text(dir, "[{\"status\":{\"status\":\"warning\"}}]") == KVVM_E_IO);
  KT_CHECK(read_text(dir, "[{\"status\":{\"status\":\"success\"}}]") == KVVM_OK);
  remove_dir(dir);
}

static void write_rejects_negative_seq(void)
{
  char *dir = temp_dir(), first[256];
  struct kvvm_status st = {"Enable", KVVM_ST_SUCCESS, 0, "m", NULL, 0};
  KT_CHECK(kvvm_status_write(dir, -1, &st) == KVVM_E_SEQNO);
  KT_CHECK(count_entries(dir, first, sizeof(first)) == 0);
  remove_dir(dir);
}

int main(void)
{
  static const struct kt_case cases[] = {
    KT_CASE(minimal_document_is_byte_exact),
    KT_CASE(shape_and_types_match_the_agent),
    KT_CASE(values_are_lower_case_and_terminal_only),
    KT_CASE(null_texts_render_empty),
    KT_CASE(top_message_cut_below_1k_at_utf8_boundary),
    KT_CASE(top_message_under_limit_is_kept),
    KT_CASE(invalid_utf8_is_replaced),
    KT_CASE(substatus_message_cut_below_10k),
    KT_CASE(failing_entries_first_in_stable_order),
    KT_CASE(budget_keeps_file_under_128k_with_failing_summary),
    KT_CASE(budget_summary_success_when_none_dropped_failed),
    KT_CASE(no_summary_when_everything_fits),
    KT_CASE(write_is_atomic_and_replaces),
    KT_CASE(status_folder_link_refused),
    KT_CASE(read_value_round_trip),
    KT_CASE(read_value_missing_and_invalid),
    KT_CASE(write_rejects_negative_seq),
  };
  return KT_RUN("status", cases);
}
