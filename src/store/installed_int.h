/* installed.json inside the library: the store and the hooks edit records in place (JSON
 * objects), so keys that another version wrote survive. Every change goes through these
 * setters, which note whether anything really changed: an unchanged pass writes nothing. */
#ifndef KVVM_INSTALLED_INT_H
#define KVVM_INSTALLED_INT_H

#include <jansson.h>
#include "kvvm/installed.h"

/* The top-level object ("folders", "pass_hook" and keys of other versions). Its "certs"
 * holds parked records (strings): read them through the functions below. */
json_t *installed_root(struct kvvm_installed *st);
/* The "certs" object with every record parsed (a scan that needs them all). */
json_t *installed_certs(struct kvvm_installed *st);
/* The record under key (rec: its value in "certs", parked or parsed), parsed; but NULL when
 * it is parked and its text does not contain needle (NULL: any): a scan over every record
 * parses only those that may match. */
json_t *installed_unpark_if(struct kvvm_installed *st, const char *key, json_t *rec,
                            const char *needle);
/* The record of url in dir, made (with url and store_dir set) when create. */
json_t *installed_cert(struct kvvm_installed *st, const char *url, const char *dir,
                       bool create);
/* obj[key] = val (stolen); NULL removes the key. Marks the state changed only when the
 * value differs. */
void installed_set(struct kvvm_installed *st, json_t *obj, const char *key, json_t *val);
void installed_set_str(struct kvvm_installed *st, json_t *obj, const char *key,
                       const char *s);
/* Note a change made in place (to an array or object taken from the state). */
void installed_changed(struct kvvm_installed *st);
/* A sub-object of obj, made when absent. */
json_t *installed_obj(struct kvvm_installed *st, json_t *obj, const char *key);
const char *installed_str(const json_t *obj, const char *key);
/* Whether the hooks folder holds a hook, as store.c found it this pass: -1 until asked, and
 * again after each save (a save ends a pass: its commit, or a hook run). */
int *installed_hooks_memo(struct kvvm_installed *st);
/* A number for the next due hook, so hooks replay in the order they became due. */
json_int_t installed_next_seq(struct kvvm_installed *st);

#endif
