//! Where the registry client may send requests, pure: the admin's lists, and the rules that
//! judge a redirect, a Bearer realm and the addresses a name resolves to.
//!
//! The registry an image names is asked first, wherever it is (the image is the tenant's
//! choice, and in-cluster registries have private addresses). Being sent anywhere else is
//! judged: a redirect or a realm must be HTTPS (plain HTTP only to hosts the admin lists as
//! insecure), and must not reach a loopback, private, link-local, shared, unspecified,
//! multicast or reserved address, nor `localhost`, nor another port of the registry's own
//! host, unless the admin allows that host or network. A realm must moreover be on the
//! registry's own `host:port` or on a host the admin lists. IP literals and `localhost` are
//! judged from the URL; other names by the addresses they resolve to ([`Egress::connectable`],
//! applied by the client's DNS resolver), so a public name pointing inside is refused too.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use reqwest::Url;

/// The most redirects one request follows (blob storage or a CDN is one hop away).
pub const MAX_REDIRECTS: usize = 3;

/// Why a request is not sent. The messages name the target: they are for the controller's
/// log, not for the tenant (see [`super::Error`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{target} is not HTTPS, and its host is not in --registry-insecure-hosts")]
    NotHttps { target: String },
    #[error(
        "{target} is a loopback, private, link-local, shared, unspecified, multicast or reserved \
         address (or localhost), not in --registry-allowed-private"
    )]
    InternalAddress { target: String },
    #[error(
        "{target} is another port of the registry's own host, not in --registry-allowed-private"
    )]
    OtherPort { target: String },
    #[error(
        "{name} resolves only to internal addresses ({addresses}), and is not in --registry-allowed-private"
    )]
    InternalName { name: String, addresses: String },
    #[error("more than {MAX_REDIRECTS} redirects (the last to {target})")]
    TooManyRedirects { target: String },
    #[error("the Bearer realm {realm:?} is not a URL")]
    RealmNotUrl { realm: String },
    #[error(
        "the Bearer realm {realm} is neither on the registry's own host:port nor on a host in \
         --registry-realm-hosts"
    )]
    RealmNotAllowed { realm: String },
    #[error("{entry:?} is not a {expected}")]
    BadEntry {
        entry: String,
        expected: &'static str,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A comma-separated list of entries, as the flags and their environment variables take them;
/// empty entries (and an empty list) are none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct List<T>(pub Vec<T>);

impl<T: FromStr<Err = Error>> FromStr for List<T> {
    type Err = Error;

    fn from_str(list: &str) -> Result<Self> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<T>>>()
            .map(List)
    }
}

/// A `host[:port]` the admin lists; without a port, it stands for the scheme's default port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    host: String,
    port: Option<u16>,
}

impl FromStr for HostPort {
    type Err = Error;

    fn from_str(entry: &str) -> Result<Self> {
        let bad = || Error::BadEntry {
            entry: entry.to_string(),
            expected: "host[:port]",
        };
        let url = Url::parse(&format!("https://{}/", entry.trim())).map_err(|_| bad())?;
        let valid = url.username().is_empty()
            && url.password().is_none()
            && url.path() == "/"
            && url.query().is_none()
            && url.fragment().is_none();
        match url.host_str() {
            Some(host) if valid && !host.is_empty() => Ok(HostPort {
                host: host.to_string(),
                // `Url` drops `:443` as HTTPS's default; the entry's spelling keeps it.
                port: url.port().or_else(|| explicit_port(entry)),
            }),
            _ => Err(bad()),
        }
    }
}

/// The port an entry spells out, even the one `Url` drops as HTTPS's default (`h:443`).
fn explicit_port(entry: &str) -> Option<u16> {
    let (_, port) = entry.trim().rsplit_once(':')?;
    port.parse().ok()
}

impl HostPort {
    fn matches(&self, target: &Url) -> bool {
        target.host_str() == Some(self.host.as_str())
            && target.port_or_known_default() == self.port.or_else(|| default_port(target))
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

fn default_port(url: &Url) -> Option<u16> {
    match url.scheme() {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    }
}

/// An internal destination the admin allows: a host name, or a network (`10.1.0.0/16`, an IP
/// alone being its own network).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allowed {
    Host(String),
    Network { address: IpAddr, prefix: u8 },
}

impl FromStr for Allowed {
    type Err = Error;

