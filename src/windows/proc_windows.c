/* proc.h on Windows: the process id, and kvvm_proc_protect. A process holding private keys
 * must not leave a copy of its memory behind when it crashes, must not hang on a dialog nobody sees (a service has no
 * desktop: the process, keys and all, would wait forever), and should run no code that is
 * not kvvm's or the system's. What each call buys is said where it is made. An
 * administrator's debugger (SeDebugPrivilege) can still read the process, as root can on
 * Linux. The newer calls are looked up at run time: wine and older Windows lack some. */
#include <io.h>
#include <stdbool.h>
#include <stdio.h>
#include <windows.h>

#include "kvvm/log.h"
#include "kvvm/proc.h"
#include "windows/win_int.h"

/* werapi.h's value; mingw-w64's header leaves it out. */
#ifndef WER_FAULT_REPORTING_FLAG_NOHEAP
#define WER_FAULT_REPORTING_FLAG_NOHEAP 1
#endif

typedef HRESULT(WINAPI *wer_set_flags_fn)(DWORD);
typedef HRESULT(WINAPI *wer_exclude_fn)(PCWSTR, BOOL);
typedef BOOL(WINAPI *mitigation_fn)(PROCESS_MITIGATION_POLICY, PVOID, SIZE_T);

/* GetProcAddress gives a FARPROC; the cast to the real type goes through void *. */
static void *system_fn(const wchar_t *dll, const char *name, bool load)
{
  HMODULE m = load ? LoadLibraryExW(dll, NULL, LOAD_LIBRARY_SEARCH_SYSTEM32)
                   : GetModuleHandleW(dll);
  return m ? (void *)(INT_PTR)GetProcAddress(m, name) : NULL;
}

/* Windows Error Reporting: the heap (where keys live) stays out of any crash report, and
 * kvvm's executables are excluded from reporting altogether, so no minidump (stacks hold
 * key bytes too) is written or sent. The exclusion is per user (LocalSystem for kvvmd). */
static void no_error_reports(void)
{
  wer_set_flags_fn set_flags = system_fn(L"kernel32.dll", "WerSetFlags", false);
  wer_exclude_fn exclude = system_fn(L"wer.dll", "WerAddExcludedApplication", true);
  wchar_t exe[MAX_PATH];
  DWORD n = GetModuleFileNameW(NULL, exe, MAX_PATH);
  const wchar_t *base = n && n < MAX_PATH ? wcsrchr(exe, L'\\') : NULL;
  if (!set_flags || FAILED(set_flags(WER_FAULT_REPORTING_FLAG_NOHEAP)))
    KVVM_WARN("cannot keep the heap out of Windows Error Reporting");
  if (!exclude || !base || FAILED(exclude(base + 1, FALSE)))
    KVVM_WARN("cannot exclude kvvm from Windows Error Reporting");
}

/* Windows 10 mitigations; absent before (and under wine), where only a debug line says so.
 * Extension points off: AppInit_DLLs, window hooks and IMEs cannot load foreign DLLs into
 * the process. Image loads: no DLL from a network share or written by a low-integrity
 * process, and System32 before the package folder, so a DLL planted beside kvvm's
 * executables cannot stand in for a system one. */
static void mitigate(void)
{
  mitigation_fn set = system_fn(L"kernel32.dll", "SetProcessMitigationPolicy", false);
  PROCESS_MITIGATION_EXTENSION_POINT_DISABLE_POLICY ext = {0};
  PROCESS_MITIGATION_IMAGE_LOAD_POLICY img = {0};
  if (!set) {
    KVVM_DEBUG("no process mitigation policies on this Windows");
    return;
  }
  ext.DisableExtensionPoints = 1;
  img.NoRemoteImages = 1;
  img.NoLowMandatoryLabelImages = 1;
  img.PreferSystem32Images = 1;
  if (!set(ProcessExtensionPointDisablePolicy, &ext, sizeof ext))
    KVVM_WARN("cannot turn legacy extension points off");
  if (!set(ProcessImageLoadPolicy, &img, sizeof img))
    KVVM_WARN("cannot restrict where DLLs load from");
}

void kvvm_proc_protect(void)
{
  /* No critical-error, crash or missing-file box: the process ends, or the call fails,
   * instead of waiting for a click. Children (hooks) inherit it. */
  SetErrorMode(SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX | SEM_NOOPENFILEERRORBOX);
  no_error_reports();
  mitigate();
}

long kvvm_proc_self_id(void) { return (long)GetCurrentProcessId(); }

bool kvvm_proc_stdout_is_tty(void) { return _isatty(_fileno(stdout)) != 0; }
