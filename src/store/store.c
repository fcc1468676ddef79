/* The part of store.h that every store backend shares (store_posix.c: files; store_windows.c:
 * the Windows certificate store): the result, and the hooks a new version makes due. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kvvm/fileio.h"
#include "kvvm/mem.h"
#include "kvvm/paths.h"
#include "kvvm/store.h"
#include "store/installed_int.h"
#include "store/store_hooks_int.h"

void kvvm_install_result_clear(struct kvvm_install_result *res)
{
  if (!res)
    return;
  free(res->file);
  free(res->link);
  free(res->pfx);
  free(res->files);
  free(res->prev_version);
  free(res->prev_thumbprint);
  memset(res, 0, sizeof *res);
}

static bool eq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

static bool same_sans(const json_t *prev, char *const *sans)
{
  size_t n = 0, i;
  json_t *e;
  for (; sans[n]; n++) {
    bool found = false;
    json_array_foreach(prev, i, e)
      found = found || strcasecmp(json_string_value(e) ? json_string_value(e) : "", sans[n]) == 0;
    if (!found)
      return false;
  }
  json_array_foreach(prev, i, e) {
    bool found = false;
    for (size_t k = 0; k < n && !found; k++)
      found = strcasecmp(json_string_value(e) ? json_string_value(e) : "", sans[k]) == 0;
    if (!found)
      return false;
  }
  return json_is_array(prev);
}

/* What the hooks get beyond the record (design.md, Renewal hooks), kept with the due mark so
 * a replay after a crash sees what the first run would have: the event and what was installed
 * before. The rest (URL, version, files, thumbprint, SANs, expiry) is the record's own, read
 * when the hooks run (hooks.c), so a due mark costs a few strings, not a copy of the record
 * (1,000 installs in one pass held 2.5 MiB of copies). */
static json_t *hook_env(const json_t *rec, const struct kvvm_cert_cfg *cc,
                        const struct kvvm_install_result *r, char *const *sans)
{
  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "KVVM_HOOK_EVENT",
                   r->first ? "install" : "renew", "KVVM_VAULT", cc->vault_name,
                   "KVVM_SECRET", cc->secret_name, "KVVM_PREVIOUS_VERSION",
                   r->prev_version ? r->prev_version : "", "KVVM_PREVIOUS_THUMBPRINT",
                   r->prev_thumbprint ? r->prev_thumbprint : "", "KVVM_SANS_MATCH_PREVIOUS",
                   !r->first && same_sans(json_object_get(rec, "sans"), sans)
                       ? "1" : "0");
}

/* Whether the hooks folder holds a name that may be a hook (neither runner takes a hidden
 * one), asked once per pass: 1,000 installs do not list it 1,000 times. A folder that cannot
 * be listed counts, so that the hook run still says what is wrong with it. */
static bool hooks_present(struct kvvm_installed *st)
{
  int *memo = installed_hooks_memo(st);
  char **names = NULL;
  if (*memo >= 0)
    return *memo > 0;
  enum kvvm_err rc = kvvm_dir_list(kvvm_paths_hooks_dir(), &names);
  *memo = rc != KVVM_OK && rc != KVVM_E_NOENT;
  for (char **n = names; n && *n && !*memo; n++)
    *memo = (*n)[0] != '.';
  kvvm_strv_free(names);
  return *memo > 0;
}

void store_hooks_due(struct kvvm_installed *st, json_t *rec, const struct kvvm_cert_cfg *cc,
                     const struct kvvm_install_result *res, char *const *sans)
{
  /* No hook to run: marks would only be read back, cleared and saved twice (a first sync
   * of 1,000 paid ~54 ms CPU for that after its commit). */
  if (!hooks_present(st))
    return;
  json_t *due = json_pack("{s:I, s:o}", "seq", installed_next_seq(st), "env",
                          hook_env(rec, cc, res, sans));
  installed_set(st, rec, "hook_due", due);
  json_t *pass = installed_obj(st, installed_root(st), "pass_hook");
  json_t *links = json_object_get(pass, "links");
  if (!json_is_array(links)) {
    links = json_array();
    json_object_set_new(pass, "links", links);
  }
  /* Appended in place: a copy per install made a first sync of N certificates O(N^2). */
  size_t i;
  json_t *e;
  bool seen = false;
  json_array_foreach(links, i, e)
    seen = seen || eq(json_string_value(e), res->link);
  if (!seen)
    json_array_append_new(links, json_string(res->link));
  installed_changed(st);
  installed_set(st, pass, "due", json_true());
}

