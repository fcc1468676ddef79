/* kvvm, the operator's command line: status, check-settings, wait, sync-now, run, --version.
 * kvvm_cli_main is the one entry the thin main calls; the rest is shared between the
 * src/cli*.c files only (hidden in the library). */
#ifndef KVVM_CLI_H
#define KVVM_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include "kvvm/err.h"
#include "kvvm/settings.h"

/* Returns the process exit code. */
KVVM_API int kvvm_cli_main(int argc, char **argv);

/* Exit codes shared by the subcommands (README, Command line). */
enum {
  KVVM_CLI_OK = 0,
  KVVM_CLI_FAIL = 1,        /* invalid settings, a certificate in error, timeout, not installed */
  KVVM_CLI_USAGE = 2,       /* wrong command-line use; nothing done */
  KVVM_CLI_NOT_RUNNING = 3, /* status: kvvmd does not run; run: kvvmd (or a run) holds the lock */
};

/* Read a settings document from path ("-": stdin) in any of the forms users hold: the ARM
 * `settings` object, a whole extension resource (ARM template or `az vm extension show`), or
 * the agent's <seq>.settings envelope; a JSON string holding the settings (the PowerShell
 * form) is decoded once with a warning. On success *form names the form read. Errors and
 * warnings name the key path as the user wrote it. */
enum kvvm_err kvvm_cli_load_doc(const char *path, struct kvvm_config **out, const char **form,
                                char *why, size_t whylen);
/* The settings kvvmd serves: the package's mrseq (enable writes it), read as kvvmd reads
 * them. NULL (why says why) outside a package folder, before enable, or when invalid. */
struct kvvm_config *kvvm_cli_served_config(char *why, size_t whylen);
/* True when argv[2..] asks for help; then text has been printed. */
bool kvvm_cli_wants_help(int argc, char **argv, const char *text);
/* The library logs its errors to stderr; while true nothing is, because the caller prints
 * the reason itself (in the user's key paths) and would otherwise say it twice. */
void kvvm_cli_quiet(bool quiet);
/* A time as "2026-05-01 12:00 UTC" ("-" for 0). */
void kvvm_cli_time(time_t t, char *buf, size_t n);

int kvvm_cli_status(int argc, char **argv);
int kvvm_cli_check(int argc, char **argv);
int kvvm_cli_run(int argc, char **argv);

#endif
