/* kvvm_wake with events: the service control handler (another thread) posts, kvvmd's main
 * loop waits on all three at once. The stop is the process's stop event (manual reset: it
 * stays set, and the sleeps of a pass watch it too); reload and pass now reset when taken,
 * so two of one kind before kvvmd looks make one, as two SIGHUPs do. */
#include <windows.h>

#include "kvvm/wake.h"
#include "windows/win_int.h"

static HANDLE reload_event, pass_event;

void kvvm_wake_init(void)
{
  if (!reload_event)
    reload_event = CreateEventW(NULL, FALSE, FALSE, NULL);
  if (!pass_event)
    pass_event = CreateEventW(NULL, FALSE, FALSE, NULL);
}

enum kvvm_wake kvvm_wake_wait(int64_t ms)
{
  /* The lowest index that is set wins: the stop comes first. */
  HANDLE h[3] = {kvvm_win_stop_event(), reload_event, pass_event};
  DWORD t = ms < 0 ? INFINITE : ms >= (int64_t)INFINITE ? INFINITE - 1 : (DWORD)ms;
  DWORD r = WaitForMultipleObjects(3, h, FALSE, t);
  if (r == WAIT_TIMEOUT)
    return KVVM_WAKE_TIMEOUT;
  if (r == WAIT_OBJECT_0 + 1)
    return KVVM_WAKE_RELOAD;
  if (r == WAIT_OBJECT_0 + 2)
    return KVVM_WAKE_PASS;
  return KVVM_WAKE_STOP;   /* the stop, or no wait possible: stopping beats spinning */
}

void kvvm_wake_post(enum kvvm_wake w)
{
  if (w == KVVM_WAKE_STOP)
    SetEvent(kvvm_win_stop_event());
  else if (w == KVVM_WAKE_RELOAD)
    SetEvent(reload_event);
  else if (w == KVVM_WAKE_PASS)
    SetEvent(pass_event);
}
