# kvvm (publisher Kvvm.Azure, type KeyVaultCerts) on a VM and on a scale set with Az PowerShell.
# Assumes: Connect-AzAccount done, the VM / scale set exists with the user-assigned identity
# attached, and that identity holds "Key Vault Secrets User" on the vault (see arm-vm.json).

$ResourceGroup = 'my-rg'
$Location      = 'westeurope'
$VmName        = 'kvvm-vm'
$VmssName      = 'kvvm-vmss'
$VaultName     = 'myvault'
$Identity      = Get-AzUserAssignedIdentity -ResourceGroupName $ResourceGroup -Name 'kvvm-identity'

# The settings as a hashtable. Az serialises it to JSON itself, so the extension receives an
# object.
#
# The common mistake is to build the settings as a JSON *string* and escape it by hand, e.g.
#   $Settings = '{\"secretsManagementSettings\": {\"observedCertificates\": [\"https://...\"]}}'
#   Set-AzVMExtension ... -SettingString $Settings
# or to ConvertTo-Json the hashtable and pass that string where a hashtable is expected. The
# extension then receives one JSON string (with backslashes in it) instead of an object, and
# an extension that expects an object fails on it. kvvm decodes that form once with a warning
# (`kvvm check-settings` names it), but the fix is this: pass a hashtable to -Settings and let
# the cmdlet do the JSON. There is nothing to escape and nothing to get wrong.
$Settings = @{
    secretsManagementSettings = @{
        pollingIntervalInS  = '3600'
        linkOnRenewal       = $false
        requireInitialSync  = $true
        observedCertificates = @(
            @{
                url                      = "https://$VaultName.vault.azure.net/secrets/web-tls"
                certificateStoreName     = 'MY'
                certificateStoreLocation = '/etc/ssl/kvvm'
                accounts                 = @('Network Service')                 # Windows key
                acls                     = @(@{ user = 'www-data'; group = 'www-data' })  # Linux key
                keyExportable            = $false
            },
            @{
                url                      = "https://$VaultName.vault.azure.net/secrets/api-client"
                certificateStoreLocation = '/etc/ssl/kvvm'
                customSymbolicLinkName   = 'api-client'
                acls                     = @(@{ group = 'ssl-cert' })
            }
        )
    }
    authenticationSettings = @{
        msiEndpoint = 'http://169.254.169.254/metadata/identity'
        msiClientId = $Identity.ClientId
    }
}

# A single VM.
Set-AzVMExtension -ResourceGroupName $ResourceGroup -VMName $VmName -Location $Location `
    -Name 'KeyVaultCerts' -Publisher 'Kvvm.Azure' -ExtensionType 'KeyVaultCerts' `
    -TypeHandlerVersion '0.1' -Settings $Settings

# A scale set: add the extension to the model, then apply the model.
$Vmss = Get-AzVmss -ResourceGroupName $ResourceGroup -VMScaleSetName $VmssName
$Vmss = Add-AzVmssExtension -VirtualMachineScaleSet $Vmss -Name 'KeyVaultCerts' `
    -Publisher 'Kvvm.Azure' -Type 'KeyVaultCerts' -TypeHandlerVersion '0.1' `
    -AutoUpgradeMinorVersion $true -Setting $Settings
Update-AzVmss -ResourceGroupName $ResourceGroup -VMScaleSetName $VmssName -VirtualMachineScaleSet $Vmss
# With a manual upgrade policy the instances take the new model only when upgraded:
# Update-AzVmssInstance -ResourceGroupName $ResourceGroup -VMScaleSetName $VmssName -InstanceId '*'
