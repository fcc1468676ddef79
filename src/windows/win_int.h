/* What the Windows platform files share (src/windows/ only: no portable file includes this).
 * Strings cross the Win32 boundary as UTF-16; kvvm keeps UTF-8 everywhere else. */
#ifndef KVVM_WIN_INT_H
#define KVVM_WIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <windows.h>

/* The process's stop event (manual reset): set when a stop is asked for (the service
 * control handler, or kvvmd for its pass worker). Sleeps in kvvm_clock wait on it, so a
 * stop ends them at once, as SIGTERM does on Linux. Created on first use. */
HANDLE kvvm_win_stop_event(void);
/* A pass worker takes its parent's event (an inherited handle) instead of its own. */
void kvvm_win_adopt_stop_event(HANDLE h);

/* A new UTF-16 copy of a UTF-8 string, or NULL (invalid UTF-8, no memory). */
wchar_t *kvvm_win_wide(const char *utf8);
/* A new UTF-8 copy of a UTF-16 string, or NULL. */
char *kvvm_win_utf8(const wchar_t *w);
/* The ProgramData folder (C:\ProgramData unless Windows says otherwise), UTF-8, kept for the
 * process. paths_windows.c. */
const char *kvvm_win_program_data(void);

/* A Win32 error code in words ("Access is denied. (5)"), in buf. */
const char *kvvm_win_strerror(DWORD code, char *buf, size_t n);

/* True (and logged) when path's owner and DACL are not to be checked: under wine only, with
 * the testing aid KVVM_WINE_NO_FILE_OWNER=1 (wine keeps no file owner or DACL).
 * fileio_windows.c. */
bool kvvm_win_wine_skips_owner(const char *path);

#endif
