/* libcurl, loaded when the first request is made rather than when the program starts.
 * Mapping libcurl costs about 2 MiB of private memory for the relocations of the ~20
 * libraries it pulls in (OpenSSL, GSSAPI, LDAP, nghttp2, ...); kvvmd's own process never makes
 * a request (passes run in a worker process, daemon.c), so it never pays that. It also means
 * a machine without libcurl gets a sentence in the status instead of a loader error, and no
 * symbol version is asked of whichever libcurl.so.4 the distribution ships.
 *
 * http.c, the only user, calls libcurl by its usual names: below, each name is redirected
 * to the table that kvvm_curlapi_load fills. */
#ifndef KVVM_CURLAPI_H
#define KVVM_CURLAPI_H

#include <curl/curl.h>
#include <stddef.h>
#include <time.h>
#include "kvvm/err.h"

struct kvvm_curlapi_table {
  CURLcode (*global_init)(long flags);
  void (*global_cleanup)(void);
  curl_version_info_data *(*version_info)(CURLversion v);
  CURL *(*easy_init)(void);
  void (*easy_cleanup)(CURL *e);
  CURLcode (*easy_setopt)(CURL *e, CURLoption opt, ...);
  CURLcode (*easy_getinfo)(CURL *e, CURLINFO info, ...);
  const char *(*easy_strerror)(CURLcode c);
  CURLM *(*multi_init)(void);
  CURLMcode (*multi_cleanup)(CURLM *m);
  CURLMcode (*multi_setopt)(CURLM *m, CURLMoption opt, ...);
  CURLMcode (*multi_add_handle)(CURLM *m, CURL *e);
  CURLMcode (*multi_remove_handle)(CURLM *m, CURL *e);
  CURLMcode (*multi_perform)(CURLM *m, int *running);
  CURLMcode (*multi_wait)(CURLM *m, struct curl_waitfd *extra, unsigned n, int timeout_ms,
                          int *numfds);
  CURLMsg *(*multi_info_read)(CURLM *m, int *left);
  struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
  void (*slist_free_all)(struct curl_slist *l);
  time_t (*getdate)(const char *s, const time_t *unused);
};

extern struct kvvm_curlapi_table kvvm_curlapi;

/* Load libcurl (once per process) and fill kvvm_curlapi. On failure, why says what is
 * missing and what to install. */
enum kvvm_err kvvm_curlapi_load(char *why, size_t whylen);

#ifndef KVVM_CURLAPI_LOADER
/* curl.h may define some of these as type-checking macros (gcc): the table's calls replace
 * them. */
#undef curl_global_init
#undef curl_global_cleanup
#undef curl_version_info
#undef curl_easy_init
#undef curl_easy_cleanup
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_easy_strerror
#undef curl_multi_init
#undef curl_multi_cleanup
#undef curl_multi_setopt
#undef curl_multi_add_handle
#undef curl_multi_remove_handle
#undef curl_multi_perform
#undef curl_multi_wait
#undef curl_multi_info_read
#undef curl_slist_append
#undef curl_slist_free_all
#undef curl_getdate
#define curl_global_init kvvm_curlapi.global_init
#define curl_global_cleanup kvvm_curlapi.global_cleanup
#define curl_version_info kvvm_curlapi.version_info
#define curl_easy_init kvvm_curlapi.easy_init
#define curl_easy_cleanup kvvm_curlapi.easy_cleanup
#define curl_easy_setopt kvvm_curlapi.easy_setopt
#define curl_easy_getinfo kvvm_curlapi.easy_getinfo
#define curl_easy_strerror kvvm_curlapi.easy_strerror
#define curl_multi_init kvvm_curlapi.multi_init
#define curl_multi_cleanup kvvm_curlapi.multi_cleanup
#define curl_multi_setopt kvvm_curlapi.multi_setopt
#define curl_multi_add_handle kvvm_curlapi.multi_add_handle
#define curl_multi_remove_handle kvvm_curlapi.multi_remove_handle
#define curl_multi_perform kvvm_curlapi.multi_perform
#define curl_multi_wait kvvm_curlapi.multi_wait
#define curl_multi_info_read kvvm_curlapi.multi_info_read
#define curl_slist_append kvvm_curlapi.slist_append
#define curl_slist_free_all kvvm_curlapi.slist_free_all
#define curl_getdate kvvm_curlapi.getdate
#endif

#endif
