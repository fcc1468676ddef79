/* libcurl on Windows: linked statically (Schannel, scripts/win-deps.sh), so there is nothing
 * to load. curlapi.h's reasons to load it late are Linux's (a distribution's shared libcurl
 * and the ~20 libraries it maps); here the table simply points at the linked functions and
 * loading always succeeds. */
#define KVVM_CURLAPI_LOADER
#include "vault/curlapi.h"

struct kvvm_curlapi_table kvvm_curlapi;

enum kvvm_err kvvm_curlapi_load(char *why, size_t whylen)
{
  (void)why;
  (void)whylen;
  kvvm_curlapi = (struct kvvm_curlapi_table){
      .global_init = curl_global_init,
      .global_cleanup = curl_global_cleanup,
      .version_info = curl_version_info,
      .easy_init = curl_easy_init,
      .easy_cleanup = curl_easy_cleanup,
      .easy_setopt = curl_easy_setopt,
      .easy_getinfo = curl_easy_getinfo,
      .easy_strerror = curl_easy_strerror,
      .multi_init = curl_multi_init,
      .multi_cleanup = curl_multi_cleanup,
      .multi_setopt = curl_multi_setopt,
      .multi_add_handle = curl_multi_add_handle,
      .multi_remove_handle = curl_multi_remove_handle,
      .multi_perform = curl_multi_perform,
      .multi_wait = curl_multi_wait,
      .multi_info_read = curl_multi_info_read,
      .slist_append = curl_slist_append,
      .slist_free_all = curl_slist_free_all,
      .getdate = curl_getdate,
  };
  return KVVM_OK;
}
