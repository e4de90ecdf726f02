// tablesessions: storage for web-app sessions plus the expiry sweeper (an Azure Function).
//
// Deploys into an existing resource group:
//   * a StorageV2 account holding the sessions table, the overflow blob container and the
//     Function App's own host storage and deployment package container;
//   * a lifecycle rule that deletes overflow blobs nobody has touched for N days (orphan backstop);
//   * a Flex Consumption Function App (Python 3.11) running the timer-triggered sweeper;
//   * a Log Analytics workspace and a workspace-based Application Insights component.
//
// No account keys or connection strings anywhere: the Function App's system-assigned managed
// identity gets data-plane roles on the storage account and on Application Insights.
//
// Syntax note: this file is validated offline by pycep-parser (the version checkov pins), which
// cannot read user-defined functions, imports, nullable types or user-defined types. Keep to
// plain params, vars, resources and outputs. It also accepts at most 5 comment lines in a row
// between two properties (10 right after an opening brace). checkov suppressions
// (`// checkov:skip=ID:reason`) must sit inside the resource's braces, one per line, and be
// listed in ALLOWED_CHECKOV_SKIPS in tests/infra/test_bicep.py.

@description('Azure region for every resource. Flex Consumption is not offered in every region.')
param location string = resourceGroup().location

@description('Short lowercase prefix used to derive resource names.')
@minLength(3)
@maxLength(11)
param namePrefix string = 'tblsess'

@description('Storage account name (3-24 lowercase letters and digits, globally unique).')
@minLength(3)
@maxLength(24)
param storageAccountName string = '${namePrefix}${uniqueString(resourceGroup().id)}'

@description('Function App name (globally unique: it becomes <name>.azurewebsites.net).')
@minLength(2)
@maxLength(60)
param functionAppName string = '${namePrefix}-sweeper-${uniqueString(resourceGroup().id)}'

