//! The names and labels of the ImageScans scangate makes for an image it saw running (first
//! sight), or that a user asked for by image (`scangate scan`, the results page's Scan now):
//! one name per normalized image, so every path finds the same scan.

use sha2::{Digest, Sha256};

use crate::image::ImageRef;

/// The label on first-sight scans.
pub const LABEL: &str = "scangate.dev/first-sight";
/// The label naming the namespace whose running pods a first-sight scan was made for.
pub const FOR_NAMESPACE: &str = "scangate.dev/first-sight-namespace";
/// The name prefix of first-sight scans.
pub const PREFIX: &str = "first-sight-";
/// How many characters of the repository's last path component a name keeps, for readers.
const READABLE: usize = 24;

/// `first-sight-<repository's last component>-<16 hex digits of sha256(normalized image)>`: one
/// name per normalized image, a DNS label (at most 53 characters).
pub fn scan_name(image: &ImageRef) -> String {
    let hash = Sha256::digest(image.to_string().as_bytes());
    let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let last = image
        .repository()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(READABLE)
        .collect::<String>();
    let readable = last.trim_matches('-');
    if readable.is_empty() {
        format!("{PREFIX}{hex}")
    } else {
        format!("{PREFIX}{readable}-{hex}")
    }
}
