//! Scanner output (Grype, Trivy, CycloneDX, SARIF) normalized into one report.
