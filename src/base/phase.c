/* Per-phase totals for the KVVM_PHASES_FILE testing aid (kvvm/phase.h). The variable is read
 * once; the file is opened only to append the line, so a pass without it writes nothing. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/phase.h"
#include "base/phase_int.h"

static const char *const names[KVVM_PHASE_COUNT] = {
  "setup", "tokens", "fetch", "local_wait", "drain", "parse", "record", "decode", "install", "flush",
  "commit", "save", "hooks", "answer"};

static struct {
  int64_t wall_ns, cpu_ns, count;
} totals[KVVM_PHASE_COUNT];

static const char *target(void)
{
  static bool read;
  static const char *path;
  if (!read) {
    path = getenv("KVVM_PHASES_FILE");
    path = path && *path ? path : NULL;
    read = true;
  }
  return path;
}

void kvvm_phase_begin(struct kvvm_phase_mark *m)
{
  m->wall_ns = m->cpu_ns = 0;
  if (!target())
    return;
  m->wall_ns = kvvm_phase_os_wall_ns();
  m->cpu_ns = kvvm_phase_os_cpu_ns(0);
}

void kvvm_phase_end(enum kvvm_phase p, const struct kvvm_phase_mark *m)
{
  if (!target() || p < 0 || p >= KVVM_PHASE_COUNT)
    return;
  totals[p].wall_ns += kvvm_phase_os_wall_ns() - m->wall_ns;
  totals[p].cpu_ns += kvvm_phase_os_cpu_ns(0) - m->cpu_ns;
  totals[p].count++;
}

void kvvm_phase_write(void)
{
  const char *path = target();
  FILE *f = path ? fopen(path, "a") : NULL;
  if (!f)
    return;   /* a testing aid: a file it cannot open only loses the figures */
  fprintf(f, "{\"process_cpu_ms\": %.3f", kvvm_phase_os_cpu_ns(1) / 1e6);
  for (int p = 0; p < KVVM_PHASE_COUNT; p++)
    fprintf(f, ", \"%s\": {\"wall_ms\": %.3f, \"cpu_ms\": %.3f, \"count\": %lld}", names[p],
            totals[p].wall_ns / 1e6, totals[p].cpu_ns / 1e6, (long long)totals[p].count);
  fputs("}\n", f);
  fclose(f);
  memset(totals, 0, sizeof totals);
}
