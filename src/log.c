/* Minimal log sink; rotation and compression are being added (see log.h). */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "kvvm/log.h"

static enum kvvm_log_level stderr_level = KVVM_LOG_WARN;
static const char *comp = "kvvm";

enum kvvm_err kvvm_log_open(const char *dir, const char *component)
{
  (void)dir;
  comp = component;
  return KVVM_OK;
}

void kvvm_log_close(void) {}
void kvvm_log_set_stderr_level(enum kvvm_log_level lvl) { stderr_level = lvl; }
void kvvm_log_set_limits(size_t max_bytes, int keep) { (void)max_bytes; (void)keep; }

void kvvm_log(enum kvvm_log_level lvl, const char *fmt, ...)
{
  static const char *names[] = {"debug", "info", "warn", "error"};
  if (lvl < stderr_level)
    return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s[%d] %s: ", comp, (int)getpid(), names[lvl]);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}
