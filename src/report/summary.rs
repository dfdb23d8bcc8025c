//! Summaries of a report: unique CVE counts per severity, and the findings worst first.

use std::collections::{BTreeMap, HashMap};

use crate::api::CveCount;

use super::model::{Report, Vulnerability};
use super::severity::Severity;

/// Counts unique vulnerability ids per severity: an id reported for several packages counts
/// once, at the worst severity it was reported with. `total` is the sum.
pub fn cve_count(vulnerabilities: &[Vulnerability]) -> CveCount {
    let mut worst_by_id: HashMap<&str, Severity> = HashMap::new();
    for vulnerability in vulnerabilities {
        worst_by_id
            .entry(vulnerability.id.as_str())
            .and_modify(|worst| *worst = (*worst).min(vulnerability.severity))
            .or_insert(vulnerability.severity);
    }
    let mut count = CveCount::default();
    for severity in worst_by_id.into_values() {
        *count_of(&mut count, severity) += 1;
        count.total += 1;
    }
    count
}

fn count_of(count: &mut CveCount, severity: Severity) -> &mut i64 {
    match severity {
        Severity::Critical => &mut count.critical,
        Severity::High => &mut count.high,
        Severity::Medium => &mut count.medium,
        Severity::Low => &mut count.low,
        Severity::Unknown => &mut count.unknown,
    }
}

/// The findings without duplicates of (id, package name, package version) — keeping the worst
/// severity of duplicates — sorted worst first, then by id, package name and version.
pub fn worst_first(vulnerabilities: &[Vulnerability]) -> Vec<&Vulnerability> {
    let mut unique: BTreeMap<(&str, &str, &str), &Vulnerability> = BTreeMap::new();
    for vulnerability in vulnerabilities {
        let key = (
            vulnerability.id.as_str(),
            vulnerability.package.name.as_str(),
            vulnerability.package.version.as_str(),
        );
        unique
            .entry(key)
            .and_modify(|kept| {
                if vulnerability.severity < kept.severity {
                    *kept = vulnerability;
                }
            })
            .or_insert(vulnerability);
    }
    let mut sorted: Vec<&Vulnerability> = unique.into_values().collect();
    sorted.sort_by(|a, b| {
        (a.severity, &a.id, &a.package.name, &a.package.version).cmp(&(
            b.severity,
            &b.id,
            &b.package.name,
            &b.package.version,
        ))
    });
    sorted
}

impl Report {
    /// Unique vulnerability ids per severity; see [`cve_count`].
    pub fn cve_count(&self) -> CveCount {
        cve_count(&self.vulnerabilities)
    }

    /// The findings deduplicated and sorted worst first; see [`worst_first`].
    pub fn vulnerabilities_worst_first(&self) -> Vec<&Vulnerability> {
        worst_first(&self.vulnerabilities)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::Package;

    fn finding(id: &str, severity: Severity, name: &str, version: &str) -> Vulnerability {
        Vulnerability {
            id: id.into(),
            severity,
            package: Package {
                name: name.into(),
                version: version.into(),
                ..Package::default()
            },
            ..Vulnerability::default()
        }
    }

    #[test]
    fn counts_each_id_once_at_its_worst() {
        let found = [
            finding("CVE-1", Severity::Medium, "a", "1"),
            finding("CVE-1", Severity::High, "b", "1"),
            finding("CVE-1", Severity::Unknown, "c", "1"),
            finding("CVE-2", Severity::Unknown, "a", "1"),
            finding("CVE-3", Severity::Low, "a", "1"),
        ];
        let count = cve_count(&found);
        assert_eq!(
            count,
            CveCount {
                critical: 0,
                high: 1,
                medium: 0,
                low: 1,
                unknown: 1,
                total: 3
            }
        );
    }

    #[test]
    fn worst_first_deduplicates_and_sorts() {
        let found = [
            finding("CVE-2", Severity::Low, "a", "1"),
            finding("CVE-1", Severity::Medium, "a", "1"),
            finding("CVE-1", Severity::Critical, "a", "1"),
            finding("CVE-1", Severity::Medium, "a", "2"),
            finding("CVE-0", Severity::Medium, "z", "1"),
        ];
        let sorted: Vec<(&str, Severity, &str)> = worst_first(&found)
            .into_iter()
            .map(|v| (v.id.as_str(), v.severity, v.package.version.as_str()))
            .collect();
        assert_eq!(
            sorted,
            vec![
                ("CVE-1", Severity::Critical, "1"),
                ("CVE-0", Severity::Medium, "1"),
                ("CVE-1", Severity::Medium, "2"),
                ("CVE-2", Severity::Low, "1"),
            ]
        );
    }
}
