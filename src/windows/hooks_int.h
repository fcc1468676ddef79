/* What the Windows hook runner's files share (module hooks): the safety rule
 * (hooks_acl_windows.c) and how one hook is started and watched (hooks_proc_windows.c), both
 * used by hooks_windows.c and tested by tests/windows/test_hooks_win.c. */
#ifndef KVVM_HOOKS_INT_H
#define KVVM_HOOKS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <windows.h>

/* How a hook is run, by its name's extension (any case). */
enum hook_kind { HOOK_NONE, HOOK_EXE, HOOK_CMD, HOOK_PS1 };

enum hook_kind kvvm_hooks_kind(const char *name);

/* Why the object sd describes (its owner and DACL) lets an account other than SYSTEM,
 * Administrators and TrustedInstaller change it, in words naming the account and the right;
 * "" when it does not. folder: the object is a folder (FILE_ADD_FILE, not FILE_WRITE_DATA).
 * Reads sd only (and names SIDs through LookupAccountSidW): the unit tests feed it SDDL. */
void kvvm_hooks_sd_fault(PSECURITY_DESCRIPTOR sd, bool folder, char *why, size_t n);

/* The same for an open handle (GetSecurityInfo on it); path for the wine testing aid. */
void kvvm_hooks_handle_fault(HANDLE h, const char *path, bool folder, char *why, size_t n);

/* The program to start for a hook of that kind at path (a System32 interpreter or the hook
 * itself) and its whole command line; false for HOOK_NONE. Both malloc'd. */
bool kvvm_hooks_command(enum hook_kind kind, const wchar_t *path, wchar_t **app,
                        wchar_t **cmdline);

/* The hook's environment block (CREATE_UNICODE_ENVIRONMENT, sorted by name): the clean
 * base (SystemRoot, windir, SystemDrive, ComSpec, PATH, PATHEXT, TEMP, TMP, ProgramData,
 * ProgramFiles), env's "NAME=value" strings, and KVVM_STORE_LOCATION and KVVM_STORE_NAME
 * split from KVVM_STORE_DIR ("LocalMachine\MY"). NULL for a value that is not UTF-8. */
wchar_t *kvvm_hooks_env_block(const char *const *env);

/* How one hook ended. */
enum hook_end { HOOK_EXITED, HOOK_TIMED_OUT, HOOK_STOPPED, HOOK_NOT_STARTED };

/* Start the hook (app, cmdline) with envblock, stdin NUL and its output into the log as
 * "hook <name>: <line>", in a job that is ended (the whole tree) on timeout, on kvvm's stop
 * event, and when the hook exits. *code: its exit code, or the Win32 error of a start that
 * failed. */
enum hook_end kvvm_hooks_spawn(const char *name, const wchar_t *app, wchar_t *cmdline,
                               wchar_t *envblock, int timeout_s, unsigned long *code);

#endif
