// kvvm (publisher Kvvm.Azure, type KeyVaultCerts) on an existing Linux VM, in Bicep: the VM's
// user-assigned identity gets "Key Vault Secrets User" on the vault, kvvm keeps two
// certificates on the VM, and CustomScript runs only after kvvm has installed them.
//   az deployment group create -g my-rg -f vm.bicep -p vmName=kvvm-vm keyVaultName=myvault
param vmName string
param keyVaultName string
param identityName string = 'kvvm-identity'
param location string = resourceGroup().location

resource vm 'Microsoft.Compute/virtualMachines@2023-09-01' existing = {
  name: vmName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: identityName
}

// Key Vault Secrets User: kvvm reads certificates through the secrets endpoint (the private
// key comes with the secret).
var keyVaultSecretsUser = subscriptionResourceId('Microsoft.Authorization/roleDefinitions',
  '4633458b-17de-408a-b874-0445c86b69e6')

resource readSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identity.id, keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: keyVaultSecretsUser
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource kvvm 'Microsoft.Compute/virtualMachines/extensions@2023-09-01' = {
  parent: vm
  name: 'KeyVaultCerts'
  location: location
  dependsOn: [
    readSecrets
  ]
  properties: {
    publisher: 'Kvvm.Azure'
    type: 'KeyVaultCerts'
    typeHandlerVersion: '0.1'
    autoUpgradeMinorVersion: true
    settings: {
      secretsManagementSettings: {
        pollingIntervalInS: '3600'
        linkOnRenewal: false
        requireInitialSync: true
        observedCertificates: [
          {
            url: '${vault.properties.vaultUri}secrets/web-tls'
            certificateStoreName: 'MY'
            certificateStoreLocation: '/etc/ssl/kvvm'
            accounts: [
              'Network Service'
            ]
            acls: [
              {
                user: 'www-data'
                group: 'www-data'
              }
            ]
            keyExportable: false
          }
          {
            url: '${vault.properties.vaultUri}secrets/api-client'
            certificateStoreLocation: '/etc/ssl/kvvm'
            customSymbolicLinkName: 'api-client'
            acls: [
              {
                group: 'ssl-cert'
              }
            ]
          }
        ]
      }
      authenticationSettings: {
        msiEndpoint: 'http://169.254.169.254/metadata/identity'
        msiClientId: identity.properties.clientId
      }
    }
  }
}

resource afterKvvm 'Microsoft.Compute/virtualMachines/extensions@2023-09-01' = {
  parent: vm
  name: 'CustomScript'
  location: location
  dependsOn: [
    kvvm
  ]
  properties: {
    publisher: 'Microsoft.Azure.Extensions'
    type: 'CustomScript'
    typeHandlerVersion: '2.1'
    autoUpgradeMinorVersion: true
    provisionAfterExtensions: [
      'KeyVaultCerts'
    ]
    settings: {
      commandToExecute: 'ls -l /etc/ssl/kvvm && systemctl reload nginx || true'
    }
  }
}
