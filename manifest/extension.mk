# The one place that names the package: publisher, type and version.
# `make package VERSION=x.y.z` overrides the version for one build.
KVVM_PUBLISHER := Kvvm.Azure
KVVM_TYPE := KeyVaultCerts
KVVM_VERSION := 0.1.0
# One extension type per OS, as Microsoft publishes KeyVaultForLinux and KeyVaultForWindows:
# the Windows package (make windows) is this type, with its own publishing manifest.
KVVM_TYPE_WINDOWS := KeyVaultCertsWindows
