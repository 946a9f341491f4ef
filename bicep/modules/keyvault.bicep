// Key Vault (RBAC mode) holding the D365 app registration's client secret (or the password of its
// certificate). The secret values are optional @secure() inputs: when empty nothing is written and
// an operator sets the secret afterwards (docs/operations.md). Nothing secret is ever output.
param name string
param location string
param tags object = {}
param clientSecretName string = 'd365-client-secret'
param certificatePasswordName string = 'd365-client-certificate-password'

@secure()
param clientSecret string = ''

@secure()
param certificatePassword string = ''

resource kv 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
  }
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(clientSecret)) {
  parent: kv
  name: clientSecretName
  properties: {
    value: clientSecret
    contentType: 'text/plain'
  }
}

resource certPassword 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(certificatePassword)) {
  parent: kv
  name: certificatePasswordName
  properties: {
    value: certificatePassword
    contentType: 'text/plain'
  }
}

output id string = kv.id
output name string = kv.name
output vaultUri string = kv.properties.vaultUri
