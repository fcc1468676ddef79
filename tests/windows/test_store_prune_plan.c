/* Which old certificate versions the Windows store removes (store_prune_plan_windows.c): the
 * decision alone, on its inputs (the record's versions, the current thumbprint, the
 * retention, HTTP.sys's bindings, the certificates that use each key). No store is touched:
 * this runs the same under wine and on Windows.
 *   test_store_prune_plan.exe */
#include <stdio.h>
#include <string.h>

#include "../unit/kt.h"
#include "windows/store_int.h"

#define T1 "1111111111111111111111111111111111111111"
#define T2 "2222222222222222222222222222222222222222"
#define T3 "3333333333333333333333333333333333333333"
#define T4 "4444444444444444444444444444444444444444"
#define PROV "Microsoft Enhanced RSA and AES Cryptographic Provider"
#define MY "LocalMachine\\MY"

/* The key users' and bindings' strings are the pass's own (char *); here, arrays. */
static char s_my[] = MY, s_web[] = "LocalMachine\\WebHosting", s_t1[] = T1, s_t2[] = T2,
            s_t3[] = T3, s_t4[] = T4, s_prov[] = PROV,
            s_prov_lc[] = "microsoft enhanced rsa and aes cryptographic provider",
            s_other[] = "Other CSP", s_one[] = "one", s_same[] = "same", s_c1[] = "c1",
            s_c4[] = "c4", s_any443[] = "0.0.0.0:443", s_www443[] = "www.example.com:443",
            s_v6[] = "[::]:8443";

static const struct store_win_prune_ver four[] = {
    {T1, PROV, "c1"}, {T2, PROV, "c2"}, {T3, PROV, "c3"}, {T4, PROV, "c4"}};

static struct store_win_prune_in in_of(const struct store_win_prune_ver *v, size_t n,
                                       const char *current, unsigned retain)
{
  return (struct store_win_prune_in){MY, current, retain, v, n, true, NULL, 0, NULL, 0};
}

static void keeps_current_and_previous(void)
{
  struct store_win_prune_step st[4];
  struct store_win_prune_in in = in_of(four, 4, T4, 2);
  KT_CHECK(store_win_prune_plan(&in, st) == 2);
  KT_CHECK(st[0].what == STORE_WIN_REMOVE && st[0].delete_key && !st[0].key_user);
  KT_CHECK(st[1].what == STORE_WIN_REMOVE && st[1].delete_key);
  KT_CHECK(st[2].what == STORE_WIN_KEEP && st[3].what == STORE_WIN_KEEP);
}

static void nothing_within_retention(void)
{
  struct store_win_prune_step st[4];
  struct store_win_prune_in in = in_of(four, 2, T2, 2);
  KT_CHECK(store_win_prune_plan(&in, st) == 0);
  KT_CHECK(st[0].what == STORE_WIN_KEEP && st[1].what == STORE_WIN_KEEP);
  in = in_of(four, 1, T1, 2);
  KT_CHECK(store_win_prune_plan(&in, st) == 0 && st[0].what == STORE_WIN_KEEP);
  in = in_of(four, 0, T1, 2);
  KT_CHECK(store_win_prune_plan(&in, st) == 0);
}

/* retain 1: only the current one; retain 3: the two before it too. */
static void other_retentions(void)
{
  struct store_win_prune_step st[4];
  struct store_win_prune_in in = in_of(four, 4, T4, 1);
  KT_CHECK(store_win_prune_plan(&in, st) == 3 && st[3].what == STORE_WIN_KEEP);
  in = in_of(four, 4, T4, 3);
  KT_CHECK(store_win_prune_plan(&in, st) == 1 && st[0].what == STORE_WIN_REMOVE &&
           st[1].what == STORE_WIN_KEEP);
}

/* The current version is never removed, wherever the record lists it (a rollback), and the
 * newest others are the ones kept. */
static void current_never_removed(void)
{
  struct store_win_prune_step st[4];
  struct store_win_prune_in in = in_of(four, 4, T1, 2);
  KT_CHECK(store_win_prune_plan(&in, st) == 2);
  KT_CHECK(st[0].what == STORE_WIN_KEEP && st[3].what == STORE_WIN_KEEP);
  KT_CHECK(st[1].what == STORE_WIN_REMOVE && st[2].what == STORE_WIN_REMOVE);
  in = in_of(four, 4, "0000000000000000000000000000000000000000", 2);
  KT_CHECK(store_win_prune_plan(&in, st) == 3 && st[3].what == STORE_WIN_KEEP);
  /* Thumbprints are compared without regard to case. */
  static const struct store_win_prune_ver lower[] = {{"aa", PROV, "c1"}, {"bb", PROV, "c2"}};
  in = in_of(lower, 2, "AA", 1);
  KT_CHECK(store_win_prune_plan(&in, st) == 1 && st[0].what == STORE_WIN_KEEP &&
           st[1].what == STORE_WIN_REMOVE);
}

