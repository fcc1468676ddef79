/* Sequence numbers. The agent passes the goal state's number in ConfigSequenceNumber; the
 * newest settings file by mtime is its own fallback. Numbers may repeat with new content
 * and restart at 0 after a re-add, so nothing here assumes they only grow. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"
#include "kvvm/seqno.h"

/* Parse a whole non-negative decimal number; -1 if s is anything else. */
static long parse_seq(const char *s, const char *end)
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
  return parse_seq(name, dot);
}

static enum kvvm_err newest_settings(const char *config_dir, long *out)
{
  DIR *d = opendir(config_dir);
  if (!d) {
    KVVM_ERR("%s: %s", config_dir, strerror(errno));
    return KVVM_E_SEQNO;
  }
  long best = -1;
  struct timespec best_t = {0, 0};
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    long seq = settings_file_seq(e->d_name);
    struct stat st;
    if (seq < 0 || fstatat(dirfd(d), e->d_name, &st, 0) != 0)
      continue;
    struct timespec t = st.st_mtim;
    int newer = t.tv_sec > best_t.tv_sec ||
                (t.tv_sec == best_t.tv_sec && t.tv_nsec > best_t.tv_nsec);
    int tie = t.tv_sec == best_t.tv_sec && t.tv_nsec == best_t.tv_nsec;
    if (best < 0 || newer || (tie && seq > best)) {
      best = seq;
      best_t = t;
    }
  }
  closedir(d);
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
    long v = parse_seq(env, env + strlen(env));
    if (v >= 0) {
      *out = v;
      return KVVM_OK;
    }
    KVVM_WARN("ConfigSequenceNumber=\"%.32s\" is not a number; using the newest settings file",
              env);
  }
  return newest_settings(config_dir, out);
}

enum kvvm_err kvvm_seqno_read_mrseq(const char *root, long *out)
{
  char *path = kvvm_path_join(root, "mrseq"), *text = NULL;
  enum kvvm_err rc = kvvm_file_read(path, 64, &text, NULL);
  if (rc == KVVM_OK) {
    char *end = text + strcspn(text, " \t\r\n");
    long v = parse_seq(text, end);
    if (v < 0) {
      KVVM_WARN("%s holds no number; ignoring it", path);
      rc = KVVM_E_NOENT;
    } else {
      *out = v;
    }
  }
  free(text);
  free(path);
  return rc;
}

enum kvvm_err kvvm_seqno_write_mrseq(const char *root, long seq)
{
  char *path = kvvm_path_join(root, "mrseq");
  char buf[32];
  int n = snprintf(buf, sizeof(buf), "%ld", seq);
  enum kvvm_err rc = kvvm_file_write_atomic(path, buf, (size_t)n, 0600);
  free(path);
  return rc;
}
