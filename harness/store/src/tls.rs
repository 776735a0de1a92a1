//! TLS to PostgreSQL, as libpq's `sslmode` and `sslrootcert` settings of
//! the URL say: `disable`, `prefer` (the default, as libpq's: TLS when
//! the server offers it, unverified), `require` (TLS, unverified; with an
//! `sslrootcert`, as libpq, the chain is verified), `verify-ca` (the
//! chain, against `sslrootcert`), `verify-full` (the chain and the host
//! name). `sslrootcert` is a PEM file, or `system` for the system's CAs;
//! without it, libpq's `~/.postgresql/root.crt`.
//!
//! The driver knows only disable/prefer/require and no `sslrootcert`, so
//! both are taken off the URL here and the rest goes to the driver.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<SslMode, TlsError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" | "allow" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => return Err(TlsError::Mode(other.to_owned())),
        })
    }

    /// What the driver is told: whether TLS may, or must, be used.
    pub fn for_driver(self) -> postgres::config::SslMode {
        match self {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        }
    }
}

/// Where the CAs that sign the server's certificate come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    File(PathBuf),
    System,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub mode: SslMode,
    pub roots: Option<Roots>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("sslmode={0} is not a mode: use disable, prefer, require, verify-ca or verify-full")]
    Mode(String),
    #[error(
        "sslmode={0} checks the server's certificate against a CA: give it as sslrootcert=PATH \
         (a PEM file), or sslrootcert=system for the system's CAs"
    )]
    NoRoots(&'static str),
    #[error("reading the CA certificates of sslrootcert={path}")]
    Roots {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("sslrootcert={0} holds no certificate (a PEM file of CA certificates is expected)")]
    EmptyRoots(String),
    #[error("setting up TLS: {0}")]
    Rustls(String),
}

/// Takes libpq's TLS settings off a `postgres://` URL: the URL left for
/// the driver (with `sslmode` set to what it knows), and the settings.
pub fn split(url: &str) -> Result<(String, Settings), TlsError> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut mode = None;
    let mut roots = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sslmode" => mode = Some(SslMode::parse(&decode(v))?),
            "sslrootcert" => {
                let v = decode(v);
                roots = Some(if v == "system" {
                    Roots::System
                } else {
                    Roots::File(PathBuf::from(v))
                });
            }
            _ => rest.push(pair),
        }
    }
    let mode = match (mode, &roots) {
        // libpq: require with a root certificate verifies the chain.
        (Some(SslMode::Require), Some(_)) => SslMode::VerifyCa,
        (Some(m), _) => m,
        (None, _) => SslMode::Prefer,
    };
    if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && roots.is_none() {
        // libpq's default place for them.
        let default = std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".postgresql/root.crt"))
            .filter(|p| p.is_file());
        match default {
            Some(p) => roots = Some(Roots::File(p)),
            None => {
                return Err(TlsError::NoRoots(if mode == SslMode::VerifyCa {
                    "verify-ca"
                } else {
                    "verify-full"
                }));
            }
        }
    }
    rest.push(match mode.for_driver() {
        postgres::config::SslMode::Disable => "sslmode=disable",
        postgres::config::SslMode::Prefer => "sslmode=prefer",
        _ => "sslmode=require",
    });
    Ok((
        format!("{base}?{}", rest.join("&")),
        Settings { mode, roots },
    ))
}

/// `%XX` escapes of a query value (a path may hold spaces or `&`).
fn decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Settings {
    /// The rustls configuration these settings ask for.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        let verifier: Arc<dyn ServerCertVerifier> = match self.mode {
            SslMode::Disable | SslMode::Prefer | SslMode::Require => Arc::new(Unverified(provider)),
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let roots = self.root_store()?;
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| TlsError::Rustls(e.to_string()))?;
                if self.mode == SslMode::VerifyCa {
                    Arc::new(ChainOnly(webpki))
                } else {
                    webpki
                }
            }
        };
        Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth())
    }

    fn root_store(&self) -> Result<RootCertStore, TlsError> {
        let mut store = RootCertStore::empty();
        match &self.roots {
            Some(Roots::File(path)) => {
                let shown = path.display().to_string();
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| TlsError::Roots {
                        path: shown.clone(),
                        source: std::io::Error::other(e.to_string()),
                    })?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| TlsError::Roots {
                        path: shown.clone(),
                        source: std::io::Error::other(e.to_string()),
                    })?;
                let (added, _) = store.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(TlsError::EmptyRoots(shown));
                }
            }
            Some(Roots::System) => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(TlsError::EmptyRoots("system".into()));
                }
            }
            None => return Err(TlsError::NoRoots("verify-ca")),
        }
        Ok(store)
    }
}

/// `require` and `prefer`: encrypted, but whoever answers is trusted (as
/// libpq). The handshake's signatures are still checked.
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain up to a trusted CA, its dates included; not the
/// host name.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Why TLS failed, in words, when a connection error comes from it: the
/// certificate's refusal reason, or a server that does not offer TLS.
pub fn cause(e: &postgres::Error, settings: &Settings, host: &str) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut refused = false;
    while let Some(s) = source {
        refused |= s.to_string().contains("does not support TLS");
        let found = s.downcast_ref::<rustls::Error>().or_else(|| {
            s.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(r) = found {
            return Some(describe(r, settings, host));
        }
        source = s.source();
    }
    refused.then(|| {
        format!(
            "the server does not accept TLS, and sslmode={} requires it (the server needs \
                 ssl=on in its postgresql.conf; sslmode=disable connects without)",
            mode_name(settings.mode)
        )
    })
}

fn mode_name(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    }
}

fn describe(e: &rustls::Error, settings: &Settings, host: &str) -> String {
    let roots = match &settings.roots {
        Some(Roots::File(p)) => format!("sslrootcert={}", p.display()),
        Some(Roots::System) => "the system's CAs (sslrootcert=system)".into(),
        None => "no CA".into(),
    };
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired (renew it on the server)".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet (is this machine's clock right?)".into()
            }
            CertificateError::UnknownIssuer => {
                format!("the server's certificate is not signed by a CA of {roots}")
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "the server's certificate is not valid for the host name {host} \
                     (sslmode=verify-full checks the name; connect by a name the certificate \
                     lists, or use verify-ca)"
                )
            }
            other => format!("the server's certificate was refused: {other:?}"),
        },
        other => format!("the TLS handshake failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_settings_are_taken_off_the_url() {
        let (url, s) = split("postgres://u:p@h:5/d").unwrap();
        assert_eq!(url, "postgres://u:p@h:5/d?sslmode=prefer");
        assert_eq!(s.mode, SslMode::Prefer);
        let (url, s) =
            split("postgres://h/d?user=u&sslmode=verify-full&sslrootcert=/a%20b/ca.pem&x=1")
                .unwrap();
        assert_eq!(url, "postgres://h/d?user=u&x=1&sslmode=require");
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.roots, Some(Roots::File("/a b/ca.pem".into())));
        let (_, s) = split("postgres://h/d?sslmode=require&sslrootcert=system").unwrap();
        assert_eq!((s.mode, s.roots), (SslMode::VerifyCa, Some(Roots::System)));
        let (url, s) = split("postgres://h/d?sslmode=disable").unwrap();
        assert_eq!(url, "postgres://h/d?sslmode=disable");
        assert_eq!(s.mode, SslMode::Disable);
        assert!(matches!(
            split("postgres://h/d?sslmode=bogus"),
            Err(TlsError::Mode(_))
        ));
    }
}
