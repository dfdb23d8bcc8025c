//! ScanPolicies: Rego compiled once with regorus, evaluated many times.
