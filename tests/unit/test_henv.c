/* HandlerEnvironment.json: the agent's real shape, where it is looked for, what is refused. */
#include <stdlib.h>

#include "kt.h"
#include "kvvm/clock.h"
#include "kvvm/fileio.h"
#include "kvvm/henv.h"
#include "kvvm/mem.h"

/* The folders the agent names are absolute: on Windows that takes a drive. */
#ifdef _WIN32
#define ABS "C:"
#else
#define ABS ""
#endif

/* As waagent 2.7.3 writes it (agent-protocol.md §2): an array of one, schema version 1.0. */
static const char *agent_text =
    "[{\"name\": \"Kvvm.Azure.KeyVaultCerts\", \"version\": 1.0, \"handlerEnvironment\": {"
    "\"logFolder\": \"" ABS "/var/log/azure/Kvvm.Azure.KeyVaultCerts\","
    "\"configFolder\": \"" ABS "/var/lib/waagent/Kvvm.Azure.KeyVaultCerts-0.1.0/config\","
    "\"statusFolder\": \"" ABS "/var/lib/waagent/Kvvm.Azure.KeyVaultCerts-0.1.0/status\","
    "\"heartbeatFile\": \"" ABS "/var/lib/waagent/Kvvm.Azure.KeyVaultCerts-0.1.0/heartbeat.log\","
    "\"eventsFolder\": \"" ABS "/var/log/azure/Kvvm.Azure.KeyVaultCerts/events\","
    "\"eventsFolder_preview\": \"" ABS "/var/log/azure/Kvvm.Azure.KeyVaultCerts/events\"}}]";

static void parses_agent_shape(void)
{
  struct kvvm_henv *h = NULL;
  KT_CHECK(kvvm_henv_parse(agent_text, "/pkg", &h) == KVVM_OK);
  KT_CHECK(h != NULL);
  if (!h)
    return;
  KT_STREQ(h->root, "/pkg");
  KT_STREQ(h->log_dir, ABS "/var/log/azure/Kvvm.Azure.KeyVaultCerts");
  KT_STREQ(h->status_dir, ABS "/var/lib/waagent/Kvvm.Azure.KeyVaultCerts-0.1.0/status");
  KT_STREQ(h->config_dir, ABS "/var/lib/waagent/Kvvm.Azure.KeyVaultCerts-0.1.0/config");
  KT_STREQ(h->heartbeat_file,
           ABS "/var/lib/waagent/Kvvm.Azure.KeyVaultCerts-0.1.0/heartbeat.log");
  kvvm_henv_free(h);
}

static void refuses_bad_shapes(void)
{
  static const char *bad[] = {
      "", "[]", "not json", "[{\"handlerEnvironment\": 3}]",
      "[{\"handlerEnvironment\": {\"logFolder\": \"" ABS "/l\", \"configFolder\": \"" ABS "/c\"}}]",
      "[{\"handlerEnvironment\": {\"logFolder\": \"rel\", \"configFolder\": \"" ABS "/c\","
      " \"statusFolder\": \"" ABS "/s\"}}]",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct kvvm_henv *h = (struct kvvm_henv *)1;
    KT_CHECK(kvvm_henv_parse(bad[i], "/pkg", &h) == KVVM_E_HENV);
    KT_CHECK(h == NULL);
  }
}

/* Heartbeat is optional (and never relied on): null or absent is fine. */
static void heartbeat_optional(void)
{
  struct kvvm_henv *h = NULL;
  KT_CHECK(kvvm_henv_parse("[{\"handlerEnvironment\": {\"logFolder\": \"" ABS "/l\","
                           " \"configFolder\": \"" ABS "/c\", \"statusFolder\": \"" ABS
                           "/s\", \"heartbeatFile\": null}}]",
                           "/p", &h) == KVVM_OK);
  KT_CHECK(h && h->heartbeat_file == NULL);
  kvvm_henv_free(h);
}

/* The binaries live in <package>/bin: the file is found one folder up, and the agent's
 * AZURE_GUEST_AGENT_EXTENSION_PATH wins over both. */
