//! How scanners' names for severities map onto scangate's five ([`Severity`]).

pub use crate::api::{ALL_SEVERITIES, Severity};

impl Severity {
    /// Maps a scanner's severity name, case-insensitively and ignoring surrounding blanks.
    ///
    /// | scanner says | maps to |
    /// |---|---|
    /// | critical | critical |
    /// | high, important | high |
    /// | medium, moderate | medium |
    /// | low, negligible, minor, none, info, informational | low |
    /// | unknown, unknownseverity, undefined, unspecified, empty | unknown |
    ///
    /// `none` and `info` are CVSS/CycloneDX ratings of (almost) no impact: they are put with
    /// `low`, the least alarming known severity, rather than with `unknown`, which policies
    /// commonly deny. Returns `None` for anything else (the caller keeps the raw string).
    pub fn from_name(name: &str) -> Option<Severity> {
        let severity = match name.trim().to_ascii_lowercase().as_str() {
            "critical" => Severity::Critical,
            "high" | "important" => Severity::High,
            "medium" | "moderate" => Severity::Medium,
            "low" | "negligible" | "minor" | "none" | "info" | "informational" => Severity::Low,
            "unknown" | "unknownseverity" | "undefined" | "unspecified" | "" => Severity::Unknown,
            _ => return None,
        };
        Some(severity)
    }

    /// The qualitative band of a CVSS v3 (or v4) base score: 0.0 none (→ low, as `none`),
    /// 0.1-3.9 low, 4.0-6.9 medium, 7.0-8.9 high, 9.0-10.0 critical. `None` outside 0-10.
    pub fn from_cvss_v3_score(score: f64) -> Option<Severity> {
        match score {
            s if !(0.0..=10.0).contains(&s) => None,
            s if s >= 9.0 => Some(Severity::Critical),
            s if s >= 7.0 => Some(Severity::High),
            s if s >= 4.0 => Some(Severity::Medium),
            _ => Some(Severity::Low),
        }
    }

    /// The band of a CVSS v2 base score: 0.0-3.9 low, 4.0-6.9 medium, 7.0-10.0 high
    /// (v2 has no critical). `None` outside 0-10.
    pub fn from_cvss_v2_score(score: f64) -> Option<Severity> {
        Severity::from_cvss_v3_score(score).map(|band| band.max(Severity::High))
    }
}

/// A severity mapped from a scanner's raw value, with that raw value when it was not already
/// one of the five canonical names (so `Negligible`, `Important` or an unrecognized string
/// are kept for policies that care, and nothing is lost).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MappedSeverity {
    pub severity: Severity,
    pub raw: Option<String>,
}

impl MappedSeverity {
    /// Maps an optional raw severity; a missing one is `unknown` with no raw value.
    pub fn from_raw(raw: Option<&str>) -> MappedSeverity {
        let Some(raw) = raw else {
            return MappedSeverity::default();
        };
        let severity = Severity::from_name(raw).unwrap_or(Severity::Unknown);
        let is_canonical =
            raw.trim().eq_ignore_ascii_case(severity.as_str()) || raw.trim().is_empty();
        MappedSeverity {
            severity,
            raw: (!is_canonical).then(|| raw.to_string()),
        }
    }

    /// A severity that was derived (e.g. from a score), with no raw name to keep.
    pub fn derived(severity: Severity) -> MappedSeverity {
        MappedSeverity {
            severity,
            raw: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_worst_first() {
        let mut all = vec![
            Severity::Unknown,
            Severity::Low,
            Severity::Critical,
            Severity::Medium,
            Severity::High,
        ];
        all.sort();
        assert_eq!(all, ALL_SEVERITIES);
    }

    #[test]
    fn maps_names_case_insensitively() {
        let cases = [
            ("CRITICAL", Severity::Critical),
            ("High", Severity::High),
            ("Important", Severity::High),
            ("moderate", Severity::Medium),
            ("MEDIUM", Severity::Medium),
            ("Negligible", Severity::Low),
            (" low ", Severity::Low),
            ("none", Severity::Low),
            ("info", Severity::Low),
            ("UNKNOWN", Severity::Unknown),
            ("UnknownSeverity", Severity::Unknown),
            ("", Severity::Unknown),
        ];
        for (name, expected) in cases {
            assert_eq!(Severity::from_name(name), Some(expected), "{name}");
        }
        assert_eq!(Severity::from_name("severe"), None);
    }

    #[test]
    fn keeps_raw_value_unless_canonical() {
        assert_eq!(
            MappedSeverity::from_raw(Some("HIGH")),
            MappedSeverity {
                severity: Severity::High,
                raw: None
            }
        );
        assert_eq!(
            MappedSeverity::from_raw(Some("Negligible")),
            MappedSeverity {
                severity: Severity::Low,
                raw: Some("Negligible".into())
            }
        );
        assert_eq!(
            MappedSeverity::from_raw(Some("P1-urgent")),
            MappedSeverity {
                severity: Severity::Unknown,
                raw: Some("P1-urgent".into())
            }
        );
        assert_eq!(MappedSeverity::from_raw(None), MappedSeverity::default());
    }

    #[test]
    fn cvss_bands() {
        assert_eq!(Severity::from_cvss_v3_score(10.0), Some(Severity::Critical));
        assert_eq!(Severity::from_cvss_v3_score(9.0), Some(Severity::Critical));
        assert_eq!(Severity::from_cvss_v3_score(8.9), Some(Severity::High));
        assert_eq!(Severity::from_cvss_v3_score(7.0), Some(Severity::High));
        assert_eq!(Severity::from_cvss_v3_score(6.9), Some(Severity::Medium));
        assert_eq!(Severity::from_cvss_v3_score(4.0), Some(Severity::Medium));
        assert_eq!(Severity::from_cvss_v3_score(3.9), Some(Severity::Low));
        assert_eq!(Severity::from_cvss_v3_score(0.0), Some(Severity::Low));
        assert_eq!(Severity::from_cvss_v3_score(10.1), None);
        assert_eq!(Severity::from_cvss_v3_score(f64::NAN), None);
        assert_eq!(Severity::from_cvss_v2_score(10.0), Some(Severity::High));
        assert_eq!(Severity::from_cvss_v2_score(5.0), Some(Severity::Medium));
    }
}
