# kvvm for Windows (publisher Kvvm.Azure, type KeyVaultCertsWindows) on a Windows Server VM and
# scale set with Az PowerShell. Assumes: Connect-AzAccount done, the VM / scale set exists with
# the user-assigned identity attached, and that identity holds "Key Vault Secrets User" on the
# vault (see arm-vm-windows.json). The certificates land in Cert:\LocalMachine\My and
# Cert:\LocalMachine\WebHosting, keys in the machine keyset, not exportable.

$ResourceGroup = 'my-rg'
$Location      = 'westeurope'
$VmName        = 'kvvm-win'
$VmssName      = 'kvvm-win-vmss'
$VaultName     = 'myvault'
$Identity      = Get-AzUserAssignedIdentity -ResourceGroupName $ResourceGroup -Name 'kvvm-identity'

# The settings as a hashtable (not a JSON string: see powershell.ps1 for why).
$Settings = @{
    secretsManagementSettings = @{
        pollingIntervalInS   = '3600'
        requireInitialSync   = $true
        observedCertificates = @(
            @{
                url                      = "https://$VaultName.vault.azure.net/secrets/web-tls"
                certificateStoreName     = 'MY'
                certificateStoreLocation = 'LocalMachine'
                keyExportable            = $false
            },
            @{
                url                      = "https://$VaultName.vault.azure.net/secrets/api-client"
                certificateStoreName     = 'WebHosting'
                certificateStoreLocation = 'LocalMachine'
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
    -Name 'KeyVaultCertsWindows' -Publisher 'Kvvm.Azure' -ExtensionType 'KeyVaultCertsWindows' `
    -TypeHandlerVersion '0.1' -Settings $Settings

# A scale set: add the extension to the model, then apply the model.
$Vmss = Get-AzVmss -ResourceGroupName $ResourceGroup -VMScaleSetName $VmssName
$Vmss = Add-AzVmssExtension -VirtualMachineScaleSet $Vmss -Name 'KeyVaultCertsWindows' `
    -Publisher 'Kvvm.Azure' -Type 'KeyVaultCertsWindows' -TypeHandlerVersion '0.1' `
    -AutoUpgradeMinorVersion $true -Setting $Settings
Update-AzVmss -ResourceGroupName $ResourceGroup -VMScaleSetName $VmssName -VirtualMachineScaleSet $Vmss

# On the VM: what kvvm installed, and its service.
#   Get-ChildItem Cert:\LocalMachine\My | Where-Object FriendlyName -like '*(kvvm)'
#   Get-Service kvvmd
