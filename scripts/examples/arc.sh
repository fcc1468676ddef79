#!/bin/sh
# kvvm (publisher Kvvm.Azure, type KeyVaultCerts) on an Azure Arc-enabled server. Arc has no
# IMDS: the identity is the machine's system-assigned one, served by the Arc agent (himds) at
# http://localhost:40342/metadata/identity, which kvvm answers with the challenge-file handshake.
# Grant that identity "Key Vault Secrets User" on the vault first:
#   principal=$(az connectedmachine show -g "$RG" -n "$MACHINE" --query identity.principalId -o tsv)
#   az role assignment create --assignee-object-id "$principal" --assignee-principal-type ServicePrincipal \
#     --role "Key Vault Secrets User" --scope "$(az keyvault show -n myvault --query id -o tsv)"
# Needs the connectedmachine CLI extension: az extension add --name connectedmachine
set -eu
RG=${RG:-my-rg}
MACHINE=${MACHINE:-my-arc-server}
LOCATION=${LOCATION:-westeurope}
here=$(cd "$(dirname "$0")" && pwd)

az connectedmachine extension create --resource-group "$RG" --machine-name "$MACHINE" \
  --location "$LOCATION" --name KeyVaultCerts \
  --publisher Kvvm.Azure --type KeyVaultCerts --type-handler-version 0.1 \
  --settings @"$here/arc-settings.json"
