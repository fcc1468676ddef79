/* Renewal hooks: the environment a hook sees (clean, KVVM_* only), no inherited
 * descriptors, its own session, name order, failure isolation, the timeout killing the
 * whole group, unsafe hooks and folders skipped, binaries as well as scripts, output in the
 * log, and the due queue: recorded by the store, replayed after a "crash", cleared once run,
 * with the variables of install, renew and pass. */
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <time.h>

#include "kt.h"
#include "kvvm/clock.h"
#include "kvvm/hooks.h"
#include "kvvm/installed.h"
#include "kvvm/log.h"
#include "kvvm/store.h"
#include "test_store_fx.h"

static char *fx;
static struct kvvm_bundle *ba, *bb, *bc;

struct env {
  char *top, *hooks;
  struct kvvm_hooks_opts o;
};

static void env_init(struct env *e)
{
  e->top = kt_tmpdir();
  e->hooks = kvvm_path_join(e->top, "hooks.d");
  mkdir(e->hooks, 0755);
  e->o = (struct kvvm_hooks_opts){.dir = e->hooks, .timeout_s = 10};
  /* The store asks the default folder whether an install makes hooks due: this one. */
  setenv("KVVM_HOOKS_DIR", e->hooks, 1);
}

static void env_done(struct env *e)
{
  unsetenv("KVVM_HOOKS_DIR");
  kt_rmtree(e->top);
  free(e->top);
  free(e->hooks);
}

/* A hook script: body runs under /bin/sh with $T set to the test folder. */
static void hook(const struct env *e, const char *name, unsigned mode, const char *body)
{
  char *path = kvvm_path_join(e->hooks, name);
  char *text = kvvm_xasprintf("#!/bin/sh\nT='%s'\n%s\n", e->top, body);
  kt_write(path, text);
  chmod(path, mode);
  free(text);
  free(path);
}

__attribute__((noinline)) static char *slurp(const struct env *e, const char *name)
{
  char *path = kvvm_path_join(e->top, name), *text = NULL;
  kvvm_file_read(path, 1 << 20, &text, NULL);
  free(path);
  return text;
}

static bool has(const struct env *e, const char *name)
{
  char *path = kvvm_path_join(e->top, name);
  bool r = kvvm_path_exists(path);
  free(path);
  return r;
}

