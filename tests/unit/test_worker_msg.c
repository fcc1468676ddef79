/* kvvmd <-> pass worker messages (docs/worker-protocol.md): what goes in comes out, 1,000
 * certificates included, and a reader refuses another major version, garbage and a message
 * cut short. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "kt.h"
#include "kvvm/log.h"
#include "kvvm/sync.h"
#include "service/worker_int.h"

static void fill(struct kvvm_cert_outcome *out, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    struct kvvm_cert_outcome *o = &out[i];
    o->state = (enum kvvm_cert_state)(i % 3);
    o->err = i % 4 ? KVVM_E_AUTH : KVVM_OK;
    o->changed = i % 2;
    o->in_place = i % 5 == 0;
    o->hook_again = i % 7 == 0;
    snprintf(o->version, sizeof o->version, "%032zx", i * 7919);
    snprintf(o->thumbprint, sizeof o->thumbprint, "%040zX", i);
    o->not_after = (time_t)(1700000000 + i);
    o->installed_at = i % 2 ? (time_t)(1600000000 + i) : 0;   /* 1.2: absent when 0 */
    o->checked_at = i % 3 ? (time_t)(1650000000 + i) : 0;
    if (i % 4)
      kvvm_outcome_say(o, "403 from the vault for certificate %zu: \"no get\"\n", i);
    if (i % 3 == 1)
      kvvm_outcome_note(o, "chain incomplete: the issuer \"CN=Inter\" of \"CN=web\" is missing");
  }
}

static bool same(const struct kvvm_cert_outcome *a, const struct kvvm_cert_outcome *b)
{
  return a->state == b->state && a->err == b->err && a->changed == b->changed &&
         a->in_place == b->in_place && a->hook_again == b->hook_again &&
         strcmp(a->version, b->version) == 0 && strcmp(a->thumbprint, b->thumbprint) == 0 &&
         a->not_after == b->not_after && a->installed_at == b->installed_at &&
         a->checked_at == b->checked_at && strcmp(kvvm_outcome_why(a), kvvm_outcome_why(b)) == 0 &&
         (a->note == NULL) == (b->note == NULL) && (!a->note || strcmp(a->note, b->note) == 0);
}

static bool all_same(const struct kvvm_cert_outcome *a, const struct kvvm_cert_outcome *b,
                     size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (!same(&a[i], &b[i]))
      return false;
  return true;
}

static void request_round_trip(void)
{
  struct kvvm_cert_outcome out[5] = {{0}};
  bool due[5] = {true, false, false, true, false};
  fill(out, 5);
  char root[] = "/pkg/é", fp[] = "0123abcd";
  struct kvvm_worker_req r = {KVVM_JOB_PASS, root, 7, fp, true, 5, due, out}, back;
  size_t len;
  char *text = kvvm_worker_req_encode(&r, &len);
  KT_CONTAINS(text, "\"kvvm_worker\":\"1.2\"");
  KT_CHECK(kvvm_worker_req_decode(text, len, &back) == KVVM_OK);
  KT_CHECK(back.job == KVVM_JOB_PASS && back.seq == 7 && back.reconcile && back.n == 5);
  KT_STREQ(back.root, "/pkg/é");
  KT_STREQ(back.settings_fp, "0123abcd");
  KT_CHECK(back.due && memcmp(back.due, due, sizeof due) == 0);
  KT_CHECK(back.out && all_same(back.out, out, 5));
  kvvm_worker_req_clear(&back);
  KT_CHECK(back.out == NULL && back.root == NULL);
  free(text);
  kvvm_outcomes_clear(out, 5);
}

static void start_up_request_has_no_settings(void)
{
  char root[] = "/pkg";
  struct kvvm_worker_req r = {KVVM_JOB_START_UP, root, -1, NULL, false, 0, NULL, NULL}, back;
  size_t len;
  char *text = kvvm_worker_req_encode(&r, &len);
  KT_CHECK(kvvm_worker_req_decode(text, len, &back) == KVVM_OK);
  KT_CHECK(back.job == KVVM_JOB_START_UP && back.seq == -1 && back.n == 0);
  KT_CHECK(back.settings_fp == NULL);
  kvvm_worker_req_clear(&back);
  free(text);
}

static void answer_of_1000(void)
{
  enum { N = 1000 };
  struct kvvm_cert_outcome *out = calloc(N, sizeof *out);
  fill(out, N);
  struct kvvm_worker_ans a = {.changed = 17, .stopping = true, .n = N, .out = out}, back;
  snprintf(a.pass_hook_error, sizeof a.pass_hook_error, "reload-nginx exited 1");
  size_t len;
  char *text = kvvm_worker_ans_encode(&a, &len);
  KT_CHECK(len < 400 * 1024);
  KT_CHECK(kvvm_worker_ans_decode(text, len, N, &back) == KVVM_OK);
  KT_CHECK(back.changed == 17 && back.stopping && back.n == N);
  KT_STREQ(back.pass_hook_error, "reload-nginx exited 1");
  KT_CHECK(back.out && all_same(back.out, out, N));
  kvvm_worker_ans_clear(&back);
  /* kvvmd expects as many outcomes as it has certificates: one fewer is refused. */
  KT_CHECK(kvvm_worker_ans_decode(text, len, N - 1, &back) == KVVM_E_INTERNAL);
  KT_CHECK(back.out == NULL);
  free(text);
  kvvm_outcomes_clear(out, N);
  free(out);
}

