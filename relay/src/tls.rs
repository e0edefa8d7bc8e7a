//! TLS with rustls (ring provider) when a certificate is configured.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// Builds an acceptor from PEM files. Errors name the file, never its contents.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = {
        let data = std::fs::read(cert).map_err(|e| format!("reading {}: {e}", cert.display()))?;
        rustls_pemfile::certs(&mut data.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("parsing {}: {e}", cert.display()))?
    };
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", cert.display()));
    }
    let key: PrivateKeyDer<'static> = {
        let data = std::fs::read(key).map_err(|e| format!("reading {}: {e}", key.display()))?;
        rustls_pemfile::private_key(&mut data.as_slice())
            .map_err(|e| format!("parsing {}: {e}", key.display()))?
            .ok_or_else(|| format!("{} holds no private key", key.display()))?
    };
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
