"""OData plumbing shared by the Dataverse and F&O clients: errors, literals, filters, paging, $batch."""
