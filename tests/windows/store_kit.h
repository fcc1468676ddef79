/* What the Windows store tests (test_store_win, test_keyacl_win, test_store_prune_win,
 * test_store_crash_win) share: settings read as kvvm on Windows reads them, and a
 * certificate's record as installed.json holds it. */
#ifndef KVVM_TESTS_STORE_KIT_H
#define KVVM_TESTS_STORE_KIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kvvm/mem.h"
#include "kvvm/settings.h"

/* The settings whose secretsManagementSettings is sms (JSON text), or NULL (said). */
static inline struct kvvm_config *kit_settings(const char *sms)
{
  char why[512] = "";
  char *text = kvvm_xasprintf("{\"runtimeSettings\":[{\"handlerSettings\":{\"publicSettings\":"
                              "{\"secretsManagementSettings\":%s}}}]}", sms);
  struct kvvm_settings_opts opts = {.store_kind = KVVM_STORE_WINDOWS};
  struct kvvm_config *cfg = NULL;
  if (kvvm_settings_parse(text, strlen(text), &opts, &cfg, why, sizeof why) != KVVM_OK)
    fprintf(stderr, "  settings: %s\n", why);
  free(text);
  return cfg;
}

/* The record of "<url> <store_dir>" in the installed.json at path, parked or not (a new
 * reference), or NULL. */
static inline json_t *kit_record(const char *path, const char *url, const char *store_dir)
{
  json_error_t e;
  json_t *doc = json_load_file(path, 0, &e);
  char *key = kvvm_xasprintf("%s %s", url, store_dir);
  json_t *rec = json_object_get(json_object_get(doc, "certs"), key);
  rec = json_is_string(rec) ? json_loads(json_string_value(rec), 0, &e) : json_incref(rec);
  json_decref(doc);
  free(key);
  return rec;
}

#endif
