//! A local CA and a serving certificate, for development, tests and the demo. In a cluster,
//! cert-manager issues the certificate instead.

use std::path::{Path, PathBuf};

use clap::Args;

use jiff::{Timestamp, ToSpan, tz::TimeZone};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, date_time_ymd,
};

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Directory to write ca.crt, ca.key, tls.crt and tls.key into.
    #[arg(long, env = "SCANGATE_CERTS_DIR", default_value = "certs/local")]
    pub out_dir: PathBuf,
    /// Names and IP addresses of the serving certificate (default: loopback and the Service).
    #[arg(long = "host", env = "SCANGATE_CERTS_HOSTS", value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// Days the CA and certificate are valid.
    #[arg(long, env = "SCANGATE_CERTS_DAYS", default_value_t = 365)]
    pub days: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {cause}")]
    Write { path: String, cause: std::io::Error },
    #[error("the validity of {0} days is out of range")]
    Validity(i64),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `scangate certs`: writes a CA and a serving certificate for `--host` (default: loopback and
/// the Service's names) and says what it wrote.
pub fn run(args: &CertsArgs) -> Result<String> {
    let hosts: Vec<String> = if args.hosts.is_empty() {
        DEFAULT_HOSTS.iter().map(|h| h.to_string()).collect()
    } else {
        args.hosts.clone()
    };
    generate(&hosts, args.days)?.write(&args.out_dir)?;
    Ok(format!(
        "wrote ca.crt, ca.key, tls.crt and tls.key for {} to {}",
        hosts.join(", "),
        args.out_dir.display()
    ))
}

/// The names the webhook is reached by: loopback for the local control plane, the Service's
/// names in a cluster.
pub const DEFAULT_HOSTS: [&str; 6] = [
    "127.0.0.1",
    "localhost",
    "scangate-webhook",
    "scangate-webhook.scangate-system",
    "scangate-webhook.scangate-system.svc",
    "scangate-webhook.scangate-system.svc.cluster.local",
];

/// A CA and a serving certificate it signed, all PEM.
pub struct Bundle {
    pub ca_cert: String,
    pub ca_key: String,
    pub cert: String,
    pub key: String,
}

fn validity(params: &mut CertificateParams, days: i64) -> Result<()> {
    let date = |t: Timestamp| {
        let d = t.to_zoned(TimeZone::UTC).date();
        // jiff dates are always valid calendar dates, which is all date_time_ymd asks.
        date_time_ymd(i32::from(d.year()), d.month() as u8, d.day() as u8)
    };
    let now = Timestamp::now();
    let end = now
        .checked_add(days.hours() * 24)
        .map_err(|_| Error::Validity(days))?;
    params.not_before = date(
        now.checked_sub(1.hours() * 24)
            .map_err(|_| Error::Validity(days))?,
    );
    params.not_after = date(end);
    Ok(())
}

/// Creates a CA and a serving certificate for `hosts` (DNS names or IP addresses).
pub fn generate(hosts: &[String], days: i64) -> Result<Bundle> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut ca_name = DistinguishedName::new();
    ca_name.push(DnType::CommonName, "scangate local CA");
    ca_params.distinguished_name = ca_name;
    validity(&mut ca_params, days)?;
    let ca_cert = ca_params.self_signed(&ca_key)?;

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(hosts.to_vec())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "scangate-webhook");
    params.distinguished_name = name;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut params, days)?;
    let issuer = Issuer::new(ca_params, &ca_key);
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Bundle {
        ca_cert: ca_cert.pem(),
        ca_key: ca_key.serialize_pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

impl Bundle {
    /// Writes `ca.crt`, `ca.key`, `tls.crt` and `tls.key` (the names of a kubernetes.io/tls
    /// Secret plus its CA) into `dir`, creating it.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let write = |name: &str, content: &str| {
            let path = dir.join(name);
            std::fs::write(&path, content).map_err(|cause| Error::Write {
                path: path.display().to_string(),
                cause,
            })
        };
        std::fs::create_dir_all(dir).map_err(|cause| Error::Write {
            path: dir.display().to_string(),
            cause,
        })?;
        write("ca.crt", &self.ca_cert)?;
        write("ca.key", &self.ca_key)?;
        write("tls.crt", &self.cert)?;
        write("tls.key", &self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn creates_a_ca_and_a_serving_certificate_it_signed() {
        let hosts: Vec<String> = DEFAULT_HOSTS.iter().map(|h| h.to_string()).collect();
        let bundle = generate(&hosts, 365).unwrap_or_else(|e| panic!("{e}"));
        assert!(bundle.ca_cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(bundle.key.contains("PRIVATE KEY"));
        // The serving certificate verifies against the CA for each host name, as a client would.
        let mut roots = rustls::RootCertStore::empty();
        let ca = CertificateDer::pem_slice_iter(bundle.ca_cert.as_bytes())
            .next()
            .and_then(|c| c.ok())
            .unwrap_or_else(|| panic!("no CA cert"));
        roots.add(ca).unwrap_or_else(|e| panic!("{e}"));
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
        let leaf = CertificateDer::pem_slice_iter(bundle.cert.as_bytes())
            .next()
            .and_then(|c| c.ok())
            .unwrap_or_else(|| panic!("no leaf"));
        for host in ["127.0.0.1", "scangate-webhook.scangate-system.svc"] {
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .unwrap_or_else(|e| panic!("{e}"));
            let verified = verifier.verify_server_cert(
                &leaf,
                &[],
                &name,
                &[],
                rustls::pki_types::UnixTime::now(),
            );
            assert!(verified.is_ok(), "{host}: {verified:?}");
        }
        let other = rustls::pki_types::ServerName::try_from("evil.example".to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            verifier
                .verify_server_cert(&leaf, &[], &other, &[], rustls::pki_types::UnixTime::now())
                .is_err()
        );
    }
}
