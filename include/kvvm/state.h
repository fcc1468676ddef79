/* State that must survive package updates: <state_dir>/state.json (KVVM_STATE_DIR, default
 * /var/lib/kvvm). Versioned by a "format" number; keys this version does not know are kept
 * as they are when it rewrites the file, so a downgrade loses nothing. */
#ifndef KVVM_STATE_H
#define KVVM_STATE_H

#include "kvvm/err.h"

#define KVVM_STATE_FORMAT 1

struct kvvm_state;

/* Load (a missing file gives an empty state; an unreadable or corrupt one is moved aside
 * to state.json.corrupt with a warning, and an empty state is returned). */
KVVM_API enum kvvm_err kvvm_state_load(const char *dir, struct kvvm_state **out);
/* Write atomically, creating dir 0700 if needed. */
KVVM_API enum kvvm_err kvvm_state_save(const char *dir, struct kvvm_state *st);
KVVM_API void kvvm_state_free(struct kvvm_state *st);
/* Uninstall: remove kvvm's files in dir (state, daemon lock and pid, unit environment) and
 * the folder itself when nothing else is left in it. */
KVVM_API enum kvvm_err kvvm_state_remove_all(const char *dir);

/* Top-level keys. get_str returns a borrowed string or NULL; get_int returns dflt when absent. */
KVVM_API const char *kvvm_state_get_str(const struct kvvm_state *st, const char *key);
KVVM_API long kvvm_state_get_int(const struct kvvm_state *st, const char *key, long dflt);
KVVM_API void kvvm_state_set_str(struct kvvm_state *st, const char *key, const char *val);
KVVM_API void kvvm_state_set_int(struct kvvm_state *st, const char *key, long val);
KVVM_API void kvvm_state_del(struct kvvm_state *st, const char *key);
/* The format number of the loaded file (0 when new). */
KVVM_API int kvvm_state_format(const struct kvvm_state *st);

#endif