static void environment_and_isolation(void)
{
  struct env e;
  env_init(&e);
  setenv("KVVM_CANARY", "must-not-leak", 1);
  int canary = open("/dev/null", O_RDONLY);  /* no O_CLOEXEC: a leak would show */
  dup2(canary, 42);
  hook(&e, "10-env", 0755,
       "env | sort >\"$T/env\"\n"
       "[ -e /proc/$$/fd/42 ] && echo leaked >\"$T/fd42\"\n"
       "cat /proc/$$/stat >\"$T/stat\"\n"
       "pwd >\"$T/cwd\"");
  const char *vars[] = {"KVVM_VAULT=kvt", "KVVM_HOOK_EVENT=renew", "KVVM_SANS=a b", NULL};
  char why[512];
  KT_CHECK(kvvm_hooks_run(&e.o, vars, why, sizeof why) == KVVM_OK);
  char *env = slurp(&e, "env"), *stat = slurp(&e, "stat"), *cwd = slurp(&e, "cwd");
  KT_CONTAINS(env, "KVVM_VAULT=kvt\n");
  KT_CONTAINS(env, "KVVM_HOOK_EVENT=renew\n");
  KT_CONTAINS(env, "KVVM_SANS=a b\n");
  KT_CONTAINS(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
  KT_CHECK(env && !strstr(env, "CANARY") && !strstr(env, "HOME="));
  KT_CHECK(!has(&e, "fd42"));
  /* /proc/<pid>/stat: pid (comm) state ppid pgrp session ... */
  long pid = 0, pgrp = 0, sid = 0;
  const char *close_paren = stat ? strrchr(stat, ')') : NULL;
  KT_CHECK(close_paren && sscanf(stat, "%ld", &pid) == 1 &&
           sscanf(close_paren + 2, "%*c %*d %ld %ld", &pgrp, &sid) == 2);
  KT_CHECK(pid > 0 && sid == pid && pgrp == pid);
  KT_STREQ(cwd, "/\n");
  free(env);
  free(stat);
  free(cwd);
  close(42);
  close(canary);
  unsetenv("KVVM_CANARY");
  env_done(&e);
}

static void order_and_failures(void)
{
  struct env e;
  env_init(&e);
  hook(&e, "20-ok", 0755, "echo 20 >>\"$T/order\"");
  hook(&e, "10-fail", 0755, "echo 10 >>\"$T/order\"; exit 3");
  hook(&e, "05-first", 0700, "echo 05 >>\"$T/order\"");
  hook(&e, "30-sig", 0755, "echo 30 >>\"$T/order\"; kill -TERM $$");
  hook(&e, "40-last", 0755, "echo 40 >>\"$T/order\"");
  hook(&e, ".hidden", 0755, "echo hidden >>\"$T/order\"");
  char why[512];
  KT_CHECK(kvvm_hooks_run(&e.o, NULL, why, sizeof why) == KVVM_E_HOOK);
  KT_CONTAINS(why, "10-fail exited 3");
  KT_CONTAINS(why, "30-sig was killed by signal 15");
  char *order = slurp(&e, "order");
  KT_STREQ(order, "05\n10\n20\n30\n40\n");
  free(order);
  env_done(&e);
}

static bool alive(long pid)
{
  char path[64], *text = NULL;
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  if (kvvm_file_read(path, 4096, &text, NULL) != KVVM_OK)
    return false;
  const char *p = strrchr(text, ')');
  bool zombie = p && p[1] == ' ' && p[2] == 'Z';  /* killed, not yet reaped by init */
  free(text);
  return !zombie;
}

static void timeout_kills_group(void)
{
  struct env e;
  env_init(&e);
  e.o.timeout_s = 1;
  hook(&e, "10-slow", 0755, "sleep 300 & echo $! >\"$T/bg\"; echo started; sleep 300");
  hook(&e, "20-after", 0755, "echo ran >\"$T/after\"");
  char why[512];
  int64_t t0 = kvvm_clock_mono_ms();
  KT_CHECK(kvvm_hooks_run(&e.o, NULL, why, sizeof why) == KVVM_E_HOOK);
  int64_t took = kvvm_clock_mono_ms() - t0;
  KT_CHECK(took >= 1000 && took < 3000);
  KT_CONTAINS(why, "10-slow timed out after 1 s (killed)");
  KT_CHECK(has(&e, "after"));
  char *bg = slurp(&e, "bg");
  long pid = bg ? atol(bg) : 0;
  struct timespec pause = {0, 50 * 1000 * 1000};
  for (int i = 0; i < 40 && pid > 0 && alive(pid); i++)
    nanosleep(&pause, NULL);
  KT_CHECK(pid > 0 && !alive(pid));  /* the hook's background child died with it */
  free(bg);
  env_done(&e);
}

static void unsafe_skipped(void)
{
  struct env e;
  env_init(&e);
  hook(&e, "10-world", 0757, "echo 10 >\"$T/ran10\"");
  hook(&e, "20-group", 0775, "echo 20 >\"$T/ran20\"");
  hook(&e, "30-theirs", 0755, "echo 30 >\"$T/ran30\"");
  fx_sh("chown 12345 '%s/30-theirs'", e.hooks);
  fx_sh("printf '#!/bin/sh\\necho 50 >%s/ran50\\n' >'%s/target' && chmod 755 '%s/target' && "
        "ln -s ../target '%s/50-link'", e.top, e.top, e.top, e.hooks);
  hook(&e, "60-noexec", 0644, "echo 60 >\"$T/ran60\"");
  hook(&e, "70-acl", 0755, "echo 70 >\"$T/ran70\"");
  fx_sh("setfacl -m u:12345:rwx '%s/70-acl'", e.hooks);
  fx_sh("mkdir '%s/80-folder'", e.hooks);
  hook(&e, "90-good", 0755, "echo 90 >\"$T/ran90\"");
  char why[1024];
  KT_CHECK(kvvm_hooks_run(&e.o, NULL, why, sizeof why) == KVVM_E_HOOK);
  KT_CONTAINS(why, "10-world skipped as unsafe: writable by everyone");
  KT_CONTAINS(why, "20-group skipped as unsafe: writable by its group");
  KT_CONTAINS(why, "30-theirs skipped as unsafe: owned by uid 12345");
  KT_CONTAINS(why, "50-link skipped: a symbolic link");
  KT_CONTAINS(why, "70-acl skipped as unsafe: writable through an ACL entry (uid 12345)");
  KT_CHECK(!strstr(why, "60-noexec") && !strstr(why, "80-folder"));
  KT_CHECK(!has(&e, "ran10") && !has(&e, "ran20") && !has(&e, "ran30") && !has(&e, "ran50") &&
           !has(&e, "ran60") && !has(&e, "ran70") && has(&e, "ran90"));
  /* A folder others can write: no hook runs at all. */
  fx_sh("rm -f '%s/ran90'; chmod 777 '%s'", e.top, e.hooks);
  KT_CHECK(kvvm_hooks_run(&e.o, NULL, why, sizeof why) == KVVM_E_HOOK);
  KT_CONTAINS(why, "no hook run: folder");
  KT_CONTAINS(why, "writable by everyone");
  KT_CHECK(!has(&e, "ran90"));
  /* No folder: no hooks, no error. */
  struct kvvm_hooks_opts none = {.dir = "/nonexistent/kvvm-hooks.d"};
  KT_CHECK(kvvm_hooks_run(&none, NULL, why, sizeof why) == KVVM_OK);
  env_done(&e);
}

/* Binaries run too (their descriptor stays close-on-exec); output lands in the log. */
static void binaries_and_output(void)
{
  struct env e;
  env_init(&e);
  KT_CHECK(kvvm_log_open(e.top, "test_hooks") == KVVM_OK);
  fx_sh("cp /bin/true '%s/10-true' && cp /bin/false '%s/20-false'", e.hooks, e.hooks);
  hook(&e, "30-talk", 0755, "echo hello from hook; echo oops >&2; printf 'no newline'");
  char why[512];
  KT_CHECK(kvvm_hooks_run(&e.o, NULL, why, sizeof why) == KVVM_E_HOOK);
  KT_STREQ(why, "20-false exited 1");
  kvvm_log_close();
  char *log = slurp(&e, "kvvm.log");
  KT_CONTAINS(log, "hook 10-true: ok");
  KT_CONTAINS(log, "hook 30-talk: hello from hook");
  KT_CONTAINS(log, "hook 30-talk: oops");
  KT_CONTAINS(log, "hook 30-talk: no newline");
  free(log);
  env_done(&e);
}

static char *var(const char *text, const char *name)
{
  char *key = kvvm_xasprintf("\n%s=", name), *buf = kvvm_xasprintf("\n%s", text ? text : "");
  const char *p = strstr(buf, key);
  char *v = p ? kvvm_xasprintf("%.*s", (int)strcspn(p + strlen(key), "\n"), p + strlen(key)) :
                NULL;
  free(key);
  free(buf);
  return v;
}

static void check_var(const char *text, const char *name, const char *want)
{
  char *v = var(text, name);
  KT_STREQ(v, want);
  free(v);
}

static enum kvvm_err pass(struct kvvm_store *s, const struct kvvm_cert_cfg *cc,
                          const struct kvvm_bundle *b, const char *version,
                          const struct kvvm_hooks_opts *o)
{
  struct kvvm_install_result res;
  enum kvvm_err rc = kvvm_store_install(s, cc, b, version, &res);
  kvvm_install_result_clear(&res);
  if (kvvm_store_commit(s) != KVVM_OK)
    return KVVM_E_IO;
  return rc != KVVM_OK ? rc : kvvm_hooks_run_due(kvvm_store_installed(s), o);
}

static ino_t inode_of(const char *dir, const char *name)
{
  char *p = kvvm_path_join(dir, name);
  struct stat st;
  ino_t ino = stat(p, &st) == 0 ? st.st_ino : 0;
  free(p);
  return ino;
}

/* A hooks folder with no hook (empty, or only hidden names): an install marks nothing due and the hook run after the
 * commit saves nothing; a hook placed before the next pass makes that pass's install due. */
static void no_hooks_no_marks(void)
{
  struct env e;
  env_init(&e);
  char *state = kvvm_path_join(e.top, "state"), *store = kvvm_path_join(e.top, "store");
  struct kvvm_store_opts so = {.state_dir = state};
  struct kvvm_store *s = NULL;
  struct kvvm_cert_cfg cc = fx_cc("c1", store, NULL);
  struct kvvm_installed_cert ic;
  kvvm_store_open(&so, &s);
  hook(&e, ".10-hidden", 0755, "echo hidden >>\"$T/ran\"");  /* no runner takes it */
  KT_CHECK(pass(s, &cc, ba, "v1", &e.o) == KVVM_OK);
  KT_CHECK(kvvm_installed_get(kvvm_store_installed(s), cc.url, store, &ic) && !ic.hook_due);
  ino_t saved = inode_of(state, "installed.json");
  KT_CHECK(saved != 0);
  KT_CHECK(kvvm_hooks_run_due(kvvm_store_installed(s), &e.o) == KVVM_OK);
  KT_CHECK(inode_of(state, "installed.json") == saved);  /* nothing to save */
  hook(&e, "10-rec", 0755, "echo \"$KVVM_HOOK_EVENT\" >>\"$T/ran\"");
  KT_CHECK(pass(s, &cc, bb, "v2", &e.o) == KVVM_OK);
  char *ran = slurp(&e, "ran");
  KT_STREQ(ran, "renew\npass\n");
  free(ran);
  kvvm_store_close(s);
  fx_cc_free(&cc);
  free(state);
  free(store);
  env_done(&e);
}

/* The store records hooks as due in the save that records the install; a crash before
 * they ran replays them; once run they are cleared. */
static void due_queue(void)
{
  struct env e;
  env_init(&e);
  char *state = kvvm_path_join(e.top, "state"), *store = kvvm_path_join(e.top, "store");
  hook(&e, "10-rec", 0755, "env | grep ^KVVM_ | sort >\"$T/$KVVM_HOOK_EVENT.${KVVM_VERSION:-x}\"");
  struct kvvm_store_opts so = {.state_dir = state};
  struct kvvm_store *s = NULL;
  struct kvvm_cert_cfg cc = fx_cc("c1", store, NULL);
  struct kvvm_install_result res;
  kvvm_store_open(&so, &s);
  KT_CHECK(kvvm_store_install(s, &cc, ba, "v1", &res) == KVVM_OK);
  KT_CHECK(kvvm_store_commit(s) == KVVM_OK);
  kvvm_store_close(s);  /* "crash": the hooks never ran */
  KT_CHECK(!has(&e, "install.v1"));
  struct kvvm_installed *st = NULL;
  kvvm_installed_load(state, &st);
  KT_CHECK(kvvm_hooks_run_due(st, &e.o) == KVVM_OK);
  kvvm_installed_free(st);
  char *t = slurp(&e, "install.v1"), *p = slurp(&e, "pass.x");
  check_var(t, "KVVM_HOOK_EVENT", "install");
  check_var(t, "KVVM_URL", cc.url);
  check_var(t, "KVVM_VAULT", "kvt");
  check_var(t, "KVVM_SECRET", "c1");
  check_var(t, "KVVM_VERSION", "v1");
  check_var(t, "KVVM_PREVIOUS_VERSION", "");
  check_var(t, "KVVM_FILE", res.file);
  check_var(t, "KVVM_LINK", res.link);
  check_var(t, "KVVM_PFX", "");
  check_var(t, "KVVM_STORE_DIR", store);
  check_var(t, "KVVM_THUMBPRINT", kvvm_bundle_facts(ba)->thumbprint);
  check_var(t, "KVVM_SANS", "a.example.com www.a.example.com");
  check_var(t, "KVVM_SANS_MATCH_PREVIOUS", "0");
  char when[32];
  struct tm tm;
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ",
           gmtime_r(&kvvm_bundle_facts(ba)->not_after, &tm));
  check_var(t, "KVVM_NOT_AFTER", when);
  check_var(t, "KVVM_FILES_DIR", "");  /* no fileLayout: present and empty */
  check_var(t, "KVVM_FULLCHAIN_FILE", "");
  check_var(t, "KVVM_KEY_FILE", "");
  check_var(p, "KVVM_HOOK_EVENT", "pass");
  check_var(p, "KVVM_CHANGED_COUNT", "1");
  check_var(p, "KVVM_CHANGED_LINKS", res.link);
  free(t);
  free(p);
  kvvm_install_result_clear(&res);
  /* Run once: nothing is due any more, and an unchanged certificate makes nothing due. */
  fx_sh("rm -f '%s/install.v1' '%s/pass.x'", e.top, e.top);
  kvvm_store_open(&so, &s);
  KT_CHECK(pass(s, &cc, ba, "v1", &e.o) == KVVM_OK);
  KT_CHECK(!has(&e, "install.v1") && !has(&e, "pass.x"));
  /* Renewal with the same SANs, then with other SANs. */
  KT_CHECK(pass(s, &cc, bb, "v2", &e.o) == KVVM_OK);
  t = slurp(&e, "renew.v2");
  check_var(t, "KVVM_PREVIOUS_VERSION", "v1");
  check_var(t, "KVVM_PREVIOUS_THUMBPRINT", kvvm_bundle_facts(ba)->thumbprint);
  check_var(t, "KVVM_THUMBPRINT", kvvm_bundle_facts(bb)->thumbprint);
  check_var(t, "KVVM_SANS_MATCH_PREVIOUS", "1");
  free(t);
  KT_CHECK(pass(s, &cc, bc, "v3", &e.o) == KVVM_OK);
  t = slurp(&e, "renew.v3");
  check_var(t, "KVVM_SANS_MATCH_PREVIOUS", "0");
  check_var(t, "KVVM_SANS", "c.example.com www.c.example.com");
  free(t);
  /* A failing hook is the certificate's (and the pass's) hook_error, cleared when fixed. */
  hook(&e, "20-fail", 0755, "exit 4");
  KT_CHECK(pass(s, &cc, ba, "v4", &e.o) == KVVM_E_HOOK);
  struct kvvm_installed_cert ic;
  KT_CHECK(kvvm_installed_get(kvvm_store_installed(s), cc.url, store, &ic));
  KT_STREQ(ic.hook_error, "20-fail exited 4");
  KT_STREQ(kvvm_installed_pass_hook_error(kvvm_store_installed(s)), "20-fail exited 4");
  /* It stays due for the next passes (kvvmd retries them on its backoff), until
   * KVVM_HOOK_MAX_TRIES runs for this version have failed; the error stays after that. */
  KT_CHECK(ic.hook_due);
  int runs = 1;
  while (runs < KVVM_HOOK_MAX_TRIES + 2 &&
         kvvm_installed_get(kvvm_store_installed(s), cc.url, store, &ic) && ic.hook_due) {
    KT_CHECK(kvvm_hooks_run_due(kvvm_store_installed(s), &e.o) == KVVM_E_HOOK);
    runs++;
  }
  KT_CHECK(runs == KVVM_HOOK_MAX_TRIES);
  KT_CHECK(kvvm_installed_get(kvvm_store_installed(s), cc.url, store, &ic) && !ic.hook_due);
  KT_STREQ(ic.hook_error, "20-fail exited 4");
  hook(&e, "20-fail", 0755, "exit 0");
  KT_CHECK(pass(s, &cc, bb, "v5", &e.o) == KVVM_OK);
  KT_CHECK(kvvm_installed_get(kvvm_store_installed(s), cc.url, store, &ic) && !ic.hook_error);
  KT_CHECK(!kvvm_installed_pass_hook_error(kvvm_store_installed(s)));
  kvvm_store_close(s);
  fx_cc_free(&cc);
  free(state);
  free(store);
  env_done(&e);
}

int main(void)
{
  kvvm_log_set_stderr_level((enum kvvm_log_level)(KVVM_LOG_ERR + 1));
  fx = kt_tmpdir();
  if (!fx || fx_gen(fx) != 0) {
    fprintf(stderr, "cannot make certificates with openssl\n");
    return 1;
  }
  ba = fx_bundle(fx, "a");
  bb = fx_bundle(fx, "b");
  bc = fx_bundle(fx, "c");
  static const struct kt_case cases[] = {
      KT_CASE(environment_and_isolation), KT_CASE(order_and_failures),
      KT_CASE(timeout_kills_group),       KT_CASE(unsafe_skipped),
      KT_CASE(binaries_and_output),       KT_CASE(due_queue), KT_CASE(no_hooks_no_marks),
  };
  int rc = KT_RUN("hooks", cases);
  kvvm_bundle_free(ba);
  kvvm_bundle_free(bb);
  kvvm_bundle_free(bc);
  kt_rmtree(fx);
  free(fx);
  return rc;
}
