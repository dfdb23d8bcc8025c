//! Image reference parsing and normalization.
//!
//! Follows the grammar of the distribution reference library that Docker, containerd and the
//! kubelet use: `[domain[:port]/]path[:tag][@algorithm:hex]`. A first path component is a
//! domain only if it contains `.` or `:` or is `localhost`; otherwise the image is on Docker
//! Hub, and a single-component Docker Hub name lives under `library/`. A reference with
//! neither tag nor digest means `:latest`. So `nginx` normalizes to
//! `docker.io/library/nginx:latest`, which is how scans and workloads are matched.
//!
//! References are compared by what the runtime would pull, so parsing also folds the spellings
//! of one registry into one: host names are lowercased, the default HTTPS port `:443` is
//! dropped, and Docker Hub's names (`index.docker.io`, `registry-1.docker.io`) become
//! `docker.io`. Mirrors an admin configures ([`RegistryAliases`]) are folded on top.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The registry of references that name none.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// Docker Hub's names besides [`DEFAULT_REGISTRY`].
const DOCKER_HUB_ALIASES: [&str; 2] = ["index.docker.io", "registry-1.docker.io"];
/// The port a registry host without one is reached on.
const DEFAULT_HTTPS_PORT: u16 = 443;
const OFFICIAL_NAMESPACE: &str = "library";
const DEFAULT_TAG: &str = "latest";
/// Longest repository name (registry and path) a registry accepts.
const MAX_NAME_LENGTH: usize = 255;
const MAX_TAG_LENGTH: usize = 128;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("image reference is empty: give a name such as `nginx:1.27`")]
    Empty,
    #[error(
        "image reference {0:?} contains uppercase letters in its repository: repository names are lowercase"
    )]
    Uppercase(String),
    #[error("image reference {reference:?} is invalid: {problem}")]
    Invalid { reference: String, problem: String },
    #[error(
        "image reference {0:?} is longer than {MAX_NAME_LENGTH} characters, the most a registry accepts"
    )]
    TooLong(String),
    #[error("registryAliases: {registry:?} is not a registry host[:port]: {problem}")]
    AliasNotARegistry { registry: String, problem: String },
    #[error(
        "registryAliases: {alias:?} maps to {target:?}, which is the same registry already \
         (host case, the port :443 and Docker Hub's names are folded without configuration); \
         remove the entry"
    )]
    AliasToItself { alias: String, target: String },
    #[error(
        "registryAliases: {alias:?} maps to {target:?}, which is itself an alias of {next:?}; \
         map {alias:?} straight to the registry it mirrors"
    )]
    AliasChain {
        alias: String,
        target: String,
        next: String,
    },
    #[error(
        "registryAliases: {alias:?} is given twice (as spelled, or after folding host case and \
         :443), once for {first:?} and once for {second:?}; keep one"
    )]
    AliasConflict {
        alias: String,
        first: String,
        second: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A parsed, normalized image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageRef {
    /// Parses and normalizes a reference as the kubelet would pull it, with the registry in
    /// its one spelling (lowercase, no `:443`, `docker.io` for Docker Hub's names).
    pub fn parse(reference: &str) -> Result<Self> {
        if reference.is_empty() {
            return Err(Error::Empty);
        }
        let invalid = |problem: &str| Error::Invalid {
            reference: reference.to_string(),
            problem: problem.to_string(),
        };
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => {
                check_digest(digest).map_err(|p| invalid(&p))?;
                (rest, Some(digest.to_string()))
            }
            None => (reference, None),
        };
        // A tag follows the last ':' that comes after the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &rest[last_slash + i + 1..];
                check_tag(tag).map_err(|p| invalid(&p))?;
                (&rest[..last_slash + i], Some(tag.to_string()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(invalid("the repository name is missing"));
        }
        let (registry, path) = split_registry(name);
        if let Some(registry) = registry {
            check_registry(registry).map_err(|p| invalid(&p))?;
            // `Registry/app` names host `Registry` only because of its capitals: folded to
            // lowercase it would read as Docker Hub's `registry/app`, another image.
            if !registry.contains(['.', ':']) && !registry.eq_ignore_ascii_case("localhost") {
                return Err(invalid(&format!(
                    "registry host {registry:?} is a single name in capitals; write the host in \
                     lowercase with its domain or port (e.g. registry.example/app)"
                )));
            }
        }
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(Error::Uppercase(reference.to_string()));
        }
        check_path(path).map_err(|p| invalid(&p))?;

        let registry = registry.map_or_else(|| DEFAULT_REGISTRY.to_string(), canonical_registry);
        let repository = repository_on(&registry, path);
        if registry.len() + 1 + repository.len() > MAX_NAME_LENGTH {
            return Err(Error::TooLong(reference.to_string()));
        }
        let tag = match (tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (tag, _) => tag,
        };
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry host, with its port if any (`docker.io`, `localhost:5000`), canonical.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path within the registry (`library/nginx`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:…`), when the reference pins one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// `registry/repository`, the name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `registry/repository@digest`, when the reference has a digest.
    pub fn by_digest(&self) -> Option<String> {
        (self.digest.as_ref()).map(|d| format!("{}/{}@{d}", self.registry, self.repository))
    }

    /// `registry/repository:tag`, when the reference has a tag.
    pub fn by_tag(&self) -> Option<String> {
        (self.tag.as_ref()).map(|t| format!("{}/{}:{t}", self.registry, self.repository))
    }

    /// The same repository path, tag and digest on another (canonical) registry.
    fn on_registry(&self, registry: &str) -> Self {
        ImageRef {
            registry: registry.to_string(),
            repository: repository_on(registry, &self.repository),
            tag: self.tag.clone(),
            digest: self.digest.clone(),
        }
    }

    /// The same image pinned to `digest`.
    pub fn with_digest(&self, digest: &str) -> Result<Self> {
        check_digest(digest).map_err(|problem| Error::Invalid {
            reference: format!("{}@{digest}", self.name()),
            problem,
        })?;
        Ok(ImageRef {
            digest: Some(digest.to_string()),
            ..self.clone()
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageRef {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ImageRef::parse(s)
    }
}

/// The one spelling of a registry `host[:port]`: lowercase, the port as a number (`:0443` is
/// `:443`, as a runtime dials it), without the default HTTPS port, and `docker.io` for every
/// name of Docker Hub.
pub fn canonical_registry(registry: &str) -> String {
    let lower = registry.to_ascii_lowercase();
    let (host, port) = match lower.rsplit_once(':') {
        Some((host, port)) => match port.parse::<u16>() {
            Ok(port) => (host, Some(port)),
            // Not a number: parsing refuses such hosts before they get here.
            Err(_) => return lower,
        },
        None => (lower.as_str(), None),
    };
    match port.filter(|port| *port != DEFAULT_HTTPS_PORT) {
        None if DOCKER_HUB_ALIASES.contains(&host) => DEFAULT_REGISTRY.to_string(),
        None => host.to_string(),
        Some(port) => format!("{host}:{port}"),
    }
}

/// A path as `registry` serves it: Docker Hub keeps its official images under `library/`.
fn repository_on(registry: &str, path: &str) -> String {
    if registry == DEFAULT_REGISTRY && !path.contains('/') {
        format!("{OFFICIAL_NAMESPACE}/{path}")
    } else {
        path.to_string()
    }
}

/// Registries an admin declares to serve the same content as another (mirrors, pull-through
/// caches): config `registryAliases: {mirror.example:5000: docker.io}`. Both sides are
/// registry `host[:port]`s, kept in their canonical spelling; an alias maps straight to the
/// registry it mirrors (no chains, so no cycles).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, String>",
    into = "BTreeMap<String, String>"
)]
pub struct RegistryAliases {
    /// Canonical alias to canonical target.
    aliases: BTreeMap<String, String>,
}

impl RegistryAliases {
    /// Checks and folds `alias: target` pairs as an admin wrote them.
    pub fn new(entries: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let mut aliases: BTreeMap<String, String> = BTreeMap::new();
        for (alias, target) in entries {
            let canonical_alias = alias_registry(&alias)?;
            let canonical_target = alias_registry(&target)?;
            if canonical_alias == canonical_target {
                return Err(Error::AliasToItself { alias, target });
            }
            if let Some(first) = aliases.get(&canonical_alias)
                && *first != canonical_target
            {
                return Err(Error::AliasConflict {
                    alias: canonical_alias,
                    first: first.clone(),
                    second: canonical_target,
                });
            }
            aliases.insert(canonical_alias, canonical_target);
        }
        if let Some((alias, target, next)) = aliases
            .iter()
            .find_map(|(alias, target)| aliases.get(target).map(|next| (alias, target, next)))
        {
            return Err(Error::AliasChain {
                alias: alias.clone(),
                target: target.clone(),
                next: next.clone(),
            });
        }
        Ok(RegistryAliases { aliases })
    }

    pub fn is_empty(&self) -> bool {
        self.aliases.is_empty()
    }

    /// The image as the registry it mirrors names it (itself when its registry is no alias).
    pub fn canonicalize<'a>(&self, image: &'a ImageRef) -> Cow<'a, ImageRef> {
        match self.aliases.get(image.registry()) {
            Some(target) => Cow::Owned(image.on_registry(target)),
            None => Cow::Borrowed(image),
        }
    }
}

impl TryFrom<BTreeMap<String, String>> for RegistryAliases {
    type Error = Error;

    fn try_from(entries: BTreeMap<String, String>) -> Result<Self> {
        RegistryAliases::new(entries)
    }
}

impl From<RegistryAliases> for BTreeMap<String, String> {
    fn from(aliases: RegistryAliases) -> Self {
        aliases.aliases
    }
}

/// One side of a `registryAliases` entry, checked and in its canonical spelling.
fn alias_registry(registry: &str) -> Result<String> {
    let problem = |problem: String| Error::AliasNotARegistry {
        registry: registry.to_string(),
        problem,
    };
    if registry.contains('/') {
        return Err(problem(
            "give the host and port only, without a path (`mirror.example:5000`)".into(),
        ));
    }
    // An image reference reads its first component as a registry only if it looks like one.
    if split_registry(&format!("{registry}/x")).0.is_none() {
        return Err(problem(
            "an image reference reads it as a Docker Hub namespace; a registry host has a '.' \
             or a ':port', or is `localhost`"
                .into(),
        ));
    }
    check_registry(registry).map_err(problem)?;
    Ok(canonical_registry(registry))
}

/// Splits `host[:port]/path` into the registry, if the first component is one, and the path.
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn check_registry(registry: &str) -> Result<(), String> {
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    if let Some(port) = port
        && (!port.chars().all(|c| c.is_ascii_digit()) || port.parse::<u16>().is_err())
    {
        return Err(format!(
            "registry port {port:?} is not a number between 0 and 65535"
        ));
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if host.is_empty() || !host.split('.').all(label_ok) {
        return Err(format!(
            "registry host {host:?} is not a valid host name (letters, digits, '-' and '.')"
        ));
    }
    Ok(())
}

/// Path components are `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn check_path(path: &str) -> Result<(), String> {
    for component in path.split('/') {
        if component.is_empty() {
            return Err(
                "the repository path has an empty component ('//' or a trailing '/')".into(),
            );
        }
        let bytes = component.as_bytes();
        let is_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
            return Err(format!(
                "repository component {component:?} must start and end with a lowercase letter or digit"
            ));
        }
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if is_alnum(b) {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && !is_alnum(bytes[i]) {
                i += 1;
            }
            let separator = &component[start..i];
            let valid =
                matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
            if !valid {
                return Err(format!(
                    "repository component {component:?} contains {separator:?}; only lowercase \
                     letters, digits and the separators '.', '_', '__' and '-' are allowed"
                ));
            }
        }
    }
    Ok(())
}

/// Tags are `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn check_tag(tag: &str) -> Result<(), String> {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !first_ok || !rest_ok || tag.len() > MAX_TAG_LENGTH {
        return Err(format!(
            "tag {tag:?} is not valid: up to {MAX_TAG_LENGTH} letters, digits, '_', '.' and '-', \
             not starting with '.' or '-'"
        ));
    }
    Ok(())
}

