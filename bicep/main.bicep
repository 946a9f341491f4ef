// p2c-sync infrastructure: `azd up` provisions this (subscription scope: it creates the resource
// group) and deploys the function app tagged azd-service-name=api (azure.yaml).
// Parsed offline by pycep-parser and tree-sitter-bicep (tests/unit/infra): no object spread and no
// literal-union types here. Real validation: `az bicep build` / `azd provision --preview` online.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; used in resource names and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Azure region of all resources.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the deploying user (azd: AZURE_PRINCIPAL_ID); gets Key Vault Secrets Officer to set the client secret. Empty = none.')
param principalId string = ''

// ---- D365 connection ------------------------------------------------------------------------
@minLength(12)
@description('P2C_DATAVERSE_URL: Dataverse environment URL, e.g. https://contoso.crm.dynamics.com')
param dataverseUrl string

@minLength(12)
@description('P2C_FINOPS_URL: F&O environment URL, e.g. https://contoso.operations.dynamics.com')
param finopsUrl string

@description('P2C_TENANT_ID: Entra tenant of the D365 app registration (default: this subscription tenant).')
param tenantId string = ''

@description('P2C_CLIENT_ID: application (client) id of the D365 app registration.')
param clientId string = ''

@description('How the app authenticates to D365: secret (Key Vault), certificate (PEM path + Key Vault password) or managedIdentity (needs extra D365 setup, docs/operations.md).')
@allowed([
  'secret'
  'certificate'
  'managedIdentity'
])
param d365AuthMode string = 'secret'

@secure()
@description('Optional: the client secret, written to Key Vault as d365-client-secret. Leave empty and set it in Key Vault after provisioning.')
param d365ClientSecret string = ''

@description('P2C_CLIENT_CERTIFICATE_PATH when d365AuthMode is certificate (a PEM file readable by the app).')
param clientCertificatePath string = ''

@secure()
@description('Optional: password of that PEM, written to Key Vault as d365-client-certificate-password.')
param d365ClientCertificatePassword string = ''

@description('P2C_AUTHORITY_HOST')
param authorityHost string = 'https://login.microsoftonline.com'

@description('P2C_COMPANIES: F&O legal entities with their Sales business unit, e.g. usmf=Contoso US,demf=Contoso DE')
param companies string = 'usmf'

@description('P2C_DEFAULT_COMPANY; empty = the first of companies.')
param defaultCompany string = ''

// ---- schedules (NCRONTAB, UTC), one per template -------------------------------------------------
@description('PRODUCTS_SCHEDULE')
param productsSchedule string = '0 */15 * * * *'
@description('ACCOUNTS_SCHEDULE')
param accountsSchedule string = '0 */15 * * * *'
@description('CONTACTS_SCHEDULE')
param contactsSchedule string = '0 */15 * * * *'
@description('CONTACTS_TO_CUSTOMERS_SCHEDULE')
param contactsToCustomersSchedule string = '0 */15 * * * *'
@description('QUOTES_SCHEDULE')
param quotesSchedule string = '0 */15 * * * *'
@description('ORDERS_TO_FNO_SCHEDULE')
param ordersToFnoSchedule string = '0 */15 * * * *'
@description('ORDERS_TO_SALES_SCHEDULE')
param ordersToSalesSchedule string = '0 */15 * * * *'
@description('INVOICES_SCHEDULE')
param invoicesSchedule string = '0 */15 * * * *'

@description('Template -> minutes without a successful run before the stale alert fires: 3x the schedule interval (0 = never; max 1440, the alert window). Keep in step with the schedules.')
param staleAfterMinutes object = {
  products: 45
  accounts: 45
  contacts: 45
  'contacts-to-customers': 45
  quotes: 45
  'orders-to-fno': 45
  'orders-to-sales': 45
  invoices: 45
}

// ---- tuning (defaults of shared/settings.py) ----------------------------------------------------
param dataversePageSize int = 2500
param finopsPageSize int = 5000
param dataverseBulkSize int = 1000
param finopsBatchSize int = 100
param maxConcurrency int = 8
param httpTimeoutSeconds int = 120
param maxRetries int = 8
param runTimeBudgetSeconds int = 1500
param parkAfterAttempts int = 5
param invoiceLookbackDays int = 3
param mappingsDir string = 'mappings'
param schemaCatalogueDir string = 'sandbox/schemas'

