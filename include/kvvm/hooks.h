/* Renewal hooks (design.md, Install and renewal): the executables in the hooks folder
 * (KVVM_HOOKS_DIR, default /etc/kvvm/hooks.d), run in name order after a certificate is
 * installed or renewed (KVVM_HOOK_EVENT=install|renew) and once per pass in which anything
 * changed (KVVM_HOOK_EVENT=pass). The folder chain and each file must be root's and not
 * writable by anyone else; the checked descriptor is what runs (fexecve). Each hook gets a
 * clean environment (PATH and the KVVM_* variables), /dev/null as stdin, no other inherited
 * descriptor, its own session, and is killed with its whole process group on timeout; its
 * output goes to the kvvm log. The execution is hooks_posix.c; the due queue hooks.c.
 * On Windows (hooks_windows.c; README, Renewal hooks on Windows): .exe, .cmd/.bat and .ps1
 * files in %ProgramData%\kvvm\hooks, refused when anyone but SYSTEM, Administrators and
 * TrustedInstaller can change them or the two folders above; each in a job object ended on
 * timeout; KVVM_STORE_LOCATION and KVVM_STORE_NAME added, split from KVVM_STORE_DIR.
 *
 * Variables for install/renew: KVVM_URL, KVVM_VAULT, KVVM_SECRET, KVVM_VERSION,
 * KVVM_PREVIOUS_VERSION, KVVM_STORE_DIR, KVVM_FILE, KVVM_LINK, KVVM_PFX, KVVM_THUMBPRINT,
 * KVVM_PREVIOUS_THUMBPRINT, KVVM_SANS (space-separated), KVVM_SANS_MATCH_PREVIOUS (1 or 0),
 * KVVM_NOT_AFTER (ISO 8601 UTC). For pass: KVVM_CHANGED_COUNT and KVVM_CHANGED_LINKS
 * (the stable names that changed, one per line). Empty values are present and empty. */
#ifndef KVVM_HOOKS_H
#define KVVM_HOOKS_H

#include "kvvm/err.h"
#include "kvvm/installed.h"

#define KVVM_HOOK_TIMEOUT_DEFAULT_S 60

/* A certificate's install/renew hooks that fail are run again after later passes, this
 * many runs in all for one version; the error stays on the certificate after the last. */
#define KVVM_HOOK_MAX_TRIES 8

struct kvvm_hooks_opts {
  const char *dir;  /* NULL: kvvm_paths_hooks_dir() */
  int timeout_s;    /* per hook; 0: KVVM_HOOK_TIMEOUT_DEFAULT_S */
};

/* Run every hook with env ("NAME=value" strings, NULL-terminated) added to the clean base.
 * A hook that fails, times out or is unsafe (then skipped) does not stop the others; all
 * such are logged and summed up in why ("20-reload exited 3; 30-slow timed out after
 * 60 s"), and the result is KVVM_E_HOOK. No folder means no hooks (KVVM_OK). */
KVVM_API enum kvvm_err kvvm_hooks_run(const struct kvvm_hooks_opts *opts,
                                      const char *const *env, char *why, size_t whylen);

/* Run what the installed state records as due: each certificate's install/renew hooks in
 * the order they became due, then the pass hooks once. Each due mark is cleared only after
 * its hooks ran, and the state is saved after each stage, so a crash replays (never loses)
 * a hook; call this at kvvmd start for what a crash left, and after kvvm_store_commit.
 * Failures go to the record's hook_error (the pass's to kvvm_installed_pass_hook_error), and
 * a failed certificate's hooks stay due (KVVM_HOOK_MAX_TRIES);
 * returns KVVM_E_HOOK when there were any, KVVM_E_STATE when the state cannot be saved. */
KVVM_API enum kvvm_err kvvm_hooks_run_due(struct kvvm_installed *st,
                                          const struct kvvm_hooks_opts *opts);

#endif
