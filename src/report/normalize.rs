//! Small normalizations shared by the format parsers: package types, package URLs, digests,
//! link lists, fixed-version lists and well-known scanner names.

use std::collections::HashSet;

/// The package type used when a report does not say.
pub(crate) const UNKNOWN: &str = "unknown";

/// Maps a package URL's type (`pkg:TYPE/…`) to scangate's package type vocabulary.
pub(crate) fn package_type_from_purl(purl: &str) -> Option<String> {
    let purl_type = purl
        .strip_prefix("pkg:")?
        .split('/')
        .next()?
        .to_ascii_lowercase();
    let package_type = match purl_type.as_str() {
        "" => return None,
        "pypi" => "python",
        "golang" => "gomod",
        "maven" => "java-archive",
        "cargo" => "rust-crate",
        "composer" => "php-composer",
        "nuget" => "dotnet",
        "generic" => "binary",
        other => other,
    };
    Some(package_type.to_string())
}

/// Grype's artifact types are the vocabulary, except Go modules (`go-module` → `gomod`).
pub(crate) fn package_type_from_grype(grype_type: Option<&str>, purl: Option<&str>) -> String {
    match grype_type.map(str::trim).filter(|t| !t.is_empty()) {
        Some("go-module") => "gomod".to_string(),
        Some(other) => other.to_ascii_lowercase(),
        None => package_type_or_unknown(purl),
    }
}

/// Maps a Trivy result `Type` (an OS family or a language file type) to a package type;
/// an unmapped type falls back to the package URL, then to the Trivy type itself.
pub(crate) fn package_type_from_trivy(trivy_type: Option<&str>, purl: Option<&str>) -> String {
    let trivy_type = trivy_type
        .map(|t| t.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let mapped = match trivy_type.as_str() {
        "alpine" | "wolfi" | "chainguard" | "minimos" => Some("apk"),
        "debian" | "ubuntu" | "distroless" | "echo" => Some("deb"),
        "redhat"
        | "centos"
        | "rocky"
        | "alma"
        | "amazon"
        | "oracle"
        | "fedora"
        | "photon"
        | "cbl-mariner"
        | "azurelinux"
        | "suse linux enterprise server"
        | "suse linux enterprise micro"
        | "opensuse.leap"
        | "opensuse.tumbleweed"
        | "opensuse" => Some("rpm"),
        "node-pkg" | "npm" | "yarn" | "pnpm" | "bun" => Some("npm"),
        "python-pkg" | "pip" | "pipenv" | "poetry" | "uv" | "conda-pkg" | "conda-environment" => {
            Some("python")
        }
        "gomod" | "gobinary" => Some("gomod"),
        "jar" | "pom" | "gradle" | "sbt" => Some("java-archive"),
        "gemspec" | "bundler" => Some("gem"),
        "cargo" | "rust-binary" => Some("rust-crate"),
        "composer" | "composer-vendor" => Some("php-composer"),
        "nuget" | "dotnet-core" | "packages-props" => Some("dotnet"),
        _ => None,
    };
    match mapped {
        Some(package_type) => package_type.to_string(),
        None => purl
            .and_then(package_type_from_purl)
            .or_else(|| (!trivy_type.is_empty()).then_some(trivy_type))
            .unwrap_or_else(|| UNKNOWN.to_string()),
    }
}

/// The package type from a package URL, or `unknown`.
pub(crate) fn package_type_or_unknown(purl: Option<&str>) -> String {
    purl.and_then(package_type_from_purl)
        .unwrap_or_else(|| UNKNOWN.to_string())
}

/// Name and version of a package URL (`pkg:type/namespace/name@version?qualifiers#subpath`),
/// percent-decoded. The version is empty when the purl has none.
pub(crate) fn purl_name_version(purl: &str) -> Option<(String, String)> {
    let rest = purl.strip_prefix("pkg:")?;
    let rest = rest.split('#').next().unwrap_or(rest);
    let rest = rest.split('?').next().unwrap_or(rest);
    let (path, version) = match rest.rsplit_once('@') {
        Some((path, version)) => (path, version),
        None => (rest, ""),
    };
    let name = path
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && *n != path)?;
    Some((percent_decode(name), percent_decode(version)))
}

/// Decodes `%XX` escapes; invalid escapes are kept as they are.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The first well-formed digest among the strings of `object[list]` (repo digests), else the
/// digest of the string `object[fallback]` when a fallback is named.
pub(crate) fn first_digest(
    object: &serde_json::Value,
    list: &str,
    fallback: Option<&str>,
) -> Option<String> {
    use serde_json::Value;
    object
        .get(list)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(digest_of)
        .or_else(|| {
            object
                .get(fallback?)
                .and_then(Value::as_str)
                .and_then(digest_of)
        })
}

