/* The part of store.h that every store backend shares (store_posix.c: files; store_windows.c:
 * the Windows certificate store). */
#include <stdlib.h>
#include <string.h>

#include "kvvm/store.h"

void kvvm_install_result_clear(struct kvvm_install_result *res)
{
  if (!res)
    return;
  free(res->file);
  free(res->link);
  free(res->pfx);
  free(res->prev_version);
  free(res->prev_thumbprint);
  memset(res, 0, sizeof *res);
}
