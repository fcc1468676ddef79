/* installed.json's memory for the steady pass's listing (installed.h): per record, what the
 * last direct fetch saw ("seen"); at the top, what each vault's listing taught ("vaults").
 * Both are additive keys: an older kvvm keeps them untouched when it rewrites the file. */
#include <string.h>

#include "installed_int.h"
#include "kvvm/installed.h"

static int64_t num(const json_t *o, const char *key)
{
  json_t *v = json_object_get(o, key);
  return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

bool kvvm_installed_get_seen(struct kvvm_installed *st, const char *url, const char *store_dir,
                             const char *version, int64_t *created, int64_t *updated,
                             int64_t *asked_at)
{
  json_t *rec = installed_cert(st, url, store_dir, false);
  json_t *seen = json_object_get(rec, "seen");
  const char *v = installed_str(seen, "version");
  bool ok = v && version && strcmp(v, version) == 0;
  *created = ok ? num(seen, "created") : 0;
  *updated = ok ? num(seen, "updated") : 0;
  *asked_at = ok ? num(seen, "asked_at") : 0;
  return ok;
}

void kvvm_installed_set_seen(struct kvvm_installed *st, const char *url, const char *store_dir,
                             const char *version, int64_t created, int64_t updated,
                             int64_t asked_at)
{
  json_t *rec = installed_cert(st, url, store_dir, true);
  installed_set(st, rec, "seen", json_pack("{s:s, s:I, s:I, s:I}", "version", version,
                                           "created", (json_int_t)created, "updated",
                                           (json_int_t)updated, "asked_at",
                                           (json_int_t)asked_at));
}

void kvvm_installed_get_vault(struct kvvm_installed *st, const char *host,
                              int64_t *refused_at, size_t *pages)
{
  json_t *v = json_object_get(json_object_get(installed_root(st), "vaults"), host);
  int64_t p = num(v, "list_pages");
  *refused_at = num(v, "list_refused_at");
  *pages = p > 0 ? (size_t)p : 0;
}

void kvvm_installed_set_vault(struct kvvm_installed *st, const char *host, int64_t refused_at,
                              size_t pages)
{
  json_t *vaults = installed_obj(st, installed_root(st), "vaults");
  installed_set(st, vaults, host, json_pack("{s:I, s:I}", "list_refused_at",
                                            (json_int_t)refused_at, "list_pages",
                                            (json_int_t)pages));
}
