//! TLS to PostgreSQL, as libpq's `sslmode` means it, with rustls.
//!
//! A managed database usually requires TLS, and an operator expects the
//! modes they know from `psql`: `disable` (plain TCP), `prefer` (TLS if the
//! server offers it, the certificate not checked: libpq's default),
//! `require` (TLS, the certificate not checked), `verify-ca` (TLS, the
//! certificate signed by a trusted CA) and `verify-full` (that, and issued
//! for the host connected to). Trusted CAs are those of `sslrootcert` (a
//! PEM file) or, without it, the system's.

use std::{fmt, path::PathBuf, str::FromStr, sync::Arc};

use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::{WebPkiSupportedAlgorithms, ring},
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};
use tokio_postgres::config::SslMode as WireSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`, every value but `allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it; the certificate is not checked.
    Prefer,
    /// TLS; the certificate is not checked.
    Require,
    /// TLS; the certificate is signed by a trusted CA.
    VerifyCa,
    /// TLS; the certificate is signed by a trusted CA for the host.
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match input.trim() {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            other => Err(format!(
                "`{other}` is not an sslmode: disable, prefer, require, verify-ca or verify-full"
            )),
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        })
    }
}

impl SslMode {
    /// What tokio-postgres asks the server for.
    pub(super) fn wire(self) -> WireSslMode {
        match self {
            Self::Disable => WireSslMode::Disable,
            Self::Prefer => WireSslMode::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => WireSslMode::Require,
        }
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read or holds no certificate.
    #[error("cannot read the CA certificates in {path}: {reason}")]
    RootCert {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the settings.
    #[error("cannot set up TLS: {0}")]
    Rustls(#[from] Error),
}

/// The connector for `mode`, trusting `root_cert` (or the system's CAs).
pub(super) fn connector(
    mode: SslMode,
    root_cert: Option<&PathBuf>,
) -> Result<MakeRustlsConnect, TlsError> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let config = match mode {
        // Never used to connect (tokio-postgres asks for no TLS), but the
        // pool has one connector type.
        SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = Arc::new(roots(root_cert)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|err| Error::General(err.to_string()))?;
            if mode == SslMode::VerifyFull {
                builder.with_webpki_verifier(webpki).with_no_client_auth()
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyName(webpki)))
                    .with_no_client_auth()
            }
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

/// The CAs in `path`, or the system's.
fn roots(path: Option<&PathBuf>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    match path {
        Some(path) => {
            let failed = |reason: String| TlsError::RootCert {
                path: path.clone(),
                reason,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|err| failed(err.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| failed(err.to_string()))?;
            if certs.is_empty() {
                return Err(failed("no PEM certificate in it".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|err| failed(err.to_string()))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                // A system certificate rustls cannot use is only one less CA.
                let _ = roots.add(cert);
            }
        }
    }
    Ok(roots)
}

/// `require` and `prefer`: the connection is encrypted and the server's
/// handshake signatures checked, but its certificate is taken as it is,
/// as libpq does in those modes.
#[derive(Debug)]
struct Unchecked {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted CA; the name on the
/// certificate is not compared with the host.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(Error::InvalidCertificate(
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
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_libpq_mode_but_allow_parses_and_prints_back() {
        for mode in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
            let parsed: SslMode = mode.parse().expect("a mode");
            assert_eq!(parsed.to_string(), mode);
        }
        let err = "allow".parse::<SslMode>().expect_err("not supported");
        assert!(err.contains("verify-full"), "{err}");
    }

    #[test]
    fn a_missing_ca_file_is_a_clear_error() {
        let path = PathBuf::from("/nonexistent/ca.pem");
        let Err(err) = connector(SslMode::VerifyFull, Some(&path)) else {
            panic!("a missing CA file is refused");
        };
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