/// The digest in an image reference or digest string: `repo@sha256:abc` → `sha256:abc`,
/// `sha256:abc` → itself. `None` when there is no `algorithm:hex` digest.
pub(crate) fn digest_of(reference: &str) -> Option<String> {
    let candidate = match reference.rsplit_once('@') {
        Some((_, digest)) => digest,
        None => reference,
    };
    let (algorithm, hex) = candidate.trim().split_once(':')?;
    let well_formed = !algorithm.is_empty()
        && algorithm
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+._-".contains(&b))
        && !hex.is_empty()
        && hex.bytes().all(|b| b.is_ascii_hexdigit());
    well_formed.then(|| format!("{algorithm}:{hex}"))
}

/// Non-empty links in order, without duplicates.
pub(crate) fn unique_urls<'a>(urls: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut seen = HashSet::new();
    urls.into_iter()
        .map(str::trim)
        .filter(|url| !url.is_empty() && seen.insert(*url))
        .map(str::to_string)
        .collect()
}

/// Splits a list of fixed versions written as one string (`"1.2.3, 1.3.0"`).
pub(crate) fn split_fixed_versions(versions: &str) -> Vec<String> {
    versions
        .split(',')
        .map(str::trim)
        .filter(|version| !version.is_empty())
        .map(str::to_string)
        .collect()
}

/// The canonical name and vendor of well-known scanners, by name (case-insensitive).
pub(crate) fn known_scanner(name: &str) -> Option<(&'static str, &'static str)> {
    match name.trim().to_ascii_lowercase().as_str() {
        "grype" => Some(("grype", "anchore")),
        "syft" => Some(("syft", "anchore")),
        "trivy" => Some(("trivy", "aquasecurity")),
        "snyk" => Some(("snyk", "snyk")),
        _ => None,
    }
}

/// `value` when it is present and not blank, else `unknown`.
pub(crate) fn or_unknown(value: Option<&str>) -> String {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or(UNKNOWN)
        .to_string()
}

/// A present, non-blank string.
pub(crate) fn non_blank(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_types_from_purls() {
        assert_eq!(
            package_type_from_purl("pkg:deb/debian/bash@5.0-4").as_deref(),
            Some("deb")
        );
        assert_eq!(
            package_type_from_purl("pkg:golang/golang.org/x/text@v0.3.6").as_deref(),
            Some("gomod")
        );
        assert_eq!(
            package_type_from_purl("pkg:maven/a/b@1").as_deref(),
            Some("java-archive")
        );
        assert_eq!(
            package_type_from_purl("pkg:pypi/django@3").as_deref(),
            Some("python")
        );
        assert_eq!(package_type_from_purl("not a purl"), None);
    }

    #[test]
    fn trivy_types() {
        assert_eq!(package_type_from_trivy(Some("alpine"), None), "apk");
        assert_eq!(package_type_from_trivy(Some("node-pkg"), None), "npm");
        assert_eq!(package_type_from_trivy(Some("jar"), None), "java-archive");
        assert_eq!(package_type_from_trivy(Some("gomod"), None), "gomod");
        assert_eq!(
            package_type_from_trivy(Some("newthing"), Some("pkg:npm/a@1")),
            "npm"
        );
        assert_eq!(package_type_from_trivy(Some("NewThing"), None), "newthing");
        assert_eq!(package_type_from_trivy(None, None), "unknown");
    }

    #[test]
    fn purl_parts() {
        assert_eq!(
            purl_name_version("pkg:golang/github.com/docker/distribution@v2.7.1%2Bincompatible"),
            Some(("distribution".into(), "v2.7.1+incompatible".into()))
        );
        assert_eq!(
            purl_name_version(
                "pkg:maven/org.apache.logging.log4j/log4j-core@2.13.2?package-id=5f39"
            ),
            Some(("log4j-core".into(), "2.13.2".into()))
        );
        assert_eq!(
            purl_name_version("pkg:npm/left-pad"),
            Some(("left-pad".into(), String::new()))
        );
        assert_eq!(purl_name_version("pkg:"), None);
        assert_eq!(purl_name_version("bom-ref-1234"), None);
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

    #[test]
    fn digests() {
        assert_eq!(
            digest_of("busybox@sha256:ae39").as_deref(),
            Some("sha256:ae39")
        );
        assert_eq!(digest_of("sha256:0559").as_deref(), Some("sha256:0559"));
        assert_eq!(digest_of("busybox:latest"), None);
        assert_eq!(digest_of("sha256:"), None);
    }

    #[test]
    fn urls_and_versions() {
        assert_eq!(unique_urls(["a", " ", "b", "a"]), vec!["a", "b"]);
        assert_eq!(
            split_fixed_versions("1.2.3, 1.3.0,"),
            vec!["1.2.3", "1.3.0"]
        );
        assert_eq!(split_fixed_versions(""), Vec::<String>::new());
    }
}