@description('Storage redundancy. ZRS keeps sessions through a zone outage; use LRS where ZRS is not offered.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSkuName string = 'Standard_ZRS'

@description('Table holding the session entities (letters and digits, starting with a letter).')
@minLength(3)
@maxLength(63)
param tableName string = 'sessions'

@description('Blob container holding payloads too large for a table entity.')
@minLength(3)
@maxLength(63)
param containerName string = 'sessions-overflow'

@description('Blob container the Flex Consumption platform reads the app package from.')
@minLength(3)
@maxLength(63)
param deploymentContainerName string = 'app-package'

@description('Application name that scopes sessions inside the table (TABLESESSIONS_APP_NAME).')
param appName string = 'default'

@description('Table of a tablesessions.TableCache the sweeper also sweeps (TABLESESSIONS_CACHE_TABLE_NAME); empty: sessions only. This template does not create it: run `tablesessions cache init` (or cache.create_storage()) once.')
@maxLength(63)
param cacheTableName string = ''

@description('Overflow container of that cache (TABLESESSIONS_CACHE_CONTAINER_NAME).')
@minLength(3)
@maxLength(63)
param cacheContainerName string = 'cache-overflow'

@description('Namespace of that cache inside its table (TABLESESSIONS_CACHE_APP_NAME).')
param cacheAppName string = 'default'

@description('NCronTab schedule (6 fields, UTC) of the sweeper, e.g. every five minutes.')
param sweepSchedule string = '0 */5 * * * *'

@description('Seconds one sweep may run before it stops and reports complete=false; below functionTimeout in host.json (10 min).')
@minValue(10)
@maxValue(540)
param sweepTimeBudgetSeconds int = 240

@description('Days since an overflow blob was last written or read after which the lifecycle rule deletes it. Must exceed the longest session idle timeout.')
@minValue(1)
@maxValue(3650)
param orphanBlobMaxAgeDays int = 7

@description('Upper bound on Flex Consumption instances. The timer runs on one instance; this only caps cost.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory per Flex Consumption instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Retention of the Log Analytics workspace, in days.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Tags applied to every resource.')
param tags object = {
  application: 'tablesessions'
}

// Built-in role definition IDs (the same in every tenant).
var storageTableDataContributorRoleId = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var storageBlobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var storageBlobDataOwnerRoleId = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributorRoleId = '974c5e8b-2cbc-4b55-b9bd-0d5b3e0b0f27'
var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb'

// Endpoints built from the cloud's storage suffix (core.windows.net in the public cloud), without
// a trailing slash: the library joins paths itself.
var tableEndpoint = 'https://${storageAccountName}.table.${environment().suffixes.storage}'
var blobEndpoint = 'https://${storageAccountName}.blob.${environment().suffixes.storage}'

var planName = '${functionAppName}-plan'
var logAnalyticsName = '${functionAppName}-logs'
var appInsightsName = '${functionAppName}-ai'

// ---------------------------------------------------------------------------------------------
// Storage
// ---------------------------------------------------------------------------------------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35:No VNet in this template (Flex app without VNet integration reaches storage publicly); access is Entra ID only, HTTPS/TLS 1.2 only.
  // checkov:skip=CKV_AZURE_59:Same as CKV_AZURE_35: public endpoint needed without private endpoints; shared keys and anonymous blob access are disabled.
  // checkov:skip=CKV_AZURE_206:Geo-replication of short-lived session state is not worth its cost; the default is ZRS (storageSkuName), set Standard_GZRS if you need it.
  // checkov:skip=CKV_AZURE_43:The name is an expression (prefix + uniqueString) checkov cannot evaluate; @minLength/@maxLength bound it and ARM validates it.
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: storageSkuName
  }
  properties: {
    // Refuse TLS 1.0/1.1 handshakes: session payloads are user data.
    minimumTlsVersion: 'TLS1_2'
    // Refuse plain http: session ids and payloads must never travel unencrypted.
    supportsHttpsTrafficOnly: true
    // No container may ever be made anonymously readable: overflow blobs hold session state.
    allowBlobPublicAccess: false
    // No account keys and no SAS signed with them: every caller (the web app, the sweeper, the
    // Functions host) authenticates with Microsoft Entra ID and is authorised by RBAC roles.
    allowSharedKeyAccess: false
    // Make the portal and tools default to Entra ID instead of trying (disabled) keys.
    defaultToOAuthAuthentication: true
    // Session data must not be copied to accounts in other tenants by object replication.
    allowCrossTenantReplication: false
    // No SFTP / local users: they would be a second, key-like way in.
    isLocalUserEnabled: false
    isSftpEnabled: false
    // Double encryption at rest (service and infrastructure layers).
    encryption: {
      requireInfrastructureEncryption: true
      keySource: 'Microsoft.Storage'
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
    // Public endpoint stays reachable (no VNet in this template) but only with Entra ID tokens.
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource sessionsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: tableName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    // Lets the lifecycle rule below measure "days since last read or write", so an overflow
    // blob that a live session keeps reading is never deleted under it.
    lastAccessTimeTrackingPolicy: {
      enable: true
      name: 'AccessTimeTracking'
      trackingGranularityInDays: 1
      blobType: [
        'blockBlob'
      ]
    }
    // Blob soft delete stays off on purpose: a deleted session's payload must really be gone.
    deleteRetentionPolicy: {
      enabled: false
    }
    // A deleted container (an operator mistake) can be restored for a week.
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource overflowContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: containerName
  properties: {
    // Private: readable only with an Entra ID token holding a blob data role.
    publicAccess: 'None'
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    // The app package is code: private, read by the Function App's identity only.
    publicAccess: 'None'
  }
}

// Backstop for orphans. The sweeper deletes a session's overflow blob together with the entity,
// but a crash between "blob written" and "entity saved" (or a failed blob delete) leaves a blob
// no entity points to. Table Storage has no TTL and Azurite has no lifecycle management, so this
// rule only exists in Azure: it deletes overflow blobs not read or written for N days.
resource lifecyclePolicy 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  dependsOn: [
    blobService
    overflowContainer
  ]
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-orphaned-session-overflow'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              // A prefix match starts with the container name: only the overflow container.
              prefixMatch: [
                '${containerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterLastAccessTimeGreaterThan: orphanBlobMaxAgeDays
                }
              }
            }
          }
        }
      ]
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Monitoring
// ---------------------------------------------------------------------------------------------

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    // Workspace-based: telemetry lands in the Log Analytics workspace above.
    WorkspaceResourceId: logAnalytics.id
    // Ingestion needs an Entra ID token (the app's identity has Monitoring Metrics Publisher):
    // the instrumentation key in the connection string alone cannot be used to send telemetry.
    DisableLocalAuth: true
  }
}

