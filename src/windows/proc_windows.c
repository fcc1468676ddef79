/* The process facts of proc.h on Windows. */
#include "kvvm/proc.h"
#include "windows/win_int.h"

long kvvm_proc_self_id(void) { return (long)GetCurrentProcessId(); }
