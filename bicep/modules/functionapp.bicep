// Flex Consumption (FC1) plan and the Linux Python function app with its app settings.
// On Flex the runtime (python 3.11) is set in functionAppConfig.runtime, NOT through
// FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION app settings (those are rejected).
param planName string
param appName string
param location string
param tags object = {}
param serviceName string = 'api'

param identityId string
param identityClientId string
param storageAccountName string
param storageBlobEndpoint string
param deploymentContainerName string
param appInsightsName string
param keyVaultUri string

param pythonVersion string = '3.11'
param maximumInstanceCount int = 40
param instanceMemoryMB int = 2048

// D365 connection (not secret)
param dataverseUrl string
param finopsUrl string
param tenantId string
param clientId string
param authorityHost string
@allowed([
  'secret'
  'certificate'
  'managedIdentity'
])
param d365AuthMode string
param clientSecretName string
param clientCertificatePath string
param certificatePasswordName string

param companies string
param defaultCompany string

// one NCRONTAB schedule per template (%<TEMPLATE>_SCHEDULE% in functions/timers.py)
param schedules object

// tuning (shared/settings.py defaults)
param dataversePageSize int
param finopsPageSize int
param dataverseBulkSize int
param finopsBatchSize int
param maxConcurrency int
param httpTimeoutSeconds int
param maxRetries int
param runTimeBudgetSeconds int
param parkAfterAttempts int
param invoiceLookbackDays int
param mappingsDir string
param schemaCatalogueDir string

var secretRef = '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${clientSecretName}/)'
var certPasswordRef = '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${certificatePasswordName}/)'

resource appi 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: union(tags, {
    'azd-service-name': serviceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// Every name of the Settings table in docs/internals.md (= local.settings.sample.json) except the
// local-only ones (state storage connection string, CA bundle), plus what the platform needs.
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: {
    // Functions host storage, identity-based (shared keys are disabled on the account)
    AzureWebJobsStorage__accountName: storageAccountName
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    // DefaultAzureCredential (state storage) picks the user-assigned identity
    AZURE_CLIENT_ID: identityClientId

    // Application Insights via OpenTelemetry: host.json telemetryMode=OpenTelemetry, the Python
    // worker configures azure-monitor-opentelemetry (shared/telemetry.py does not configure twice)
    APPLICATIONINSIGHTS_CONNECTION_STRING: appi.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'
    PYTHON_ENABLE_OPENTELEMETRY: 'true'

    // D365 endpoints and credentials
    P2C_DATAVERSE_URL: dataverseUrl
    P2C_FINOPS_URL: finopsUrl
    P2C_TENANT_ID: tenantId
    P2C_CLIENT_ID: clientId
    P2C_AUTHORITY_HOST: authorityHost
    P2C_CLIENT_SECRET: (d365AuthMode == 'secret') ? secretRef : ''
    P2C_CLIENT_CERTIFICATE_PATH: (d365AuthMode == 'certificate') ? clientCertificatePath : ''
    P2C_CLIENT_CERTIFICATE_PASSWORD: (d365AuthMode == 'certificate') ? certPasswordRef : ''
    P2C_USE_MANAGED_IDENTITY: (d365AuthMode == 'managedIdentity') ? 'true' : 'false'
    P2C_MANAGED_IDENTITY_CLIENT_ID: identityClientId

    // state
    P2C_STATE_STORAGE_ACCOUNT: storageAccountName

    // companies
    P2C_COMPANIES: companies
    P2C_DEFAULT_COMPANY: defaultCompany

    // timer schedules, one per template
    PRODUCTS_SCHEDULE: schedules.PRODUCTS_SCHEDULE
    ACCOUNTS_SCHEDULE: schedules.ACCOUNTS_SCHEDULE
    CONTACTS_SCHEDULE: schedules.CONTACTS_SCHEDULE
    CONTACTS_TO_CUSTOMERS_SCHEDULE: schedules.CONTACTS_TO_CUSTOMERS_SCHEDULE
    QUOTES_SCHEDULE: schedules.QUOTES_SCHEDULE
    ORDERS_TO_FNO_SCHEDULE: schedules.ORDERS_TO_FNO_SCHEDULE
    ORDERS_TO_SALES_SCHEDULE: schedules.ORDERS_TO_SALES_SCHEDULE
    INVOICES_SCHEDULE: schedules.INVOICES_SCHEDULE

    // tuning
    P2C_DATAVERSE_PAGE_SIZE: string(dataversePageSize)
    P2C_FINOPS_PAGE_SIZE: string(finopsPageSize)
    P2C_DATAVERSE_BULK_SIZE: string(dataverseBulkSize)
    P2C_FINOPS_BATCH_SIZE: string(finopsBatchSize)
    P2C_MAX_CONCURRENCY: string(maxConcurrency)
    P2C_HTTP_TIMEOUT_SECONDS: string(httpTimeoutSeconds)
    P2C_MAX_RETRIES: string(maxRetries)
    P2C_RUN_TIME_BUDGET_SECONDS: string(runTimeBudgetSeconds)
    P2C_PARK_AFTER_ATTEMPTS: string(parkAfterAttempts)
    P2C_INVOICE_LOOKBACK_DAYS: string(invoiceLookbackDays)
    P2C_MAPPINGS_DIR: mappingsDir
    P2C_SCHEMA_CATALOGUE_DIR: schemaCatalogueDir
  }
}

output name string = site.name
output id string = site.id
output defaultHostName string = site.properties.defaultHostName