// ---- hosting ------------------------------------------------------------------------------------
@allowed([
  '3.11'
])
param pythonVersion string = '3.11'

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@allowed([
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Queues of the state account (shared/runqueue.py RUN_QUEUE); poison queues are created by the host.')
param queueNames array = [
  'p2c-runs'
]

// ---- alerts -------------------------------------------------------------------------------------
@description('Comma-separated e-mail receivers of the action group; empty = no action group.')
param alertEmailAddresses string = ''
param recordErrorThreshold int = 0
param throttledPercentThreshold int = 20
param throttledMinRequests int = 100

var tags = {
  'azd-env-name': environmentName
  app: 'p2c-sync'
}
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var appName = 'func-p2c-${resourceToken}'
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'
var effectiveTenantId = empty(tenantId) ? subscription().tenantId : tenantId
var effectiveDefaultCompany = empty(defaultCompany) ? trim(first(split(first(split(companies, ',')), '='))) : defaultCompany
var schedules = {
  PRODUCTS_SCHEDULE: productsSchedule
  ACCOUNTS_SCHEDULE: accountsSchedule
  CONTACTS_SCHEDULE: contactsSchedule
  CONTACTS_TO_CUSTOMERS_SCHEDULE: contactsToCustomersSchedule
  QUOTES_SCHEDULE: quotesSchedule
  ORDERS_TO_FNO_SCHEDULE: ordersToFnoSchedule
  ORDERS_TO_SALES_SCHEDULE: ordersToSalesSchedule
  INVOICES_SCHEDULE: invoicesSchedule
}

resource rg 'Microsoft.Resources/resourceGroups@2022-09-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-p2c-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    workspaceName: 'log-p2c-${resourceToken}'
    appInsightsName: 'appi-p2c-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'stp2c${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    queueNames: queueNames
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-p2c-${take(resourceToken, 13)}'
    location: location
    tags: tags
    clientSecret: d365ClientSecret
    certificatePassword: d365ClientCertificatePassword
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    principalId: identity.outputs.principalId
    userPrincipalId: principalId
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    planName: 'plan-p2c-${resourceToken}'
    appName: appName
    location: location
    tags: tags
    serviceName: 'api'
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    appInsightsName: monitoring.outputs.appInsightsName
    keyVaultUri: keyVault.outputs.vaultUri
    pythonVersion: pythonVersion
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    dataverseUrl: dataverseUrl
    finopsUrl: finopsUrl
    tenantId: effectiveTenantId
    clientId: clientId
    authorityHost: authorityHost
    d365AuthMode: d365AuthMode
    clientSecretName: 'd365-client-secret'
    clientCertificatePath: clientCertificatePath
    certificatePasswordName: 'd365-client-certificate-password'
    companies: companies
    defaultCompany: effectiveDefaultCompany
    schedules: schedules
    dataversePageSize: dataversePageSize
    finopsPageSize: finopsPageSize
    dataverseBulkSize: dataverseBulkSize
    finopsBatchSize: finopsBatchSize
    maxConcurrency: maxConcurrency
    httpTimeoutSeconds: httpTimeoutSeconds
    maxRetries: maxRetries
    runTimeBudgetSeconds: runTimeBudgetSeconds
    parkAfterAttempts: parkAfterAttempts
    invoiceLookbackDays: invoiceLookbackDays
    mappingsDir: mappingsDir
    schemaCatalogueDir: schemaCatalogueDir
  }
  // role assignments first: the host needs blob access at start, Key Vault refs need Secrets User
  dependsOn: [
    rbac
  ]
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    namePrefix: 'p2c-${environmentName}'
    location: location
    tags: tags
    workspaceId: monitoring.outputs.workspaceId
    alertEmailAddresses: alertEmailAddresses
    staleAfterMinutes: staleAfterMinutes
    recordErrorThreshold: recordErrorThreshold
    throttledPercentThreshold: throttledPercentThreshold
    throttledMinRequests: throttledMinRequests
  }
}

// azd writes these to .azure/<env>/.env. Names and ids only: no secret, key or connection string.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_URL string = 'https://${functionApp.outputs.defaultHostName}'
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output P2C_STATE_STORAGE_ACCOUNT string = storage.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output LOG_ANALYTICS_WORKSPACE_ID string = monitoring.outputs.workspaceId
