// Action group and log alert rules. The queries live in ../alerts/*.kql and use exactly the event
// and metric names of shared/telemetry.py (table in docs/operations.md). Scope: the Log Analytics
// workspace of the workspace-based Application Insights component, so the tables are AppTraces
// (Python OTel log records, custom dimensions in Properties) and AppMetrics (OTel metrics).
param namePrefix string
param location string
param tags object = {}
param workspaceId string

@description('Comma-separated e-mail addresses; empty = no action group (alerts still fire in the portal).')
param alertEmailAddresses string = ''

@description('Template name -> minutes without a successful run before the stale alert fires (0 = never).')
param staleAfterMinutes object

@description('Alert when failed + parked records in the last hour exceed this.')
param recordErrorThreshold int = 0

@description('Alert when throttled requests exceed this percentage of requests in the last hour.')
param throttledPercentThreshold int = 20

@description('Templates with fewer requests in the hour are ignored by the throttling alert.')
param throttledMinRequests int = 100

var emails = filter(map(split(alertEmailAddresses, ','), e => trim(e)), e => !empty(e))
var hasEmails = !empty(emails)
var expectedRows = join(map(items(staleAfterMinutes), t => '"${t.key}", ${t.value}'), ', ')
var actionGroups = hasEmails ? [
  ag.id
] : []

resource ag 'Microsoft.Insights/actionGroups@2023-01-01' = if (hasEmails) {
  name: 'ag-${namePrefix}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: take('p2c${namePrefix}', 12)
    enabled: true
    emailReceivers: [for (e, i) in emails: {
      name: 'email-${i}'
      emailAddress: e
      useCommonAlertSchema: true
    }]
  }
}

resource runFailed 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-run-failed'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'p2c: sync run failed'
    description: 'A sync run ended with outcome failed (event p2c.run). See docs/operations.md#run-failed.'
    severity: 1
    enabled: true
    scopes: [
      workspaceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: loadTextContent('../alerts/run-failed.kql')
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'template'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'company'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroups
    }
  }
}

resource recordsFailed 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-records-failed-or-parked'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'p2c: records failed or parked in the last hour'
    description: 'Sum of failed + parked records of p2c.run events in the last hour. See docs/operations.md#records-failed-or-parked.'
    severity: 2
    enabled: true
    scopes: [
      workspaceId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: loadTextContent('../alerts/records-failed-or-parked.kql')
          timeAggregation: 'Total'
          metricMeasureColumn: 'failed_or_parked'
          operator: 'GreaterThan'
          threshold: recordErrorThreshold
          dimensions: [
            {
              name: 'template'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroups
    }
  }
}

resource stale 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-template-stale'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'p2c: template has no successful run within 3x its schedule'
    description: 'No p2c.run event with outcome succeeded/partial within the template threshold. See docs/operations.md#template-stale.'
    severity: 2
    enabled: true
    scopes: [
      workspaceId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'P1D'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: replace(loadTextContent('../alerts/stale-template.kql'), '__EXPECTED_TEMPLATES__', expectedRows)
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'template'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroups
    }
  }
}

resource throttled 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-throttled-share'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'p2c: share of throttled requests above threshold'
    description: 'p2c.requests.throttled / p2c.requests over the last hour. See docs/operations.md#throttled-share.'
    severity: 3
    enabled: true
    scopes: [
      workspaceId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: replace(loadTextContent('../alerts/throttled-share.kql'), '__MIN_REQUESTS__', string(throttledMinRequests))
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'throttled_pct'
          operator: 'GreaterThan'
          threshold: throttledPercentThreshold
          dimensions: [
            {
              name: 'template'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroups
    }
  }
}

output actionGroupId string = hasEmails ? ag.id : ''
output alertRuleIds array = [
  runFailed.id
  recordsFailed.id
  stale.id
  throttled.id
]