static void bound_is_kept(void)
{
  struct store_win_prune_step st[4];
  struct store_win_binding b[] = {{s_any443, T1},
                                  {s_www443, T4}};
  struct store_win_prune_in in = in_of(four, 4, T4, 2);
  in.bindings = b;
  in.nbindings = 2;
  KT_CHECK(store_win_prune_plan(&in, st) == 1);
  KT_CHECK(st[0].what == STORE_WIN_KEEP_BOUND && strcmp(st[0].binding, "0.0.0.0:443") == 0);
  KT_CHECK(st[1].what == STORE_WIN_REMOVE && !st[1].binding);
  KT_CHECK(st[3].what == STORE_WIN_KEEP);
  /* A binding's thumbprint in lower case binds too. */
  struct store_win_binding lc[] = {{s_v6, "2222222222222222222222222222222222222222"}};
  in.bindings = lc;
  in.nbindings = 1;
  KT_CHECK(store_win_prune_plan(&in, st) == 1 && st[1].what == STORE_WIN_KEEP_BOUND);
}

static void unknown_bindings_postpone(void)
{
  struct store_win_prune_step st[4];
  struct store_win_prune_in in = in_of(four, 4, T4, 2);
  in.bindings_known = false;
  KT_CHECK(store_win_prune_plan(&in, st) == 0);
  KT_CHECK(st[0].what == STORE_WIN_POSTPONE && st[1].what == STORE_WIN_POSTPONE);
  KT_CHECK(st[2].what == STORE_WIN_KEEP && st[3].what == STORE_WIN_KEEP);
}

/* wine: every version's key in one container. The kept versions still use it. */
static void shared_key_kept(void)
{
  static const struct store_win_prune_ver shared[] = {
      {T1, PROV, "one"}, {T2, PROV, "one"}, {T3, PROV, "one"}};
  struct store_win_key_user u[] = {{s_my, s_t1, s_prov, s_one},
                                   {s_my, s_t2, s_prov, s_one},
                                   {s_my, s_t3, s_prov, s_one}};
  struct store_win_prune_step st[3];
  struct store_win_prune_in in = in_of(shared, 3, T3, 2);
  in.users = u;
  in.nusers = 3;
  KT_CHECK(store_win_prune_plan(&in, st) == 1);
  KT_CHECK(st[0].what == STORE_WIN_REMOVE && !st[0].delete_key && st[0].key_user == &u[1]);
}

/* Users of other keys, or of the same container name under another provider, do not keep
 * it; the removed certificate itself, and the other removed versions, do not either. */
static void key_users_that_do_not_count(void)
{
  static const struct store_win_prune_ver pair[] = {
      {T1, PROV, "same"}, {T2, PROV, "same"}, {T3, PROV, "c3"}, {T4, PROV, "c4"}};
  struct store_win_key_user u[] = {{s_my, s_t1, s_prov, s_same},
                                   {s_my, s_t2, s_prov, s_same},
                                   {s_my, s_t3, s_other, s_c1},
                                   {s_my, s_t4, s_prov, s_c4}};
  struct store_win_prune_step st[4];
  struct store_win_prune_in in = in_of(pair, 4, T4, 2);
  in.users = u;
  in.nusers = 4;
  KT_CHECK(store_win_prune_plan(&in, st) == 2);
  KT_CHECK(st[0].delete_key && !st[0].key_user && st[1].delete_key && !st[1].key_user);
}

/* The same key named from another store (a PFX imported twice), or the same thumbprint in
 * another store, keeps the key; provider names compare without regard to case. */
static void key_used_elsewhere(void)
{
  struct store_win_key_user u[] = {
      {s_web, s_t1, s_prov_lc, s_c1}};
  struct store_win_prune_step st[4];
  struct store_win_prune_in in = in_of(four, 4, T4, 2);
  in.users = u;
  in.nusers = 1;
  KT_CHECK(store_win_prune_plan(&in, st) == 2);
  KT_CHECK(!st[0].delete_key && st[0].key_user == &u[0]);
  KT_CHECK(st[1].delete_key && !st[1].key_user);
}

/* An entry without a key removes the certificate only; one without a thumbprint is left. */
static void entries_without_key_or_thumbprint(void)
{
  static const struct store_win_prune_ver odd[] = {
      {NULL, PROV, "c0"}, {T1, NULL, NULL}, {T2, PROV, ""}, {T3, PROV, "c3"}, {T4, PROV, "c4"}};
  struct store_win_prune_step st[5];
  struct store_win_prune_in in = in_of(odd, 5, T4, 2);
  KT_CHECK(store_win_prune_plan(&in, st) == 2);
  KT_CHECK(st[0].what == STORE_WIN_KEEP);
  KT_CHECK(st[1].what == STORE_WIN_REMOVE && !st[1].delete_key && !st[1].key_user);
  KT_CHECK(st[2].what == STORE_WIN_REMOVE && !st[2].delete_key);
  KT_CHECK(st[3].what == STORE_WIN_KEEP);
}

int main(void)
{
  static const struct kt_case cases[] = {
      {"keeps_current_and_previous", keeps_current_and_previous},
      {"nothing_within_retention", nothing_within_retention},
      {"other_retentions", other_retentions},
      {"current_never_removed", current_never_removed},
      {"bound_is_kept", bound_is_kept},
      {"unknown_bindings_postpone", unknown_bindings_postpone},
      {"shared_key_kept", shared_key_kept},
      {"key_users_that_do_not_count", key_users_that_do_not_count},
      {"key_used_elsewhere", key_used_elsewhere},
      {"entries_without_key_or_thumbprint", entries_without_key_or_thumbprint},
  };
  return kt_main("store_prune_plan", cases, sizeof(cases) / sizeof(cases[0]));
}