    fn from_str(entry: &str) -> Result<Self> {
        let entry = entry.trim();
        let bad = || Error::BadEntry {
            entry: entry.to_string(),
            expected: "host name, IP address or CIDR network",
        };
        let (address, prefix) = match entry.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (entry, None),
        };
        let bare = address.trim_start_matches('[').trim_end_matches(']');
        match (bare.parse::<IpAddr>(), prefix) {
            (Ok(ip), prefix) => {
                let ip = ip.to_canonical();
                let bits = if ip.is_ipv4() { 32 } else { 128 };
                let prefix = match prefix {
                    Some(p) => p
                        .parse::<u8>()
                        .ok()
                        .filter(|p| *p <= bits)
                        .ok_or_else(bad)?,
                    None => bits,
                };
                Ok(Allowed::Network {
                    address: ip,
                    prefix,
                })
            }
            (Err(_), None) => match Url::parse(&format!("https://{entry}/")) {
                Ok(url) if url.port().is_none() && url.path() == "/" => match host_of(&url) {
                    Some(Destination::Name(name)) => Ok(Allowed::Host(name.to_string())),
                    _ => Err(bad()),
                },
                _ => Err(bad()),
            },
            (Err(_), Some(_)) => Err(bad()),
        }
    }
}

impl Allowed {
    fn allows_ip(&self, ip: IpAddr) -> bool {
        let Allowed::Network { address, prefix } = self else {
            return false;
        };
        match (address, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
                u32::from(*net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*prefix)).unwrap_or(0);
                u128::from(*net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    fn allows_name(&self, name: &str) -> bool {
        matches!(self, Allowed::Host(host) if host == name)
    }
}

/// Whether an address is one a registry client must not be sent to on a tenant's say-so:
/// unspecified (`0.0.0.0/8`, `::`), loopback (`127/8`, `::1`), private (`10/8`, `172.16/12`,
/// `192.168/16`, `fc00::/7`), shared (`100.64/10`), link-local (`169.254/16`, `fe80::/10`),
/// multicast, broadcast and reserved (`240/4`); IPv4 inside IPv6 (`::ffff:a.b.c.d`, NAT64
/// `64:ff9b::/96`) is judged as the IPv4 address.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [.., a, b, c, d] = v6.octets();
                return is_internal_v4(Ipv4Addr::new(a, b, c, d));
            }
            v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00
                || (segments[0] & 0xffc0) == 0xfe80
                // Site-local, deprecated but still routed by some.
                || (segments[0] & 0xffc0) == 0xfec0
        }
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 0
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || a >= 240
        || (a == 100 && (b & 0xc0) == 64)
}

/// `localhost` and its subdomains, which resolvers answer with loopback addresses.
fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    name == "localhost" || name.ends_with(".localhost")
}

/// The admin's lists: which registries are asked over plain HTTP, which internal hosts and
/// networks the client may be sent to, and which hosts may serve Bearer tokens besides a
/// registry's own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Egress {
    insecure_hosts: Vec<HostPort>,
    allowed_private: Vec<Allowed>,
    realm_hosts: Vec<HostPort>,
}

impl Egress {
    pub fn new(
        insecure_hosts: Vec<HostPort>,
        allowed_private: Vec<Allowed>,
        realm_hosts: Vec<HostPort>,
    ) -> Self {
        Egress {
            insecure_hosts,
            allowed_private,
            realm_hosts,
        }
    }

    /// The base URL a registry (`host[:port]`, its API host) is asked at: `https://`, or
    /// `http://` when the admin lists it as insecure.
    pub fn base_url(&self, registry: &str) -> String {
        let insecure = Url::parse(&format!("http://{registry}/"))
            .is_ok_and(|url| self.insecure_hosts.iter().any(|h| h.matches(&url)));
        let scheme = if insecure { "http" } else { "https" };
        format!("{scheme}://{registry}")
    }

    /// Whether a request for `registry` (the URL first asked) may follow a redirect to `next`,
    /// the `hop`th of this request.
    pub fn check_redirect(&self, registry: &Url, next: &Url, hop: usize) -> Result<()> {
        if hop > MAX_REDIRECTS {
            return Err(Error::TooManyRedirects {
                target: next.to_string(),
            });
        }
        self.check_destination(registry, next)
    }

    /// Whether a Bearer challenge's realm may be asked for a token (with the pull secret's
    /// credentials) on behalf of `registry`: on the registry's own `host:port`, or on a listed
    /// realm host that the destination rules allow.
    pub fn check_realm(&self, registry: &Url, realm: &str) -> Result<Url> {
        let url = Url::parse(realm).map_err(|_| Error::RealmNotUrl {
            realm: realm.to_string(),
        })?;
        if !same_host_and_port(registry, &url) && !self.realm_hosts.iter().any(|h| h.matches(&url))
        {
            return Err(Error::RealmNotAllowed {
                realm: url.to_string(),
            });
        }
        self.check_destination(registry, &url)?;
        Ok(url)
    }