// ---------------------------------------------------------------------------------------------
// Function App (Flex Consumption)
// ---------------------------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  // checkov:skip=CKV_AZURE_225:Zone redundancy for Flex Consumption is regional and optional; a missed sweep is done by the next run.
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    // Linux.
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222:Deployment (az CLI zip deploy) goes through the public SCM endpoint; the app has no HTTP functions to expose.
  // checkov:skip=CKV_AZURE_17:Client certificates only guard inbound HTTP; the app serves no HTTP functions (timer trigger only).
  // checkov:skip=CKV_AZURE_212:Flex Consumption has no fixed instance count; only one instance runs a timer trigger anyway.
  // checkov:skip=CKV_AZURE_213:Health checks probe an HTTP path; a timer-only app has none. Failures surface in Application Insights.
  name: functionAppName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  // The identity that every data-plane call uses: no secrets in app settings.
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    // Inbound traffic (the admin endpoints the host exposes) must use HTTPS.
    httpsOnly: true
    siteConfig: {
      // Reject TLS 1.0/1.1 for inbound connections.
      minTlsVersion: '1.2'
      // No FTP/FTPS: code is deployed only through the deployment container.
      ftpsState: 'Disabled'
      http20Enabled: true
      // NOTE: Flex Consumption rejects FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION and
      // WEBSITE_RUN_FROM_PACKAGE: the runtime comes from functionAppConfig below.
      appSettings: [
        {
          // Host storage (timer schedule monitor, leases) through the managed identity.
          name: 'AzureWebJobsStorage__accountName'
          value: storage.name
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: appInsights.properties.ConnectionString
        }
        {
          // Send telemetry with the system-assigned identity (local auth is disabled).
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'Authorization=AAD'
        }
        {
          name: 'TABLESESSIONS_TABLE_ENDPOINT'
          value: tableEndpoint
        }
        {
          name: 'TABLESESSIONS_BLOB_ENDPOINT'
          value: blobEndpoint
        }
        {
          name: 'TABLESESSIONS_TABLE_NAME'
          value: tableName
        }
        {
          name: 'TABLESESSIONS_CONTAINER_NAME'
          value: containerName
        }
        {
          name: 'TABLESESSIONS_APP_NAME'
          value: appName
        }
        {
          // Empty: the sweeper sweeps sessions only; a table name: that cache too.
          name: 'TABLESESSIONS_CACHE_TABLE_NAME'
          value: cacheTableName
        }
        {
          name: 'TABLESESSIONS_CACHE_CONTAINER_NAME'
          value: cacheContainerName
        }
        {
          name: 'TABLESESSIONS_CACHE_APP_NAME'
          value: cacheAppName
        }
        {
          name: 'TABLESESSIONS_SWEEP_TIME_BUDGET_SECONDS'
          value: string(sweepTimeBudgetSeconds)
        }
        {
          // Read by the timer trigger as %SWEEP_SCHEDULE%.
          name: 'SWEEP_SCHEDULE'
          value: sweepSchedule
        }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          // The platform fetches the package with the app's own identity (no SAS, no key).
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Basic-auth publishing (FTP and SCM user/password) is off: deployments authenticate with
// Microsoft Entra ID (az CLI / Core Tools tokens), never with a downloadable publish profile.
resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

// ---------------------------------------------------------------------------------------------
// Role assignments for the Function App's system-assigned identity
// ---------------------------------------------------------------------------------------------

// The sweeper reads and deletes session entities (and takes its lease row). The Functions host
// also keeps some diagnostics in tables when AzureWebJobsStorage is identity-based.
resource tableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, storageTableDataContributorRoleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributorRoleId)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// The sweeper deletes overflow blobs of expired sessions and orphaned overflow blobs.
resource blobDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, storageBlobDataContributorRoleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributorRoleId)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// The Functions host with identity-based AzureWebJobsStorage needs Blob Data Owner (timer
// schedule monitor, singleton leases, host keys), and Flex Consumption reads the app package
// from the deployment container with this identity.
resource blobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, storageBlobDataOwnerRoleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwnerRoleId)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// The Functions host uses queues internally (for example for blob-trigger receipts and
// diagnostics) when AzureWebJobsStorage is identity-based.
resource queueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, storageQueueDataContributorRoleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributorRoleId)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// Entra ID telemetry ingestion into Application Insights (DisableLocalAuth is true).
resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, functionApp.id, monitoringMetricsPublisherRoleId)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------

output functionAppName string = functionApp.name
output storageAccountName string = storage.name
output tableEndpoint string = tableEndpoint
output blobEndpoint string = blobEndpoint
output tableName string = sessionsTable.name
output containerName string = overflowContainer.name
output appInsightsName string = appInsights.name
