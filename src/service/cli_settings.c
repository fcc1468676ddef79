/* kvvm check-settings, and the settings documents `kvvm run` reads. Users hold settings in
 * several forms (the ARM `settings` object, a whole extension resource, the agent's
 * <seq>.settings file, and PowerShell's escaped string); each is wrapped into the agent's
 * envelope and given to the one settings parser, so the CLI can never accept what enable
 * refuses. Key paths in errors are then put back into the form the user wrote. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvvm/cli.h"
#include "kvvm/fileio.h"
#include "kvvm/mem.h"
#include "kvvm/paths.h"
#include "kvvm/settings.h"

#define CHECK_WHY_MAX (1024 * 1024)

#define ENVELOPE_PUB "runtimeSettings[0].handlerSettings.publicSettings"

static const char check_help[] =
    "usage: kvvm check-settings [--os linux|windows] FILE|-\n"
    "Validate a settings document (\"-\" reads standard input) and print the normalised\n"
    "configuration, then every warning, each with its key path. --os checks it as kvvm on\n"
    "that system reads it (default: this one): on Windows the store is the certificate\n"
    "store, and the Linux-only keys are warnings. Accepted forms:\n"
    "  - the ARM `settings` object (what goes into publicSettings)\n"
    "  - a whole extension resource: an ARM template resource {\"properties\": {\"settings\":\n"
    "    ...}} or the output of `az vm extension show`\n"
    "  - the guest agent's <seq>.settings file {\"runtimeSettings\": [...]}\n"
    "  - any of these with the settings as a JSON string (PowerShell's escaped form): read\n"
    "    with a warning that says how to fix it\n"
    "Exit status: 0 valid, 1 invalid, 2 usage or unreadable file.\n";

/* The guest agent caps settings at far less; the same bound as the parser's. */
static enum kvvm_err read_stdin(char **out, size_t *len)
{
  size_t cap = 4096, n = 0;
  char *buf = kvvm_xmalloc(cap);
  for (;;) {
    if (n + 1 >= cap)
      buf = kvvm_xrealloc(buf, cap *= 2);
    size_t r = fread(buf + n, 1, cap - n - 1, stdin);
    n += r;
    if (r == 0 || n > KVVM_SETTINGS_MAX_BYTES)
      break;
  }
  buf[n] = '\0';
  if (ferror(stdin)) {
    free(buf);
    return KVVM_E_IO;
  }
  *out = buf;
  *len = n;
  return KVVM_OK;
}

static enum kvvm_err read_doc(const char *path, char **text, size_t *len)
{
  if (strcmp(path, "-") == 0)
    return read_stdin(text, len);
  return kvvm_file_read(path, KVVM_SETTINGS_MAX_BYTES + 1, text, len);
}

/* Which form the document is, and the value that goes into publicSettings (borrowed from
 * root; NULL for the agent's envelope, which is parsed as it is). */
static json_t *classify(json_t *root, const char **form, const char **prefix)
{
  json_t *props = json_object_get(root, "properties");
  *prefix = "";
  if (json_is_string(root)) {
    *form = "settings as a JSON string";
    return root;
  }
  if (!json_is_object(root) || json_object_get(root, "runtimeSettings")) {
    *form = "guest agent .settings file";
    return NULL;
  }
  if (json_is_object(props) && json_object_get(props, "settings")) {
    *form = "extension resource (ARM template)";
    *prefix = "properties.settings";
    return json_object_get(props, "settings");
  }
  if (json_object_get(root, "settings") && !json_object_get(root, "secretsManagementSettings")) {
    *form = "extension resource (az vm extension show)";
    *prefix = "settings";
    return json_object_get(root, "settings");
  }
  *form = "ARM settings object";
  return root;
}

/* Text that is not JSON but holds \" is PowerShell's escaped form without its outer quotes. */
static json_t *load_root(const char *text, size_t len)
{
  json_t *root = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
  if (!root && strstr(text, "\\\""))
    root = json_stringn(text, len);
  return root;
}

/* Messages start with the key path ("a.b[0]: ..."): the parser's paths are relative to
 * publicSettings, or name the envelope. Put them where the user's document has them. */
static char *rewrite_path(const char *msg, const char *prefix)
{
  const char *colon = strstr(msg, ": ");
  size_t n = colon ? (size_t)(colon - msg) : 0;
  if (!n || memchr(msg, ' ', n))
    return kvvm_xstrdup(msg);  /* no key path */
  size_t pub = strlen(ENVELOPE_PUB);
  if (strncmp(msg, ENVELOPE_PUB, pub) == 0) {
    const char *rest = msg + pub;
    if (*prefix)
      return kvvm_xasprintf("%s%s", prefix, rest);
    return *rest == '.' ? kvvm_xstrdup(rest + 1) : kvvm_xasprintf("settings%s", rest);
  }
  if (!*prefix || strncmp(msg, "runtimeSettings", 15) == 0 || strncmp(msg, "settings:", 9) == 0)
    return kvvm_xstrdup(msg);
  return kvvm_xasprintf("%s.%s", prefix, msg);
}