    /// The rules for a request the registry sends the client to: the scheme, then the
    /// registry's own `host:port` (allowed), the admin's allowed hosts and networks (allowed),
    /// internal IP literals, `localhost` and other ports of the registry's own host (refused).
    /// Other names are judged by what they resolve to ([`Egress::connectable`]).
    fn check_destination(&self, registry: &Url, target: &Url) -> Result<()> {
        let insecure_allowed = || self.insecure_hosts.iter().any(|h| h.matches(target));
        match target.scheme() {
            "https" => {}
            "http" if insecure_allowed() => {}
            _ => {
                return Err(Error::NotHttps {
                    target: target.to_string(),
                });
            }
        }
        if same_host_and_port(registry, target) {
            return Ok(());
        }
        let internal = || Error::InternalAddress {
            target: target.to_string(),
        };
        match host_of(target) {
            Some(Destination::Ip(ip)) => self.check_ip(ip).map_err(|_| internal()),
            Some(Destination::Name(name))
                if self.allowed_private.iter().any(|a| a.allows_name(name)) =>
            {
                Ok(())
            }
            Some(Destination::Name(name)) if is_localhost(name) => Err(internal()),
            Some(Destination::Name(name)) if registry.host_str() == Some(name) => {
                Err(Error::OtherPort {
                    target: target.to_string(),
                })
            }
            Some(Destination::Name(_)) => Ok(()),
            None => Err(internal()),
        }
    }

    fn check_ip(&self, ip: IpAddr) -> Result<(), ()> {
        if is_internal(ip) && !self.allowed_private.iter().any(|a| a.allows_ip(ip)) {
            Err(())
        } else {
            Ok(())
        }
    }

