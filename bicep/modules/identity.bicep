// User-assigned managed identity of the function app: host storage, state storage, Key Vault
// references and Application Insights ingestion all authenticate with it (no keys anywhere).
param name string
param location string
param tags object = {}

resource uami 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = uami.id
output name string = uami.name
output clientId string = uami.properties.clientId
output principalId string = uami.properties.principalId
