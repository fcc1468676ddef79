#!/bin/sh
# kvvm for Windows (publisher Kvvm.Azure, type KeyVaultCertsWindows) on a Windows Server VM and
# scale set with the Azure CLI. The settings come from settings-windows.json beside this
# script (--settings @FILE: no shell quoting of JSON); settings-windows-v1.json is the v1.0
# shape (one store for all certificates), which kvvm reads as well. Replace msiClientId with
# the clientId of the VM's user-assigned identity:
#   az identity show -g "$RG" -n kvvm-identity --query clientId -o tsv
set -eu
RG=${RG:-my-rg}
VM=${VM:-kvvm-win}
VMSS=${VMSS:-kvvm-win-vmss}
here=$(cd "$(dirname "$0")" && pwd)

az vm extension set --resource-group "$RG" --vm-name "$VM" \
  --name KeyVaultCertsWindows --publisher Kvvm.Azure --version 0.1 \
  --settings @"$here/settings-windows.json"

az vmss extension set --resource-group "$RG" --vmss-name "$VMSS" \
  --name KeyVaultCertsWindows --publisher Kvvm.Azure --version 0.1 \
  --settings @"$here/settings-windows.json"
az vmss update-instances --resource-group "$RG" --name "$VMSS" --instance-ids '*'

az vm extension show --resource-group "$RG" --vm-name "$VM" --name KeyVaultCertsWindows \
  --instance-view
