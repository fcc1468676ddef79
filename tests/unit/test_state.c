/* state.json: survives, keeps what a newer version wrote, never lowers the format. */
#include <stdlib.h>

#include "kt.h"
#include "kvvm/fileio.h"
#include "kvvm/mem.h"
#include "kvvm/state.h"

static void round_trip(void)
{
  char *dir = kt_tmpdir(), *sub = kvvm_path_join(dir, "state");
  struct kvvm_state *st = NULL;
  KT_CHECK(kvvm_state_load(sub, &st) == KVVM_OK && kvvm_state_format(st) == 0);
  kvvm_state_set_str(st, "package_dir", "/p");
  kvvm_state_set_int(st, "applied_seq", 5);
  KT_CHECK(kvvm_state_save(sub, st) == KVVM_OK);
  kvvm_state_free(st);
  KT_CHECK(kvvm_state_load(sub, &st) == KVVM_OK);
  KT_STREQ(kvvm_state_get_str(st, "package_dir"), "/p");
  KT_CHECK(kvvm_state_get_int(st, "applied_seq", -1) == 5);
  KT_CHECK(kvvm_state_format(st) == KVVM_STATE_FORMAT);
  kvvm_state_del(st, "package_dir");
  KT_CHECK(kvvm_state_get_str(st, "package_dir") == NULL);
  kvvm_state_free(st);
  kt_rmtree(dir);
  free(sub);
  free(dir);
}

/* A downgrade: the older version must keep the newer one's keys and format number. */
static void keeps_unknown(void)
{
  char *dir = kt_tmpdir(), *path = kvvm_path_join(dir, "state.json"), *text = NULL;
  kt_write(path, "{\"format\": 9, \"future\": {\"x\": [1,2]}, \"applied_seq\": 3}");
  struct kvvm_state *st = NULL;
  kvvm_state_load(dir, &st);
  KT_CHECK(kvvm_state_format(st) == 9);
  KT_CHECK(kvvm_state_get_int(st, "applied_seq", -1) == 3);
  kvvm_state_set_int(st, "applied_seq", 4);
  KT_CHECK(kvvm_state_save(dir, st) == KVVM_OK);
  kvvm_state_free(st);
  KT_CHECK(kvvm_file_read(path, 65536, &text, NULL) == KVVM_OK);
  KT_CONTAINS(text, "\"future\"");
  KT_CONTAINS(text, "\"format\": 9");
  KT_CONTAINS(text, "\"applied_seq\": 4");
  free(text);
  kt_rmtree(dir);
  free(path);
  free(dir);
}

/* A corrupt file is kept aside for a person to read, and kvvm starts afresh. */
static void corrupt_moved_aside(void)
{
  char *dir = kt_tmpdir(), *path = kvvm_path_join(dir, "state.json");
  char *aside = kvvm_path_join(dir, "state.json.corrupt");
  kt_write(path, "{\"format\": 1, \"applied_s");
  struct kvvm_state *st = NULL;
  KT_CHECK(kvvm_state_load(dir, &st) == KVVM_OK);
  KT_CHECK(kvvm_state_get_int(st, "applied_seq", -1) == -1);
  KT_CHECK(kvvm_path_exists(aside));
  KT_CHECK(!kvvm_path_exists(path));
  kvvm_state_free(st);
  KT_CHECK(kvvm_state_remove_all(dir) == KVVM_OK);
  KT_CHECK(!kvvm_path_exists(dir));
  free(aside);
  free(path);
  free(dir);
}

int main(void)
{
  static const struct kt_case cases[] = {KT_CASE(round_trip), KT_CASE(keeps_unknown),
                                         KT_CASE(corrupt_moved_aside)};
  return KT_RUN("state", cases);
}
