// Log Analytics workspace + workspace-based Application Insights. Local (key) auth is disabled on
// the component: telemetry is ingested with the app's managed identity
// (APPLICATIONINSIGHTS_AUTHENTICATION_STRING + Monitoring Metrics Publisher, see rbac.bicep).
param workspaceName string
param appInsightsName string
param location string
param tags object = {}
param retentionInDays int = 30

resource law 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
  }
}

resource appi 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: law.id
    DisableLocalAuth: true
  }
}

output workspaceId string = law.id
output workspaceName string = law.name
output appInsightsId string = appi.id
output appInsightsName string = appi.name
