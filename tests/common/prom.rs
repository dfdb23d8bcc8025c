//! Reading Prometheus text exposition in tests and benches (the controller's, the webhook's and
//! the apiserver's `/metrics`). Pure: no I/O.

use std::collections::BTreeMap;

/// The sum of the values of the sample lines that start with `prefix` (a metric name, or a name
/// with some of its labels: `name{result="ok"`).
pub fn sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The samples of `metric` summed by the values of `labels` (in that order; an absent label is
/// an empty string).
pub fn sums_by(text: &str, metric: &str, labels: &[&str]) -> BTreeMap<Vec<String>, f64> {
    let mut sums = BTreeMap::new();
    let start = format!("{metric}{{");
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&start) else {
            continue;
        };
        let Some((set, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let key = labels.iter().map(|name| label(set, name)).collect();
        *sums.entry(key).or_insert(0.0) += value.trim().parse::<f64>().unwrap_or(0.0);
    }
    sums
}

/// What grew from `before` to `after`, without what did not.
pub fn increase(
    before: &BTreeMap<Vec<String>, f64>,
    after: &BTreeMap<Vec<String>, f64>,
) -> BTreeMap<Vec<String>, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

/// One label's value in a sample's label set (`a="x",b="y"`); values with commas are not used
/// by the metrics read here.
fn label(set: &str, name: &str) -> String {
    set.split(',')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap_or_default()
}