/* What the log says to stderr while decoding text (the test's own file, read back). */
static char *log_of_decode(const char *text)
{
  static char buf[1024];
  struct kvvm_worker_ans back;
  FILE *f = tmpfile();
  int saved = dup(2);
  fflush(stderr);
  dup2(fileno(f), 2);
  kvvm_log_set_stderr_level(KVVM_LOG_ERR);
  KT_CHECK(kvvm_worker_ans_decode(text, strlen(text), 0, &back) == KVVM_E_INTERNAL);
  kvvm_log_set_stderr_level(KVVM_LOG_ERR + 1);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  rewind(f);
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

static void unknown_major_refused(void)
{
  struct kvvm_worker_ans back;
  const char *v2 = "{\"kvvm_worker\":\"2.0\",\"changed\":0,\"stopping\":false,"
                   "\"pass_hook_error\":\"\",\"outcomes\":[]}";
  const char *v1_9 = "{\"kvvm_worker\":\"1.9\",\"changed\":0,\"stopping\":false,"
                     "\"pass_hook_error\":\"\",\"outcomes\":[],\"future\":{\"x\":1}}";
  KT_CONTAINS(log_of_decode(v2), "in format 2.0; this kvvm reads only 1.x");
  /* A newer minor version only adds members: read, the new ones ignored. */
  KT_CHECK(kvvm_worker_ans_decode(v1_9, strlen(v1_9), 0, &back) == KVVM_OK);
  kvvm_worker_ans_clear(&back);
  const char *none = "{\"changed\":0,\"stopping\":false,\"pass_hook_error\":\"\","
                     "\"outcomes\":[]}";
  KT_CONTAINS(log_of_decode(none), "has no \"kvvm_worker\" version");
}

static void truncated_and_garbage_refused(void)
{
  struct kvvm_cert_outcome out[3] = {{0}};
  fill(out, 3);
  struct kvvm_worker_ans a = {.n = 3, .out = out}, back;
  size_t len;
  char *text = kvvm_worker_ans_encode(&a, &len);
  size_t cuts[] = {0, 1, len / 2, len - 1};
  for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++)
    KT_CHECK(kvvm_worker_ans_decode(text, cuts[i], 3, &back) == KVVM_E_INTERNAL);
  const char *bad[] = {
    "\x01\x02garbage",
    "[1,2,3]",
    /* an unknown state, an unknown error name, a version too long for its field */
    "{\"kvvm_worker\":\"1.0\",\"changed\":0,\"stopping\":false,\"pass_hook_error\":\"\","
    "\"outcomes\":[{\"state\":\"gone\",\"err\":\"ok\",\"changed\":false,\"in_place\":false,"
    "\"hook_again\":false,\"version\":\"\",\"thumbprint\":\"\",\"not_after\":0,\"why\":\"\"}]}",
    "{\"kvvm_worker\":\"1.0\",\"changed\":0,\"stopping\":false,\"pass_hook_error\":\"\","
    "\"outcomes\":[{\"state\":\"pending\",\"err\":\"bogus\",\"changed\":false,\"in_place\":false,"
    "\"hook_again\":false,\"version\":\"\",\"thumbprint\":\"\",\"not_after\":0,\"why\":\"\"}]}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    KT_CHECK(kvvm_worker_ans_decode(bad[i], strlen(bad[i]), 1, &back) == KVVM_E_INTERNAL);
  char longv[400];
  snprintf(longv, sizeof longv, "{\"kvvm_worker\":\"1.0\",\"changed\":0,\"stopping\":false,"
           "\"pass_hook_error\":\"\",\"outcomes\":[{\"state\":\"pending\",\"err\":\"ok\","
           "\"changed\":false,\"in_place\":false,\"hook_again\":false,\"version\":\"%090d\","
           "\"thumbprint\":\"\",\"not_after\":0,\"why\":\"\"}]}", 0);
  KT_CHECK(kvvm_worker_ans_decode(longv, strlen(longv), 1, &back) == KVVM_E_INTERNAL);
  const char *req_bad_due = "{\"kvvm_worker\":\"1.0\",\"job\":\"pass\",\"root\":\"/p\","
                            "\"seq\":1,\"reconcile_grants\":false,\"certificates\":0,"
                            "\"due\":[3],\"outcomes\":[]}";
  struct kvvm_worker_req r;
  KT_CHECK(kvvm_worker_req_decode(req_bad_due, strlen(req_bad_due), &r) == KVVM_E_INTERNAL);
  KT_CHECK(r.root == NULL && r.due == NULL);
  free(text);
  kvvm_outcomes_clear(out, 3);
}

static void not_utf8_kept_readable(void)
{
  struct kvvm_cert_outcome out[1] = {{0}};
  kvvm_outcome_say(&out[0], "server said \xff\xfe here");
  struct kvvm_worker_ans a = {.n = 1, .out = out}, back;
  size_t len;
  char *text = kvvm_worker_ans_encode(&a, &len);
  KT_CHECK(kvvm_worker_ans_decode(text, len, 1, &back) == KVVM_OK);
  KT_STREQ(back.out ? kvvm_outcome_why(&back.out[0]) : NULL, "server said ?? here");
  kvvm_worker_ans_clear(&back);
  free(text);
  kvvm_outcomes_clear(out, 1);
}

int main(void)
{
  kvvm_log_set_stderr_level(KVVM_LOG_ERR + 1);   /* the refusals' log lines are expected */
  static const struct kt_case cases[] = {
    {"request_round_trip", request_round_trip},
    {"start_up_request_has_no_settings", start_up_request_has_no_settings},
    {"answer_of_1000", answer_of_1000},
    {"unknown_major_refused", unknown_major_refused},
    {"truncated_and_garbage_refused", truncated_and_garbage_refused},
    {"not_utf8_kept_readable", not_utf8_kept_readable},
  };
  return kt_main("worker_msg", cases, sizeof cases / sizeof *cases);
}
