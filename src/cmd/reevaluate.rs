//! `scangate reevaluate [NAME | -n NS | -A]` (also `kubectl scangate reevaluate`): sets the
//! `scangate.dev/reevaluate` annotation of the selected scans to the current time, with the
//! caller's credentials ([`super::annotate`]); for each new value the controller runs the
//! scan's policy again on its stored report, with the exceptions of now, without a new scan,
//! and records the value in `status.handledReevaluate` (and the time in
//! `status.reevaluatedAt`). For a policy whose data or an exception changed outside what the
//! controller watches, or to refresh the verdicts on demand.

use clap::Args;
use jiff::Timestamp;

use super::annotate;
use crate::api::annotation;

#[derive(Debug, Args)]
pub struct ReevaluateArgs {
    /// The scan: NAME or imagescan/NAME (an ImageScan), or sourcescan/NAME. Without it, every
    /// ImageScan and SourceScan of the namespace (or of all namespaces with -A).
    #[arg(env = "SCANGATE_REEVALUATE_SCAN", value_name = "NAME|KIND/NAME")]
    pub scan: Option<String>,
    /// The namespace, like kubectl's -n (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long, env = "SCANGATE_NAMESPACE")]
    pub namespace: Option<String>,
    /// Every scan of every namespace (needs list on scans cluster-wide).
    #[arg(short = 'A', long, env = "SCANGATE_ALL_NAMESPACES")]
    pub all_namespaces: bool,
}

pub use annotate::{Error, Result};

/// Annotates the selected scans; returns what to print.
pub async fn run(args: &ReevaluateArgs) -> Result<String> {
    let (client, default_namespace) = super::cluster_client().await?;
    let namespace = args.namespace.clone().unwrap_or(default_namespace);
    let selection = annotate::selection(args.scan.as_deref(), &namespace, args.all_namespaces)?;
    let scans = annotate::select(&client, &selection).await?;
    let now = Timestamp::now();
    annotate::annotate(&client, &scans, annotation::REEVALUATE, now).await?;
    Ok(summary(&scans, now, &selection))
}

/// What was requested, one line per scan.
fn summary(scans: &[annotate::ScanRef], now: Timestamp, selection: &annotate::Selection) -> String {
    if scans.is_empty() {
        return format!("no scans in {selection}: nothing to re-evaluate\n");
    }
    let mut out: String = scans
        .iter()
        .map(|s| {
            format!(
                "{} {}/{}: re-evaluation requested ({}={now})\n",
                s.kind,
                s.namespace,
                s.name,
                annotation::REEVALUATE
            )
        })
        .collect();
    out.push_str(
        "the controller runs each scan's policy again on its stored report (no new scan); \
         status.handledReevaluate shows the value once done\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use annotate::{Kind, ScanRef, Selection};

    #[test]
    fn the_summary_names_each_scan_or_says_there_is_none() {
        let now: Timestamp = "2026-01-02T03:04:05Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let scans = [ScanRef {
            kind: Kind::ImageScan,
            namespace: "shop".into(),
            name: "web".into(),
        }];
        let text = summary(&scans, now, &Selection::Namespace("shop".into()));
        assert!(
            text.starts_with(
                "ImageScan shop/web: re-evaluation requested (scangate.dev/reevaluate=2026-01-02T03:04:05Z)\n"
            ),
            "{text}"
        );
        assert_eq!(
            summary(&[], now, &Selection::All),
            "no scans in all namespaces: nothing to re-evaluate\n"
        );
    }
}
