//! The machine's load average, printed beside the figures: a figure taken while anything else
//! runs is noise.

/// The load averages over 1, 5 and 15 minutes, from /proc/loadavg; `unknown` where it cannot be
/// read.
pub fn load_averages() -> [String; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut fields = text.split(' ').filter(|f| !f.is_empty()).map(String::from);
    std::array::from_fn(|_| fields.next().unwrap_or_else(|| "unknown".into()))
}
