/* libcurl found with dlopen (curlapi.h says why). The soname is the one every distribution
 * kvvm supports ships (Debian and Ubuntu's libcurl4, RHEL's and SUSE's libcurl): the ABI has
 * been libcurl.so.4 since 7.16. Symbols are looked up without a version, so a libcurl built
 * with symbol versions (Debian) and one without (RHEL) serve alike. */
#define KVVM_CURLAPI_LOADER
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "vault/curlapi.h"
#include "kvvm/log.h"

#define LIBCURL_SONAME "libcurl.so.4"

struct kvvm_curlapi_table kvvm_curlapi;

/* Each slot of the table and the name that fills it. */
#define SLOT(field, name) {(void **)&kvvm_curlapi.field, name}
static const struct {
  void **slot;
  const char *name;
} slots[] = {
    SLOT(global_init, "curl_global_init"),
    SLOT(global_cleanup, "curl_global_cleanup"),
    SLOT(version_info, "curl_version_info"),
    SLOT(easy_init, "curl_easy_init"),
    SLOT(easy_cleanup, "curl_easy_cleanup"),
    SLOT(easy_setopt, "curl_easy_setopt"),
    SLOT(easy_getinfo, "curl_easy_getinfo"),
    SLOT(easy_strerror, "curl_easy_strerror"),
    SLOT(multi_init, "curl_multi_init"),
    SLOT(multi_cleanup, "curl_multi_cleanup"),
    SLOT(multi_setopt, "curl_multi_setopt"),
    SLOT(multi_add_handle, "curl_multi_add_handle"),
    SLOT(multi_remove_handle, "curl_multi_remove_handle"),
    SLOT(multi_perform, "curl_multi_perform"),
    SLOT(multi_wait, "curl_multi_wait"),
    SLOT(multi_info_read, "curl_multi_info_read"),
    SLOT(slist_append, "curl_slist_append"),
    SLOT(slist_free_all, "curl_slist_free_all"),
    SLOT(getdate, "curl_getdate"),
};

static enum kvvm_err missing(char *why, size_t whylen, const char *what)
{
  snprintf(why, whylen, "libcurl (%s) cannot be used: %s; install the distribution's "
           "libcurl package (Debian and Ubuntu: libcurl4; RHEL, SUSE: libcurl)",
           LIBCURL_SONAME, what);
  KVVM_ERR("%s", why);
  return KVVM_E_INTERNAL;
}

enum kvvm_err kvvm_curlapi_load(char *why, size_t whylen)
{
  static void *lib;
  if (lib)
    return KVVM_OK;
  /* Never unloaded: OpenSSL, which libcurl brings, pins itself in memory anyway. */
  void *h = dlopen(LIBCURL_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (!h)
    return missing(why, whylen, dlerror());
  for (size_t i = 0; i < sizeof slots / sizeof *slots; i++) {
    /* POSIX allows the object pointer to function pointer conversion dlsym needs. */
    *slots[i].slot = dlsym(h, slots[i].name);
    if (!*slots[i].slot) {
      char what[160];
      snprintf(what, sizeof what, "it has no %s", slots[i].name);
      dlclose(h);
      memset(&kvvm_curlapi, 0, sizeof kvvm_curlapi);
      return missing(why, whylen, what);
    }
  }
  lib = h;
  return KVVM_OK;
}