/// Digests are `algorithm:hex`; for sha256 exactly 64 lowercase hex digits.
fn check_digest(digest: &str) -> Result<(), String> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(format!(
            "digest {digest:?} must be `algorithm:hex`, e.g. `sha256:` and 64 hex digits"
        ));
    };
    let algorithm_ok = algorithm.split(['+', '.', '_', '-']).all(|part| {
        part.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    });
    if !algorithm_ok {
        return Err(format!("digest algorithm {algorithm:?} is not valid"));
    }
    let hex_ok = hex.len() >= 32 && hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
    if !hex_ok || (algorithm == "sha256" && hex.len() != 64) {
        return Err(format!(
            "digest {digest:?} must end in lowercase hex digits (64 for sha256)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn norm(s: &str) -> String {
        ImageRef::parse(s)
            .map(|r| r.to_string())
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn docker_hub_defaults() {
        assert_eq!(norm("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(norm("nginx:1.27"), "docker.io/library/nginx:1.27");
        assert_eq!(norm("bitnami/redis"), "docker.io/bitnami/redis:latest");
        assert_eq!(norm("docker.io/nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            norm("index.docker.io/library/nginx:1"),
            "docker.io/library/nginx:1"
        );
        assert_eq!(
            norm("docker.io/library/nginx:latest"),
            "docker.io/library/nginx:latest"
        );
    }

    #[test]
    fn spellings_of_one_registry_are_folded() {
        for spelling in [
            "busybox:1.32.1",
            "library/busybox:1.32.1",
            "docker.io/library/busybox:1.32.1",
            "DOCKER.IO/library/busybox:1.32.1",
            "Docker.Io/busybox:1.32.1",
            "docker.io:443/library/busybox:1.32.1",
            "index.docker.io/library/busybox:1.32.1",
            "index.docker.io:443/busybox:1.32.1",
            "registry-1.docker.io/library/busybox:1.32.1",
            "REGISTRY-1.DOCKER.IO:443/busybox:1.32.1",
        ] {
            assert_eq!(
                norm(spelling),
                "docker.io/library/busybox:1.32.1",
                "{spelling}"
            );
        }
        assert_eq!(norm("GHCR.io:443/org/app:v1"), "ghcr.io/org/app:v1");
        assert_eq!(norm("localhost:443/app"), "localhost/app:latest");
        // Ports are numbers: leading zeros dial the same port.
        for spelling in [
            "registry-1.docker.io:0443/library/busybox:1.32.1",
            "index.docker.io:00443/busybox:1.32.1",
            "docker.io:000443/library/busybox:1.32.1",
        ] {
            assert_eq!(
                norm(spelling),
                "docker.io/library/busybox:1.32.1",
                "{spelling}"
            );
        }
        assert_eq!(norm("ghcr.io:04443/org/app"), "ghcr.io:4443/org/app:latest");
        assert_eq!(norm("localhost:05000/app"), "localhost:5000/app:latest");
        // Other ports are other servers.
        assert_eq!(norm("ghcr.io:4443/org/app"), "ghcr.io:4443/org/app:latest");
        assert_eq!(norm("docker.io:5000/app"), "docker.io:5000/app:latest");
        // Hosts that merely look like Docker Hub are not Docker Hub.
        assert_eq!(
            norm("docker.io.example/library/busybox"),
            "docker.io.example/library/busybox:latest"
        );
    }

    fn aliases(entries: &[(&str, &str)]) -> Result<RegistryAliases> {
        RegistryAliases::new(entries.iter().map(|(a, t)| (a.to_string(), t.to_string())))
    }

    #[test]
    fn mirrors_fold_into_the_registry_they_mirror() {
        let mirrors = aliases(&[
            ("Mirror.Example:5000", "docker.io"),
            ("cache.example:443", "ghcr.io"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let canonical = |s: &str| {
            let image = ImageRef::parse(s).unwrap_or_else(|e| panic!("{e}"));
            mirrors.canonicalize(&image).to_string()
        };
        assert_eq!(
            canonical("mirror.example:5000/library/busybox:1.32.1"),
            "docker.io/library/busybox:1.32.1"
        );
        assert_eq!(
            canonical("MIRROR.example:5000/busybox:1.32.1"),
            "docker.io/library/busybox:1.32.1"
        );
        assert_eq!(canonical("cache.example/org/app:1"), "ghcr.io/org/app:1");
        assert_eq!(canonical("quay.io/org/app:1"), "quay.io/org/app:1");
        assert!(matches!(
            mirrors.canonicalize(&ImageRef::parse("nginx").unwrap_or_else(|e| panic!("{e}"))),
            Cow::Borrowed(_)
        ));
        assert!(RegistryAliases::default().is_empty());
        assert!(!mirrors.is_empty());
    }

    #[test]
    fn alias_mistakes_are_reported() {
        let message = |entries: &[(&str, &str)]| {
            aliases(entries)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let chain = message(&[("a.example", "b.example"), ("b.example", "docker.io")]);
        assert!(
            chain.contains(
                "\"a.example\" maps to \"b.example\", which is itself an alias of \"docker.io\""
            ),
            "{chain}"
        );
        let cycle = message(&[("a.example", "b.example"), ("b.example", "a.example")]);
        assert!(cycle.contains("which is itself an alias of"), "{cycle}");
        let itself = message(&[("registry-1.docker.io", "docker.io")]);
        assert!(itself.contains("the same registry already"), "{itself}");
        assert!(message(&[("m.example:443", "M.example")]).contains("the same registry already"));
        let path = message(&[("mirror.example/hub", "docker.io")]);
        assert!(path.contains("without a path"), "{path}");
        let namespace = message(&[("mirror", "docker.io")]);
        assert!(namespace.contains("Docker Hub namespace"), "{namespace}");
        let port = message(&[("mirror.example:http", "docker.io")]);
        assert!(port.contains("registry port"), "{port}");
        assert!(message(&[("mirror.example", "")]).contains("not a registry host"));
        let twice = message(&[("m.example", "docker.io"), ("M.example:443", "ghcr.io")]);
        assert!(twice.contains("given twice"), "{twice}");
        assert!(aliases(&[("m.example", "docker.io"), ("M.EXAMPLE", "index.docker.io")]).is_ok());
    }

    #[test]
    fn aliases_from_config_yaml() {
        let parsed: RegistryAliases =
            serde_yaml::from_str("{mirror.example:5000: docker.io, Cache.Example: ghcr.io:443}")
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            parsed,
            aliases(&[
                ("mirror.example:5000", "docker.io"),
                ("cache.example", "ghcr.io")
            ])
            .unwrap_or_else(|e| panic!("{e}"))
        );
        let error =
            serde_yaml::from_str::<RegistryAliases>("{a.example: b.example, b.example: c.example}")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
        assert!(error.contains("itself an alias"), "{error}");
    }

    #[test]
    fn other_registries_keep_their_path() {
        assert_eq!(norm("ghcr.io/org/app:v1"), "ghcr.io/org/app:v1");
        assert_eq!(norm("quay.io/a/b/c"), "quay.io/a/b/c:latest");
        assert_eq!(
            norm("registry.k8s.io/pause"),
            "registry.k8s.io/pause:latest"
        );
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
    }

    #[test]
    fn ports_in_registry_hosts() {
        let r = ImageRef::parse("localhost:5000/team/app:2.0").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.registry(), "localhost:5000");
        assert_eq!(r.repository(), "team/app");
        assert_eq!(r.tag(), Some("2.0"));
        assert_eq!(
            norm("registry.local:8443/app"),
            "registry.local:8443/app:latest"
        );
        assert!(norm("registry.local:http/app").starts_with("ERR"));
    }

    #[test]
    fn digests() {
        let r = ImageRef::parse(&format!("nginx@{D}")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.tag(), None, "a digest without a tag gets no default tag");
        assert_eq!(r.digest(), Some(D));
        assert_eq!(r.by_digest(), Some(format!("docker.io/library/nginx@{D}")));
        assert_eq!(r.by_tag(), None);
        let both =
            ImageRef::parse(&format!("ghcr.io/o/a:1.0@{D}")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(both.to_string(), format!("ghcr.io/o/a:1.0@{D}"));
        assert_eq!(both.by_tag(), Some("ghcr.io/o/a:1.0".into()));
        let pinned = ImageRef::parse("nginx:1").and_then(|r| r.with_digest(D));
        assert_eq!(
            pinned.map(|p| p.to_string()),
            Ok(format!("docker.io/library/nginx:1@{D}"))
        );
    }

    #[test]
    fn uppercase_is_rejected_with_a_clear_error() {
        assert_eq!(
            ImageRef::parse("NGINX"),
            Err(Error::Uppercase("NGINX".into()))
        );
        assert!(matches!(
            ImageRef::parse("ghcr.io/Org/app"),
            Err(Error::Uppercase(_))
        ));
        // Uppercase in a registry host is allowed, and folded (host names are case-insensitive).
        assert_eq!(
            norm("Registry.Example.com/app"),
            "registry.example.com/app:latest"
        );
        // Uppercase in a tag is allowed.
        assert_eq!(norm("nginx:V1"), "docker.io/library/nginx:V1");
    }

    #[test]
    fn malformed_references_are_rejected() {
        for bad in [
            "",
            ":latest",
            "nginx:",
            "nginx:-bad",
            "nginx@sha256:abc",
            "nginx@sha256",
            &format!("nginx@SHA256:{}", &D[7..]),
            "ngin x",
            "a//b",
            "a/b/",
            "/a",
            "-a",
            "a__-b",
            "a...b",
            "ghcr.io/",
            "host:99999999/app",
            "host:65536/app",
            "ghcr.io/app:tag:again",
        ] {
            let result = ImageRef::parse(bad);
            assert!(result.is_err(), "{bad:?} parsed as {result:?}");
        }
        let message = ImageRef::parse("nginx:-bad")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains("tag \"-bad\" is not valid"), "{message}");
        assert!(
            ImageRef::parse("")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
                .contains("empty")
        );
    }

    #[test]
    fn names_are_bounded() {
        let long = format!("ghcr.io/{}", "a".repeat(250));
        assert!(matches!(ImageRef::parse(&long), Err(Error::TooLong(_))));
        let tag = format!("nginx:{}", "t".repeat(129));
        assert!(ImageRef::parse(&tag).is_err());
    }

    #[test]
    fn separators() {
        for ok in ["a.b", "a_b", "a__b", "a-b", "a---b", "a.b-c_d"] {
            assert!(ImageRef::parse(ok).is_ok(), "{ok}");
        }
    }

    fn component() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,8}([._-][a-z0-9]{1,8}){0,2}"
    }

    fn registry() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("[a-z]{1,8}\\.[a-z]{2,4}(:[1-9][0-9]{1,3})?")
    }

    /// Image content: a canonical registry and repository, and a tag or a digest.
    #[derive(Clone, Debug, PartialEq)]
    struct Content {
        registry: String,
        path: Vec<String>,
        pin: Pin,
    }

    #[derive(Clone, Debug, PartialEq)]
    enum Pin {
        Tag(String),
        Digest(String),
    }

    impl Content {
        /// What the runtime pulls, in canonical form.
        fn identity(&self) -> String {
            let mut path = self.path.join("/");
            if self.registry == DEFAULT_REGISTRY && self.path.len() == 1 {
                path = format!("library/{path}");
            }
            match &self.pin {
                Pin::Tag(t) => format!("{}/{path}:{t}", self.registry),
                Pin::Digest(d) => format!("{}/{path}@{d}", self.registry),
            }
        }
    }

    /// How one spelling writes a content: which name of the registry (an index into
    /// [`registry_names`]), the case of each host letter, `:443`, `library/` and a tag beside
    /// a digest.
    #[derive(Clone, Debug)]
    struct Spelling {
        name: usize,
        upper: Vec<bool>,
        port: bool,
        /// Leading zeros written before the port, when there is one.
        zeros: usize,
        short_library: bool,
        tag_beside_digest: Option<String>,
    }

    const MIRRORS: [(&str, &str); 2] = [
        ("mirror.example:5000", "docker.io"),
        ("cache.example", "ghcr.io"),
    ];

    fn mirrors() -> RegistryAliases {
        aliases(&MIRRORS).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every name that pulls from `registry` ("" for none, Docker Hub's default).
    fn registry_names(registry: &str) -> Vec<&str> {
        let mut names = vec![registry];
        if registry == DEFAULT_REGISTRY {
            names.extend(["", "index.docker.io", "registry-1.docker.io"]);
        }
        names.extend(
            MIRRORS
                .iter()
                .filter(|(_, t)| *t == registry)
                .map(|(a, _)| *a),
        );
        names
    }

    fn spell(content: &Content, how: &Spelling) -> String {
        let names = registry_names(&content.registry);
        let mut name = names[how.name % names.len()].to_string();
        // Without a registry, a first component that looks like a host would be read as one.
        if name.is_empty() && (content.path[0].contains('.') || content.path[0] == "localhost") {
            name = DEFAULT_REGISTRY.into();
        }
        let mut s: String = name
            .chars()
            .zip(how.upper.iter().chain(std::iter::repeat(&false)))
            .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
            .collect();
        if how.port && !s.is_empty() && !s.contains(':') {
            s.push_str(":443");
        }
        if let Some(colon) = s.find(':') {
            s.insert_str(colon + 1, &"0".repeat(how.zeros));
        }
        if !s.is_empty() {
            s.push('/');
        }
        let hub = content.registry == DEFAULT_REGISTRY;
        if hub && content.path.len() == 1 && !how.short_library {
            s.push_str("library/");
        }
        s.push_str(&content.path.join("/"));
        match &content.pin {
            Pin::Tag(t) => {
                s.push(':');
                s.push_str(t);
            }
            Pin::Digest(d) => {
                if let Some(t) = &how.tag_beside_digest {
                    s.push(':');
                    s.push_str(t);
                }
                s.push('@');
                s.push_str(d);
            }
        }
        s
    }

    /// What the runtime pulls for a reference, after the mirrors are folded.
    fn pulled(reference: &str) -> Result<String, TestCaseError> {
        let image = ImageRef::parse(reference)
            .map_err(|e| TestCaseError::fail(format!("{reference}: {e}")))?;
        let image = mirrors().canonicalize(&image).into_owned();
        Ok(image
            .by_digest()
            .or_else(|| image.by_tag())
            .unwrap_or_else(|| image.name()))
    }

    fn tag() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_][A-Za-z0-9_.-]{0,12}"
    }

    fn pin() -> impl Strategy<Value = Pin> {
        prop_oneof![
            tag().prop_map(Pin::Tag),
            "[0-9a-f]{64}".prop_map(|h| Pin::Digest(format!("sha256:{h}"))),
        ]
    }

    fn content() -> impl Strategy<Value = Content> {
        (
            prop_oneof![
                Just("docker.io".to_string()),
                Just("ghcr.io".to_string()),
                Just("localhost:5000".to_string()),
                Just("localhost".to_string()),
                "[a-z]{1,6}\\.example(:[1-9][0-9]{1,3})?",
            ],
            proptest::collection::vec(component(), 1..4),
            pin(),
        )
            .prop_map(|(registry, path, pin)| Content {
                registry,
                path,
                pin,
            })
    }

    fn spelling() -> impl Strategy<Value = Spelling> {
        (
            0..8usize,
            proptest::collection::vec(any::<bool>(), 0..24),
            any::<bool>(),
            0..3usize,
            any::<bool>(),
            proptest::option::of(tag()),
        )
            .prop_map(
                |(name, upper, port, zeros, short_library, tag_beside_digest)| Spelling {
                    name,
                    upper,
                    port,
                    zeros,
                    short_library,
                    tag_beside_digest,
                },
            )
    }

    /// Another content differing from `c` in one respect.
    fn changed(c: &Content, how: u8, other: &Content) -> Content {
        let mut d = c.clone();
        match how % 4 {
            0 => d.registry = other.registry.clone(),
            1 => d.path = other.path.clone(),
            2 => d.path.push("x".into()),
            _ => d.pin = other.pin.clone(),
        }
        d
    }

    proptest! {
        #[test]
        fn spellings_of_the_same_content_are_one_identity(
            c in content(),
            a in spelling(),
            b in spelling(),
        ) {
            let (sa, sb) = (spell(&c, &a), spell(&c, &b));
            prop_assert_eq!(pulled(&sa)?, c.identity(), "{}", sa);
            prop_assert_eq!(pulled(&sb)?, c.identity(), "{}", sb);
        }

        #[test]
        fn different_content_is_never_one_identity(
            c in content(),
            other in content(),
            how in any::<u8>(),
            a in spelling(),
            b in spelling(),
        ) {
            let d = changed(&c, how, &other);
            prop_assume!(c.identity() != d.identity());
            let (sa, sb) = (spell(&c, &a), spell(&d, &b));
            prop_assert_ne!(pulled(&sa)?, pulled(&sb)?, "{} and {}", sa, sb);
        }

        #[test]
        fn normalized_form_parses_to_itself(
            registry in registry(),
            path in proptest::collection::vec(component(), 1..4),
            tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
            digest in proptest::option::of("[0-9a-f]{64}"),
        ) {
            // Without a registry, a first component with a '.' would be read as a host.
            prop_assume!(registry.is_some() || !path[0].contains('.'));
            let mut s = String::new();
            if let Some(r) = &registry {
                s.push_str(r);
                s.push('/');
            }
            s.push_str(&path.join("/"));
            if let Some(t) = &tag {
                s.push(':');
                s.push_str(t);
            }
            if let Some(d) = &digest {
                s.push_str("@sha256:");
                s.push_str(d);
            }
            let parsed = ImageRef::parse(&s).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let formatted = parsed.to_string();
            let reparsed = ImageRef::parse(&formatted).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&reparsed, &parsed);
            prop_assert_eq!(reparsed.to_string(), formatted);
            prop_assert_eq!(parsed.tag(), tag.as_deref().or(if digest.is_none() { Some("latest") } else { None }));
            if registry.is_none() {
                prop_assert_eq!(parsed.registry(), "docker.io");
            }
        }

        #[test]
        fn arbitrary_input_never_panics(s in "\\PC{0,80}") {
            let _ = ImageRef::parse(&s);
        }

        #[test]
        fn parse_is_idempotent(s in "[a-zA-Z0-9:/@._-]{1,60}") {
            if let Ok(parsed) = ImageRef::parse(&s) {
                prop_assert_eq!(ImageRef::parse(&parsed.to_string()), Ok(parsed));
            }
        }
    }
}