/* One problem per line (the parser reports each certificate's): each gets its own path. */
static void rewrite_lines(char *why, size_t whylen, const char *prefix)
{
  char *copy = kvvm_xstrdup(why), *save = NULL;
  size_t used = 0;
  why[0] = '\0';
  for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *fixed = rewrite_path(line, prefix);
    used += (size_t)snprintf(why + used, used < whylen ? whylen - used : 0, "%s%s",
                             used ? "\n" : "", fixed);
    free(fixed);
    if (used >= whylen)
      break;
  }
  free(copy);
}

static void rewrite_warnings(struct kvvm_config *cfg, const char *prefix)
{
  for (char **w = cfg->warnings; w && *w; w++) {
    char *n = rewrite_path(*w, prefix);
    free(*w);
    *w = n;
  }
}

static char *wrap(const json_t *pub)
{
  json_t *env = json_pack("{s:[{s:{s:O}}]}", "runtimeSettings", "handlerSettings",
                          "publicSettings", pub);
  char *text = env ? json_dumps(env, JSON_COMPACT) : NULL;
  json_decref(env);
  return text;
}

/* check-settings --os: read the document as kvvm on that system reads it. */
static enum kvvm_store_kind doc_kind;
static bool doc_kind_set;

static enum kvvm_err parse_doc(const char *text, size_t len, struct kvvm_config **out,
                               const char **form, char *why, size_t whylen)
{
  const char *prefix = "";
  json_t *root = load_root(text, len);
  json_t *pub = root ? classify(root, form, &prefix) : NULL;
  char *wrapped = pub ? wrap(pub) : NULL;
  struct kvvm_settings_opts opts = {.default_store_root = kvvm_paths_store_root(),
                                    .certs_dir = NULL,
                                    .store_kind = doc_kind_set ? doc_kind :
                                                                 kvvm_paths_store_kind()};
  if (!root)
    *form = "not readable as JSON";
  enum kvvm_err rc = kvvm_settings_parse(wrapped ? wrapped : text,
                                         wrapped ? strlen(wrapped) : len, &opts, out, why, whylen);
  rewrite_lines(why, whylen, prefix);
  if (rc == KVVM_OK)
    rewrite_warnings(*out, prefix);
  free(wrapped);
  json_decref(root);
  return rc;
}

enum kvvm_err kvvm_cli_load_doc(const char *path, struct kvvm_config **out, const char **form,
                                char *why, size_t whylen)
{
  char *text = NULL;
  size_t len = 0;
  *out = NULL;
  *form = "unread";
  enum kvvm_err rc = read_doc(path, &text, &len);
  if (rc != KVVM_OK) {
    snprintf(why, whylen, "cannot read %s: %s", path, kvvm_err_str(rc));
    return rc;
  }
  kvvm_cli_quiet(true);
  rc = parse_doc(text, len, out, form, why, whylen);
  kvvm_cli_quiet(false);
  free(text);
  return rc;
}

/* The settings parser's own advice names Get-Content; the CLI adds the ways that avoid the
 * string altogether, for each tool that produces it. */
static void print_warnings(const struct kvvm_config *cfg)
{
  bool powershell = false;
  for (char **w = cfg->warnings; w && *w; w++) {
    printf("warning: %s\n", *w);
    powershell = powershell || strstr(*w, "PowerShell") != NULL;
  }
  if (powershell)
    printf("how to fix: pass the settings as an object, not a string: in PowerShell build a\n"
           "  hashtable (Set-AzVMExtension -Settings $hashtable) instead of -SettingString, or\n"
           "  ConvertTo-Json the hashtable once (never a string that is already JSON); with the\n"
           "  Azure CLI use --settings @settings.json.\n");
}

static bool take_os(const char *os)
{
  doc_kind_set = strcmp(os, "linux") == 0 || strcmp(os, "windows") == 0;
  doc_kind = strcmp(os, "windows") == 0 ? KVVM_STORE_WINDOWS : KVVM_STORE_FILES;
  return doc_kind_set;
}

int kvvm_cli_check(int argc, char **argv)
{
  if (kvvm_cli_wants_help(argc, argv, check_help))
    return KVVM_CLI_OK;
  if (argc == 5 && strcmp(argv[2], "--os") == 0 && take_os(argv[3])) {
    argv[2] = argv[4];
    argc = 3;
  }
  if (argc != 3) {
    fputs(check_help, stderr);
    return KVVM_CLI_USAGE;
  }
  struct kvvm_config *cfg = NULL;
  const char *form = NULL;
  /* Room for every problem of a big document (the status file's message is what has to be
   * short, not this). */
  char *why = kvvm_xcalloc(1, CHECK_WHY_MAX);
  enum kvvm_err rc = kvvm_cli_load_doc(argv[2], &cfg, &form, why, CHECK_WHY_MAX);
  if (rc == KVVM_E_IO || rc == KVVM_E_NOENT) {
    fprintf(stderr, "kvvm: %s\n", why);
    free(why);
    return KVVM_CLI_USAGE;
  }
  printf("form: %s\n", form);
  if (rc != KVVM_OK) {
    char *save = NULL;
    for (char *line = strtok_r(why, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
      printf("invalid: %s\n", line);
    free(why);
    return KVVM_CLI_FAIL;
  }
  free(why);
  char *canon = kvvm_config_to_json(cfg);
  printf("valid: %zu certificate(s)\n%s\n", cfg->n_certs, canon);
  print_warnings(cfg);
  free(canon);
  kvvm_config_free(cfg);
  return KVVM_CLI_OK;
}