static void found_beside_or_above(void)
{
  char *dir = kt_tmpdir();
  char *bin = kvvm_path_join(dir, "bin"), *exe = kvvm_path_join(bin, "enable");
  char *file = kvvm_path_join(dir, "HandlerEnvironment.json");
  kt_mkdir(bin);
  kt_write(file, agent_text);
  kt_unsetenv("AZURE_GUEST_AGENT_EXTENSION_PATH");
  struct kvvm_henv *h = NULL;
  KT_CHECK(kvvm_henv_load(exe, &h) == KVVM_OK);
  KT_PATHEQ(h ? h->root : NULL, dir);
  kvvm_henv_free(h);
  h = NULL;
  kt_setenv("AZURE_GUEST_AGENT_EXTENSION_PATH", dir);
  KT_CHECK(kvvm_henv_load("/nonexistent/bin/enable", &h) == KVVM_OK);
  KT_PATHEQ(h ? h->root : NULL, dir);
  kvvm_henv_free(h);
  h = NULL;
  kt_setenv("AZURE_GUEST_AGENT_EXTENSION_PATH", bin);
  KT_CHECK(kvvm_henv_load("/nonexistent/bin/enable", &h) == KVVM_E_HENV);
  kt_unsetenv("AZURE_GUEST_AGENT_EXTENSION_PATH");
  kt_rmtree(dir);
  free(file);
  free(exe);
  free(bin);
  free(dir);
}

/* The schema version is a number from the agent and a string from Azure Arc; neither is
 * refused, and neither is taken for the extension's version. */
static void version_number_or_string(void)
{
  static const char *const versions[] = {"1.0", "\"1.0\"", "1", "\"2.0\""};
  for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
    char *text = kvvm_xasprintf("[{\"version\": %s, \"handlerEnvironment\": {\"logFolder\":"
                                " \"" ABS "/l\", \"configFolder\": \"" ABS "/c\","
                                " \"statusFolder\": \"" ABS "/s\"}}]",
                                versions[i]);
    struct kvvm_henv *h = NULL;
    KT_CHECK(kvvm_henv_parse(text, "/p", &h) == KVVM_OK);
    KT_STREQ(h ? h->status_dir : NULL, ABS "/s");
    kvvm_henv_free(h);
    free(text);
  }
}

/* Text written to path after ms, by another thread, as the agent would while a command is
 * starting (the reader sees only the file system, whoever writes). */
struct later {
  const char *path, *text;
  long ms;
  int rc;
  struct kt_thread t;
};

static void write_body(void *p)
{
  struct later *w = p;
  kt_sleep_ms(w->ms);
  w->rc = kvvm_file_write_atomic(w->path, w->text, strlen(w->text), 0600) == KVVM_OK ? 0 : 1;
}

static void write_later(struct later *w, const char *path, const char *text, long ms)
{
  *w = (struct later){.path = path, .text = text, .ms = ms, .rc = -1};
  if (kt_thread_start(&w->t, write_body, w) != 0)
    w->t.fn = NULL;
}

static int reap(struct later *w)
{
  if (w->t.fn)
    kt_thread_join(&w->t);
  return w->rc;
}

/* Missing, or cut short as the agent writes it: read again after a pause, so a file that
 * turns up or is completed within the retries is taken; one that stays bad fails after
 * all of them (100+200+400+800 ms of pauses). */
static void retried_while_written(void)
{
  char *dir = kt_tmpdir();
  char *file = kvvm_path_join(dir, "HandlerEnvironment.json");
  char *exe = kvvm_xasprintf("%s/bin/enable", dir);
  struct kvvm_henv *h = NULL;
  kt_unsetenv("AZURE_GUEST_AGENT_EXTENSION_PATH");
  int64_t t0 = kvvm_clock_mono_ms();
  struct later w;
  write_later(&w, file, agent_text, 250);
  KT_CHECK(kvvm_henv_load(exe, &h) == KVVM_OK);
  KT_CHECK(kvvm_clock_mono_ms() - t0 >= 250);
  KT_PATHEQ(h ? h->root : NULL, dir);
  KT_CHECK(reap(&w) == 0);
  kvvm_henv_free(h);
  h = NULL;
  kt_write(file, "[{\"version\": 1.0, \"handlerEnv");   /* cut short */
  write_later(&w, file, agent_text, 250);
  KT_CHECK(kvvm_henv_load(exe, &h) == KVVM_OK && h && h->log_dir);
  KT_CHECK(reap(&w) == 0);
  kvvm_henv_free(h);
  h = (struct kvvm_henv *)1;
  kt_write(file, "[{\"version\": 1.0}]");
  t0 = kvvm_clock_mono_ms();
  KT_CHECK(kvvm_henv_load(exe, &h) == KVVM_E_HENV && h == NULL);
  int64_t took = kvvm_clock_mono_ms() - t0;
  KT_CHECK(took >= 1500 && took < 3000);
  kt_rmtree(dir);
  free(exe);
  free(file);
  free(dir);
}

int main(void)
{
  static const struct kt_case cases[] = {KT_CASE(parses_agent_shape), KT_CASE(refuses_bad_shapes),
                                         KT_CASE(heartbeat_optional),
                                         KT_CASE(found_beside_or_above),
                                         KT_CASE(version_number_or_string),
                                         KT_CASE(retried_while_written)};
  return KT_RUN("henv", cases);
}