    /// Which of the addresses `name` resolved to the client may connect to, in a resolution for
    /// the registry whose API host is `registry_host`: all of the registry's own (the image
    /// names it) and of a host the admin allows; of any other name, the addresses that are not
    /// internal or that the admin's networks allow. None left is a refusal.
    pub fn connectable(
        &self,
        registry_host: &str,
        name: &str,
        addresses: Vec<SocketAddr>,
    ) -> Result<Vec<SocketAddr>> {
        if name == registry_host || self.allowed_private.iter().any(|a| a.allows_name(name)) {
            return Ok(addresses);
        }
        let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = addresses
            .into_iter()
            .partition(|a| self.check_ip(a.ip()).is_ok());
        if allowed.is_empty() && !refused.is_empty() {
            return Err(Error::InternalName {
                name: name.to_string(),
                addresses: refused
                    .iter()
                    .map(|a| a.ip().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(allowed)
    }
}

fn same_host_and_port(a: &Url, b: &Url) -> bool {
    a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

/// A URL's host: an IP literal (`Url` spells every IPv4 form as dotted quads, IPv6 in
/// brackets), or a name.
enum Destination<'a> {
    Ip(IpAddr),
    Name(&'a str),
}

fn host_of(url: &Url) -> Option<Destination<'_>> {
    let host = url.host_str()?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    Some(match bare.parse::<IpAddr>() {
        Ok(ip) => Destination::Ip(ip),
        Err(_) => Destination::Name(host),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn egress(insecure: &[&str], allowed: &[&str], realms: &[&str]) -> Egress {
        let parse_all = |entries: &[&str]| -> Vec<HostPort> {
            entries
                .iter()
                .map(|e| e.parse().unwrap_or_else(|e| panic!("{e}")))
                .collect()
        };
        Egress::new(
            parse_all(insecure),
            allowed
                .iter()
                .map(|e| e.parse().unwrap_or_else(|e| panic!("{e}")))
                .collect(),
            parse_all(realms),
        )
    }

    #[test]
    fn internal_addresses() {
        for internal in [
            "0.0.0.0",
            "127.0.0.1",
            "127.9.9.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fd00::1",
            "fc00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            let ip: IpAddr = internal.parse().unwrap_or_else(|e| panic!("{e}"));
            assert!(is_internal(ip), "{internal}");
        }
        for public in [
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2001:db8::1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = public.parse().unwrap_or_else(|e| panic!("{e}"));
            assert!(!is_internal(ip), "{public}");
        }
    }

    #[test]
    fn entries_parse_or_say_what_they_should_be() {
        let host: HostPort = "Registry.Example:5000"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(host.to_string(), "registry.example:5000");
        let default: HostPort = "auth.docker.io".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(default.to_string(), "auth.docker.io");
        let https: HostPort = "r.example:443".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(https.to_string(), "r.example:443");
        for bad in [
            "",
            "http://r.example",
            "r.example/path",
            "u@r.example",
            "r:x",
        ] {
            let error = bad.parse::<HostPort>().err().map(|e| e.to_string());
            assert!(
                error.as_deref().is_some_and(|e| e.contains("host[:port]")),
                "{bad}: {error:?}"
            );
        }
        assert_eq!(
            "10.0.0.0/8".parse::<Allowed>().ok(),
            Some(Allowed::Network {
                address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)),
                prefix: 8
            })
        );
        assert_eq!(
            "registry.internal".parse::<Allowed>().ok(),
            Some(Allowed::Host("registry.internal".into()))
        );
        assert!(matches!(
            "[fd00::1]".parse::<Allowed>(),
            Ok(Allowed::Network { prefix: 128, .. })
        ));
        for bad in ["10.0.0.0/33", "name/8", "h:5000", "10.0.0.0/x", ""] {
            let error = bad.parse::<Allowed>().err().map(|e| e.to_string());
            assert!(
                error.as_deref().is_some_and(|e| e.contains("CIDR")),
                "{bad}: {error:?}"
            );
        }
    }

    #[test]
    fn lists_of_entries() {
        let list: List<HostPort> = " a.example, ,b.example:5000,"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<String> = list.0.iter().map(HostPort::to_string).collect();
        assert_eq!(names, ["a.example", "b.example:5000"]);
        assert_eq!("".parse::<List<Allowed>>().ok(), Some(List(vec![])));
        assert!("10.0.0.0/8,x/y".parse::<List<Allowed>>().is_err());
    }

    #[test]
    fn registries_are_asked_over_https_unless_listed_insecure() {
        let rules = egress(&["plain.example:5000", "plain.example"], &[], &[]);
        assert_eq!(rules.base_url("r.example"), "https://r.example");
        assert_eq!(
            rules.base_url("plain.example:5000"),
            "http://plain.example:5000"
        );
        assert_eq!(rules.base_url("plain.example"), "http://plain.example");
        assert_eq!(
            rules.base_url("plain.example:5001"),
            "https://plain.example:5001"
        );
        assert_eq!(
            Egress::default().base_url("127.0.0.1:5000"),
            "https://127.0.0.1:5000"
        );
    }

    #[test]
    fn redirects_stay_on_https_and_off_internal_addresses() {
        let registry = url("https://127.0.0.1:5000/v2/app/manifests/1");
        let rules = Egress::default();
        let allowed = [
            // The registry's own host:port, another path.
            "https://127.0.0.1:5000/v2/app/blobs/x",
            // Public blob storage and CDNs, by name or address.
            "https://storage.example/blob?sig=1",
            "https://1.1.1.1/blob",
            "https://[2606:4700::1111]/blob",
        ];
        for target in allowed {
            assert!(
                rules.check_redirect(&registry, &url(target), 1).is_ok(),
                "{target}"
            );
        }
        let refused = [
            ("http://127.0.0.1:5000/v2/app/manifests/1", "is not HTTPS"),
            ("http://storage.example/blob", "is not HTTPS"),
            ("ftp://storage.example/blob", "is not HTTPS"),
            ("https://127.0.0.1:5001/", "loopback"),
            ("https://10.0.0.1/", "loopback"),
            ("https://169.254.169.254/latest/meta-data", "loopback"),
            ("https://[::1]:5000/", "loopback"),
            ("https://[fe80::1]/", "loopback"),
            ("https://[::ffff:10.0.0.1]/", "loopback"),
            ("https://localhost:5000/", "loopback"),
            ("https://a.localhost/", "loopback"),
            // Other spellings of loopback addresses are still loopback.
            ("https://2130706433:5001/", "loopback"),
            ("https://0x7f.1/", "loopback"),
        ];
        for (target, says) in refused {
            let error = rules
                .check_redirect(&registry, &url(target), 1)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains(says), "{target}: {error}");
        }
        let too_far = rules.check_redirect(&registry, &url("https://storage.example/"), 4);
        assert!(matches!(too_far, Err(Error::TooManyRedirects { .. })));
        assert!(
            rules
                .check_redirect(&registry, &url("https://storage.example/"), MAX_REDIRECTS)
                .is_ok()
        );
    }

    #[test]
    fn another_port_of_a_named_registry_is_refused() {
        let registry = url("https://registry.internal:5000/v2/app/manifests/1");
        let rules = Egress::default();
        let other = rules.check_redirect(&registry, &url("https://registry.internal:9000/"), 1);
        assert!(matches!(other, Err(Error::OtherPort { .. })), "{other:?}");
        let listed = egress(&[], &["registry.internal"], &[]);
        assert!(
            listed
                .check_redirect(&registry, &url("https://registry.internal:9000/"), 1)
                .is_ok()
        );
    }

    #[test]
    fn the_admin_allows_internal_hosts_networks_and_plain_http() {
        let registry = url("https://registry.example/v2/app/manifests/1");
        let rules = egress(
            &["mirror.internal:8080"],
            &["10.1.0.0/16", "mirror.internal", "fd00::1"],
            &[],
        );
        for target in [
            "https://10.1.2.3/blob",
            "https://[fd00::1]/blob",
            "https://mirror.internal/blob",
            "http://mirror.internal:8080/blob",
        ] {
            assert!(
                rules.check_redirect(&registry, &url(target), 1).is_ok(),
                "{target}"
            );
        }
        for target in [
            "https://10.2.0.1/blob",
            "https://[fd00::2]/blob",
            "http://mirror.internal/blob",
        ] {
            assert!(
                rules.check_redirect(&registry, &url(target), 1).is_err(),
                "{target}"
            );
        }
    }

    #[test]
    fn realms_are_the_registrys_own_or_listed() {
        let registry = url("https://127.0.0.1:5000/v2/app/manifests/1");
        let rules = egress(&[], &[], &["auth.docker.io"]);
        let own = rules.check_realm(&registry, "https://127.0.0.1:5000/token");
        assert_eq!(
            own.ok().map(|u| u.to_string()),
            Some("https://127.0.0.1:5000/token".into())
        );
        assert!(
            rules
                .check_realm(&registry, "https://auth.docker.io/token")
                .is_ok()
        );
        let refused = [
            (
                "https://127.0.0.1:5001/token",
                "neither on the registry's own",
            ),
            (
                "https://auth.example/token",
                "neither on the registry's own",
            ),
            (
                "https://auth.docker.io:8443/token",
                "neither on the registry's own",
            ),
            ("http://127.0.0.1:5000/token", "is not HTTPS"),
            ("/token", "is not a URL"),
        ];
        for (realm, says) in refused {
            let error = rules
                .check_realm(&registry, realm)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains(says), "{realm}: {error}");
        }
        // A listed realm host is still judged by the destination rules.
        let internal = egress(&[], &[], &["10.0.0.5"]);
        let error = internal.check_realm(
            &url("https://registry.example/v2/"),
            "https://10.0.0.5/token",
        );
        assert!(
            matches!(error, Err(Error::InternalAddress { .. })),
            "{error:?}"
        );
        // A plain-HTTP registry listed as insecure may serve its own realm over plain HTTP.
        let plain = egress(&["127.0.0.1:5000"], &[], &[]);
        assert!(
            plain
                .check_realm(
                    &url("http://127.0.0.1:5000/v2/"),
                    "http://127.0.0.1:5000/token"
                )
                .is_ok()
        );
    }

    #[test]
    fn names_connect_only_to_addresses_they_may() {
        let addresses = |ips: &[&str]| -> Vec<SocketAddr> {
            ips.iter()
                .map(|ip| SocketAddr::new(ip.parse().unwrap_or_else(|e| panic!("{e}")), 443))
                .collect()
        };
        let rules = egress(&[], &["10.9.0.0/16", "cache.internal"], &[]);
        let internal = addresses(&["127.0.0.1", "10.0.0.1"]);
        // The registry's own name, and a listed host, connect wherever they resolve.
        assert_eq!(
            rules
                .connectable("registry.internal", "registry.internal", internal.clone())
                .ok(),
            Some(internal.clone())
        );
        assert_eq!(
            rules
                .connectable("r.example", "cache.internal", internal.clone())
                .ok(),
            Some(internal.clone())
        );
        // Other names: only their public or allowed addresses; none is a refusal.
        let refused = rules.connectable("r.example", "evil.example", internal);
        assert!(
            refused
                .err()
                .map(|e| e.to_string())
                .is_some_and(|e| e.contains("resolves only to internal addresses")),
        );
        let mixed = addresses(&["127.0.0.1", "10.9.1.1", "93.184.216.34"]);
        assert_eq!(
            rules.connectable("r.example", "cdn.example", mixed).ok(),
            Some(addresses(&["10.9.1.1", "93.184.216.34"]))
        );
    }
}
