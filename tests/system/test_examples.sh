#!/bin/sh
# Keeps scripts/examples/ and the publishing manifest honest: every JSON example parses, every
# settings document in them (the ARM templates' extension settings with ARM expressions replaced
# by placeholders, the CLI and Arc settings files) passes `kvvm check-settings` without warnings,
# each deployment example names our publisher and type and none Microsoft's Key Vault publisher,
# and the rendered manifest.xml is well-formed and names what manifest/extension.mk says.
set -u
build=${KVVM_BUILD:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/kvvm-examples.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. "$top/tests/system/lib.sh"

ex=$top/scripts/examples
kvvm=$top/$build/pkg/bin/kvvm
py=/usr/bin/python3
publisher=$(mkval KVVM_PUBLISHER)
type=$(mkval KVVM_TYPE)
version=$(mkval KVVM_VERSION)
check "extension.mk names publisher, type and version" "[ -n '$publisher' ] && [ -n '$type' ] && [ -n '$version' ]"
check "the kvvm CLI is built ($build/pkg/bin/kvvm)" "[ -x '$kvvm' ]"

# Every JSON example parses.
for f in "$ex"/*.json; do
  check "$(basename "$f") parses" "$py -c 'import json,sys; json.load(open(sys.argv[1]))' '$f'"
done

type_win=$(mkval KVVM_TYPE_WINDOWS)
# check-settings: valid, and no warnings (a warning line starts with "warning"); the Windows
# examples as kvvm on Windows reads them (--os windows: the certificate store, LocalMachine).
os=linux
cs() {  # label, file
  "$kvvm" check-settings --os $os "$2" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  check "$1: check-settings accepts it" "[ $rc = 0 ] && grep -q '^valid: ' '$tmp/out'"
  check "$1: no warnings" "! grep -qi '^warn' '$tmp/out' '$tmp/err'"
}
for f in settings.json arc-settings.json; do
  cs "$f" "$ex/$f"
done
os=windows
for f in settings-windows.json settings-windows-v1.json; do
  cs "$f" "$ex/$f"
done
check "settings-windows.json lands in LocalMachine\\MY and LocalMachine\\WebHosting" \
  "$kvvm check-settings --os windows '$ex/settings-windows.json' | grep -q 'LocalMachine.*WebHosting'"

# The ARM templates: every extension resource (VM child resources and scale set
# extensionProfile entries) of our publisher; its properties.settings, ARM expressions
# replaced by placeholders by key, written out one file each.
for t in arm-vm.json arm-vmss.json arm-vm-windows.json arm-vmss-windows.json; do
  case $t in *-windows.json) os=windows t_type=$type_win ;; *) os=linux t_type=$type ;; esac
  $py - "$ex/$t" "$tmp/${t%.json}" "$publisher" "$t_type" >"$tmp/extract.out" 2>&1 <<'PY'
import json, sys
tpl, out, pub, typ = sys.argv[1:5]
PLACE = {"msiClientId": "11111111-2222-3333-4444-555555555555",
         "url": "https://placeholder.vault.azure.net/secrets/placeholder"}

def subst(v, key=None):
    if isinstance(v, dict):
        return {k: subst(x, k) for k, x in v.items()}
    if isinstance(v, list):
        return [subst(x, key) for x in v]
    if isinstance(v, str) and v.startswith("[") and not v.startswith("[["):
        if key not in PLACE:
            sys.exit("ARM expression under %r: no placeholder for it" % key)
        return PLACE[key]
    return v

found = []
def walk(v):
    if isinstance(v, dict):
        p = v.get("properties")
        if isinstance(p, dict) and "typeHandlerVersion" in p:
            found.append(p)
        for x in v.values():
            walk(x)
    elif isinstance(v, list):
        for x in v:
            walk(x)
walk(json.load(open(tpl)))
ours = [p for p in found if p.get("publisher") == pub and p.get("type") == typ]
if not ours:
    sys.exit("no extension with publisher %s and type %s" % (pub, typ))
for i, p in enumerate(ours):
    json.dump(subst(p["settings"]), open("%s.%d.json" % (out, i), "w"))
others = [p for p in found if p not in ours]
print("ours=%d sequenced=%d" % (len(ours),
      sum(1 for p in others if typ in p.get("provisionAfterExtensions", []))))
PY
  rc=$?
  check "$t: extension resource(s) of $publisher/$t_type found and extracted" "[ $rc = 0 ]"
  [ $rc = 0 ] || cat "$tmp/extract.out"
  check "$t: a second extension is sequenced after ours (provisionAfterExtensions)" \
    "grep -q 'sequenced=[1-9]' '$tmp/extract.out'"
  for s in "$tmp/${t%.json}".*.json; do
    [ -f "$s" ] && cs "$t settings #$(basename "$s" .json | sed 's/.*\.//')" "$s"
  done
done

# The Bicep file and the PowerShell hashtable literal, read as their languages read them
# (tests/system/example_settings.py), expressions replaced by placeholders by key.
os=linux
$py "$top/tests/system/example_settings.py" bicep "$ex/vm.bicep" "$publisher" "$type" \
  "$tmp/bicep" >"$tmp/extract.out" 2>&1
check "vm.bicep: the extension resource's settings extracted" "[ $? = 0 ]" || cat "$tmp/extract.out"
check "vm.bicep: a second extension is sequenced after ours (provisionAfterExtensions)" \
  "grep -A3 'provisionAfterExtensions' '$ex/vm.bicep' | grep -q \"'$type'\""
[ -f "$tmp/bicep.0.json" ] && cs "vm.bicep settings" "$tmp/bicep.0.json"
$py "$top/tests/system/example_settings.py" ps1 "$ex/powershell.ps1" Settings "$tmp/ps1" \
  >"$tmp/extract.out" 2>&1
check "powershell.ps1: the \$Settings hashtable literal extracted" "[ $? = 0 ]" || cat "$tmp/extract.out"
[ -f "$tmp/ps1.0.json" ] && cs "powershell.ps1 \$Settings" "$tmp/ps1.0.json"
check "powershell.ps1: interpolated vault URLs come out whole" \
  "grep -q 'https://myvault.vault.azure.net/secrets/web-tls' '$tmp/ps1.0.json'"
os=windows
$py "$top/tests/system/example_settings.py" ps1 "$ex/powershell-windows.ps1" Settings \
  "$tmp/ps1w" >"$tmp/extract.out" 2>&1
check "powershell-windows.ps1: the \$Settings hashtable literal extracted" "[ $? = 0 ]" ||
  cat "$tmp/extract.out"
[ -f "$tmp/ps1w.0.json" ] && cs "powershell-windows.ps1 \$Settings" "$tmp/ps1w.0.json"
os=linux

# Every deployment example names our publisher and type; none Microsoft's Key Vault publisher.
for f in arm-vm.json arm-vmss.json vm.bicep powershell.ps1 azure-cli.sh arc.sh; do
  check "$f names $publisher and $type" "grep -q '$publisher' '$ex/$f' && grep -q '$type' '$ex/$f'"
done
for f in arm-vm-windows.json arm-vmss-windows.json powershell-windows.ps1 azure-cli-windows.sh; do
  check "$f names $publisher and $type_win" \
    "grep -q '$publisher' '$ex/$f' && grep -q \"$type_win['\\\" ]\" '$ex/$f'"
done
check "no example names Microsoft.Azure.KeyVault" "! grep -rqi 'Microsoft\.Azure\.KeyVault' '$ex'"
check "powershell.ps1 builds settings as a hashtable" "grep -q '^\$Settings = @{' '$ex/powershell.ps1'"
# The escaped-string mistake powershell.ps1 warns about: settings.json as one JSON string.
$py -c 'import json,sys; print(json.dumps(json.dumps(json.load(open(sys.argv[1])))))' "$ex/settings.json" >"$tmp/ps.json"
"$kvvm" check-settings "$tmp/ps.json" >"$tmp/out" 2>&1
check "the PowerShell escaped-string form is read and recognised with a warning" \
  "[ $? = 0 ] && grep -q '^warning: .*PowerShell quoting mistake' '$tmp/out'"

# The publishing manifest, rendered from extension.mk.
sh "$top/scripts/render-manifest.sh" "$tmp/manifest.xml" 2>"$tmp/render.err"
check "render-manifest.sh renders manifest.xml" "[ $? = 0 ] && [ -s '$tmp/manifest.xml' ]"
$py - "$tmp/manifest.xml" >"$tmp/manifest.out" 2>&1 <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://schemas.microsoft.com/windowsazure}"
if root.tag != ns + "ExtensionImage":
    sys.exit("root is %s" % root.tag)
for k in ("ProviderNameSpace", "Type", "Version", "IsJsonExtension", "SupportedOS", "HostingResources"):
    e = root.find(ns + k)
    print("%s=%s" % (k, "" if e is None or e.text is None else e.text.strip()))
PY
check "manifest.xml is well-formed XML with an ExtensionImage root" "[ $? = 0 ]"
check "manifest.xml names $publisher, $type, $version" \
  "grep -qx 'ProviderNameSpace=$publisher' '$tmp/manifest.out' && grep -qx 'Type=$type' '$tmp/manifest.out' && \
   grep -qx 'Version=$version' '$tmp/manifest.out'"
check "manifest.xml: JSON extension, Linux, VmRole" \
  "grep -qx 'IsJsonExtension=true' '$tmp/manifest.out' && grep -qx 'SupportedOS=Linux' '$tmp/manifest.out' && \
   grep -qx 'HostingResources=VmRole' '$tmp/manifest.out'"
check "manifest.xml has no unrendered placeholder and no Microsoft namespace" \
  "! grep -q '@[A-Z]*@' '$tmp/manifest.xml' && ! grep -q '<ProviderNameSpace>Microsoft' '$tmp/manifest.xml'"
VERSION=9.8.7 sh "$top/scripts/render-manifest.sh" "$tmp/m2.xml"
check "VERSION= overrides the rendered version" "grep -q '<Version>9.8.7</Version>' '$tmp/m2.xml'"

# The Windows package's own publishing manifest: its type, SupportedOS Windows.
sh "$top/scripts/render-manifest.sh" "$tmp/mw.xml" windows
check "manifest-windows renders with type $type_win and SupportedOS Windows" \
  "grep -q '<Type>$type_win</Type>' '$tmp/mw.xml' && grep -q '<SupportedOS>Windows</SupportedOS>' '$tmp/mw.xml'"

echo "examples: $passed passed, $failed failed"
[ "$failed" = 0 ]
