#!/bin/sh
# kvvm (publisher Kvvm.Azure, type KeyVaultCerts) on a VM and on a scale set with the Azure CLI.
# The settings come from settings.json beside this script (--settings @FILE): no shell quoting
# of JSON. Replace msiClientId in it with the clientId of the VM's user-assigned identity:
#   az identity show -g "$RG" -n kvvm-identity --query clientId -o tsv
set -eu
RG=${RG:-my-rg}
VM=${VM:-kvvm-vm}
VMSS=${VMSS:-kvvm-vmss}
here=$(cd "$(dirname "$0")" && pwd)

az vm extension set --resource-group "$RG" --vm-name "$VM" \
  --name KeyVaultCerts --publisher Kvvm.Azure --version 0.1 \
  --settings @"$here/settings.json"

# A scale set: this updates the model; with a manual upgrade policy, roll it out to instances.
az vmss extension set --resource-group "$RG" --vmss-name "$VMSS" \
  --name KeyVaultCerts --publisher Kvvm.Azure --version 0.1 \
  --settings @"$here/settings.json"
az vmss update-instances --resource-group "$RG" --name "$VMSS" --instance-ids '*'

# What the agent reports back (kvvm's status message and substatus):
az vm extension show --resource-group "$RG" --vm-name "$VM" --name KeyVaultCerts --instance-view
