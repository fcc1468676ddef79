/* Renewal hooks on Windows: not run by this version. Running them safely needs what the
 * POSIX runner checks (a folder and files only SYSTEM and Administrators can write, a clean
 * environment, a time limit on the whole process tree), which on Windows means DACL checks
 * and job objects: the next issue's work. Until then a hooks folder that holds anything is
 * reported on every certificate that changed, never silently ignored; an empty or absent
 * folder means no hooks, as on Linux. */
#include <stdio.h>

#include "kvvm/fileio.h"
#include "kvvm/hooks.h"
#include "kvvm/mem.h"
#include "kvvm/paths.h"

enum kvvm_err kvvm_hooks_run(const struct kvvm_hooks_opts *opts, const char *const *env,
                             char *why, size_t whylen)
{
  (void)env;
  const char *dir = opts && opts->dir ? opts->dir : kvvm_paths_hooks_dir();
  char **names = NULL;
  if (kvvm_dir_list(dir, &names) != KVVM_OK || !names[0]) {
    kvvm_strv_free(names);
    return KVVM_OK;
  }
  size_t n = 0;
  while (names[n])
    n++;
  kvvm_strv_free(names);
  snprintf(why, whylen, "%s holds %zu file(s), but renewal hooks do not run on Windows in "
           "this version of kvvm", dir, n);
  return KVVM_E_HOOK;
}
