/* Sequence numbers. The agent passes the goal state's number in ConfigSequenceNumber; the
 * newest settings file by mtime is its own fallback. Numbers may repeat with new content
 * and restart at 0 after a re-add, so nothing here assumes they only grow. The record of the
 * most recent one processed is the platform's: seqno_posix.c, seqno_windows.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/seqno.h"
#include "agent/seqno_int.h"

long kvvm_seqno_parse(const char *s, const char *end)
{
  if (s == end || end - s > 9)
    return -1;
  long v = 0;
  for (const char *p = s; p < end; p++) {
    if (*p < '0' || *p > '9')
      return -1;
    v = v * 10 + (*p - '0');
  }
  return v;
}

static long settings_file_seq(const char *name)
{
  const char *dot = strchr(name, '.');
  if (!dot || strcmp(dot, ".settings") != 0)
    return -1;
  return kvvm_seqno_parse(name, dot);
}

/* The mtime of config_dir/name, or -1 when it cannot be read. */
static int64_t mtime_of(const char *config_dir, const char *name)
{
  char *path = kvvm_path_join(config_dir, name);
  struct kvvm_file_info fi;
  int64_t t = kvvm_file_info(path, &fi) == KVVM_OK ? fi.mtime_ns : -1;
  free(path);
  return t;
}

static enum kvvm_err newest_settings(const char *config_dir, long *out)
{
  char **names = NULL;
  enum kvvm_err rc = kvvm_dir_list(config_dir, &names);
  if (rc == KVVM_E_NOENT)
    KVVM_ERR("%s: no such folder", config_dir);
  if (rc != KVVM_OK)
    return KVVM_E_SEQNO;
  long best = -1;
  int64_t best_t = 0;
  for (char **n = names; *n; n++) {
    long seq = settings_file_seq(*n);
    int64_t t = seq < 0 ? -1 : mtime_of(config_dir, *n);
    if (t >= 0 && (best < 0 || t > best_t || (t == best_t && seq > best))) {
      best = seq;
      best_t = t;
    }
  }
  kvvm_strv_free(names);
  if (best < 0) {
    KVVM_ERR("%s: no <n>.settings file and no ConfigSequenceNumber", config_dir);
    return KVVM_E_SEQNO;
  }
  *out = best;
  return KVVM_OK;
}

enum kvvm_err kvvm_seqno_current(const char *config_dir, long *out)
{
  const char *env = getenv("ConfigSequenceNumber");
  if (env && *env) {
    long v = kvvm_seqno_parse(env, env + strlen(env));
    if (v >= 0) {
      *out = v;
      return KVVM_OK;
    }
    KVVM_WARN("ConfigSequenceNumber=\"%.32s\" is not a number; using the newest settings file",
              env);
  }
  return newest_settings(config_dir, out);
}
