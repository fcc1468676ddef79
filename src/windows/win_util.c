/* The helpers of win_int.h: the stop event and UTF-8 <-> UTF-16. */
#include <stdio.h>
#include <stdlib.h>

#include "windows/win_int.h"

static HANDLE stop_event;

HANDLE kvvm_win_stop_event(void)
{
  /* Inheritable, so a pass worker started with bInheritHandles can adopt it. */
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
  if (!stop_event)
    stop_event = CreateEventW(&sa, TRUE, FALSE, NULL);
  return stop_event;
}

void kvvm_win_adopt_stop_event(HANDLE h)
{
  stop_event = h;
}

wchar_t *kvvm_win_wide(const char *utf8)
{
  int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, utf8, -1, NULL, 0);
  wchar_t *w = n > 0 ? malloc((size_t)n * sizeof *w) : NULL;
  if (w && MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, utf8, -1, w, n) != n) {
    free(w);
    w = NULL;
  }
  return w;
}

char *kvvm_win_utf8(const wchar_t *w)
{
  int n = WideCharToMultiByte(CP_UTF8, 0, w, -1, NULL, 0, NULL, NULL);
  char *s = n > 0 ? malloc((size_t)n) : NULL;
  if (s && WideCharToMultiByte(CP_UTF8, 0, w, -1, s, n, NULL, NULL) != n) {
    free(s);
    s = NULL;
  }
  return s;
}

const char *kvvm_win_strerror(DWORD code, char *buf, size_t n)
{
  char msg[256];
  DWORD len = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL,
                             code, 0, msg, sizeof msg, NULL);
  while (len && (msg[len - 1] == '\n' || msg[len - 1] == '\r' || msg[len - 1] == ' '))
    msg[--len] = '\0';
  /* Wine often has no text for a code: the number alone still lets a user look it up. */
  snprintf(buf, n, "%s%s(%lu)", len ? msg : "", len ? " " : "", (unsigned long)code);
  return buf;
}
