#!/bin/sh
# Keeps README.md honest about the code, mechanically:
#  - every settings key the parser knows (the *_keys[] lists in src/settings*.c, whose keys are
#    accepted without an "unknown key" warning, and the literal keys passed to the lookup
#    helpers) appears in the "Settings reference" section;
#  - every variable a renewal hook gets (set in src/hooks*.c and in whichever source file builds
#    the install/renew environment, i.e. names "KVVM_HOOK_EVENT") appears in "Renewal hooks";
#  - every KVVM_* name in src/ (getenv, its wrappers such as env_or, hook variables) appears in
#    the README;
#  - the settings example in "Settings reference" passes `kvvm check-settings` without warnings.
# A name counts only inside `backticks`, as a whole word. README_TEST_SRC and README_TEST_FILE
# point the test at another source folder or README (used to check that it fails).
set -u
build=${KVVM_BUILD:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/kvvm-readme.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. "$top/tests/system/lib.sh"

src=${README_TEST_SRC:-$top/src}
readme=${README_TEST_FILE:-$top/README.md}

# A C file without its comments (a name in a comment is not code).
code() {
  ${CC:-cc} -fpreprocessed -dD -E -P -x c "$1"
}

# The lines of one "## " section of the README (heading included).
section() {
  awk -v h="## $1" '$0 == h { on = 1; print; next } on && /^## / { on = 0 } on' "$readme"
}
# The words inside `backticks` of stdin, one per line.
ticked_words() {
  grep -o '`[^`]*`' | tr -c 'A-Za-z0-9_' '\n' | grep -v '^$' | sort -u
}

section "Settings reference" | ticked_words >"$tmp/settings-words"
section "Renewal hooks" | ticked_words >"$tmp/hooks-words"
ticked_words <"$readme" >"$tmp/all-words"
check "README has a Settings reference section" "[ -s '$tmp/settings-words' ]"
check "README has a Renewal hooks section" "[ -s '$tmp/hooks-words' ]"

# (a) Settings keys. Macros of the form #define NAME "key" (SMS in settings_public.c) stand
# for their key where a list names them.
for f in "$src"/settings/settings*.c; do code "$f"; done >"$tmp/settings.c"
sed -n 's/^#define \([A-Za-z_][A-Za-z0-9_]*\) "\([A-Za-z][A-Za-z0-9]*\)"$/\1 \2/p' \
  "$tmp/settings.c" >"$tmp/macros"
awk '/_keys\[\] *= *\{/, /\};/' "$tmp/settings.c" >"$tmp/lists"
{
  grep -o '"[A-Za-z][A-Za-z0-9]*"' "$tmp/lists" | tr -d '"'
  while read -r name key; do
    grep -q "\\b$name\\b" "$tmp/lists" && echo "$key"
  done <"$tmp/macros"
  # Literal keys handed to the lookup helpers (json_object_get, settings_get, settings_key,
  # auth_key): from the helper's name to the end of its statement, lines joined.
  tr '\n' ' ' <"$tmp/settings.c" |
    grep -oE '\b(json_object_get|settings_get|settings_key|auth_key)\([^;]*' |
    grep -o '"[A-Za-z][A-Za-z0-9]*"' | tr -d '"'
} | sort -u >"$tmp/keys"
n=$(wc -l <"$tmp/keys")
check "found the parser's settings keys in src/settings*.c ($n)" "[ $n -ge 20 ]"
while read -r key; do
  check "settings key $key is in the Settings reference" "grep -qx '$key' '$tmp/settings-words'"
done <"$tmp/keys"

# (b) Hook variables: "NAME=..." strings in src/hooks*.c (PATH, KVVM_HOOK_EVENT=pass, ...)
# and every "KVVM_..." name in the files that set KVVM_HOOK_EVENT.
for f in "$src"/*/*.c; do
  case $f in */hooks*.c) ;; *) code "$f" | grep -q '"KVVM_HOOK_EVENT' || continue ;; esac
  code "$f"
done >"$tmp/hooks.c"
{
  grep -o '"[A-Z][A-Z0-9_]*=' "$tmp/hooks.c" | tr -d '"='
  grep -o '"KVVM_[A-Z0-9_]*[A-Z0-9]["=]' "$tmp/hooks.c" | tr -d '"='
} | sort -u >"$tmp/hookvars"
n=$(wc -l <"$tmp/hookvars")
check "found the hook variables the code sets ($n)" "[ $n -ge 15 ]"
while read -r var; do
  check "hook variable $var is in Renewal hooks" "grep -qx '$var' '$tmp/hooks-words'"
done <"$tmp/hookvars"

# (c) KVVM_* environment variables: names read with getenv, and every other complete "KVVM_..."
# string in src/ (wrappers such as env_or("KVVM_STATE_DIR", ...) take the name as a literal).
for f in "$src"/*/*.c; do code "$f"; done >"$tmp/all.c"
{
  grep -o 'getenv("KVVM_[A-Za-z0-9_]*")' "$tmp/all.c" | sed 's/getenv("\(.*\)")/\1/'
  grep -o '"KVVM_[A-Z0-9_]*[A-Z0-9]"' "$tmp/all.c" | tr -d '"'
} | sort -u >"$tmp/envvars"
n=$(grep -c 'getenv("KVVM_' "$tmp/all.c")
check "found KVVM_* variables read with getenv ($n calls)" "[ $n -ge 3 ]"
while read -r var; do
  check "environment variable $var is in the README" "grep -qx '$var' '$tmp/all-words'"
done <"$tmp/envvars"

# The example: the first ```json block of the Settings reference.
section "Settings reference" | awk '/^```json$/ { on = 1; next } on && /^```$/ { exit } on' \
  >"$tmp/example.json"
kvvm=$top/$build/pkg/bin/kvvm
check "the kvvm CLI is built ($build/pkg/bin/kvvm)" "[ -x '$kvvm' ]"
"$kvvm" check-settings "$tmp/example.json" >"$tmp/example.out" 2>&1
rc=$?
check "the Settings reference example is valid settings" \
  "[ -s '$tmp/example.json' ] && [ $rc = 0 ] && grep -q '^valid: ' '$tmp/example.out'"
check "the Settings reference example gives no warnings" "! grep -qi '^warn' '$tmp/example.out'"

echo "test_readme: $passed passed, $failed failed"
[ "$failed" = 0 ]
