//! The socket seam ([`Transport`], [`Socket`]) and its WebSocket implementation over
//! tokio-tungstenite + rustls (ring provider, webpki roots plus an optional extra CA).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::error::AgentError;

/// A boxed, sendable future (keeps the seams object-safe without an extra crate).
pub(crate) type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Largest message accepted from the relay; anything bigger ends the connection.
pub(crate) const MAX_INBOUND_BYTES: usize = 256 * 1024;

/// What reading the socket produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WsEvent {
    /// A text message.
    Text(String),
    /// The peer closed, with this close code if it sent one.
    Close(Option<u16>),
    /// A ping, pong or binary message: proof of life, nothing to handle.
    Activity,
    /// The connection failed.
    Error(String),
}

/// One open socket. `recv` must be cancel-safe (it is raced against timers).
pub(crate) trait Socket: Send {
    fn send(&mut self, text: String) -> BoxFut<'_, Result<(), String>>;
    /// The next event, or `None` once the stream ended.
    fn recv(&mut self) -> BoxFut<'_, Option<WsEvent>>;
    fn close(&mut self) -> BoxFut<'_, ()>;
}

/// Opens sockets.
pub(crate) trait Transport: Send + Sync {
    fn connect<'a>(&'a self, url: &'a str) -> BoxFut<'a, Result<Box<dyn Socket>, String>>;
}

/// Builds the rustls client config shared by the socket and the HTTP client: the ring
/// provider (installed explicitly), webpki roots and the optional extra CA.
pub(crate) fn tls_config(
    extra_ca_pem: Option<&str>,
) -> Result<Arc<rustls::ClientConfig>, AgentError> {
    let bad = |reason: String| AgentError::Config { reason };
    // Process default too, for any rustls user that asks for it; an error only means one
    // was installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_ca_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| bad(format!("extra_ca_pem: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("extra_ca_pem: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad("extra_ca_pem holds no certificate".into()));
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(format!("tls: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The real transport.
pub(crate) struct WsTransport {
    tls: Arc<rustls::ClientConfig>,
}

impl WsTransport {
    pub(crate) fn new(tls: Arc<rustls::ClientConfig>) -> Self {
        Self { tls }
    }
}

impl Transport for WsTransport {
    fn connect<'a>(&'a self, url: &'a str) -> BoxFut<'a, Result<Box<dyn Socket>, String>> {
        Box::pin(async move {
            // Small buffers: the agent exchanges a few small frames per minute.
            let config = WebSocketConfig::default()
                .read_buffer_size(4 * 1024)
                .write_buffer_size(0)
                .max_message_size(Some(MAX_INBOUND_BYTES))
                .max_frame_size(Some(MAX_INBOUND_BYTES));
            let connector = if url.starts_with("wss://") {
                Connector::Rustls(self.tls.clone())
            } else {
                Connector::Plain
            };
            let (ws, _resp) = tokio_tungstenite::connect_async_tls_with_config(
                url,
                Some(config),
                true,
                Some(connector),
            )
            .await
            .map_err(|e| e.to_string())?;
            Ok(Box::new(WsSocket { ws }) as Box<dyn Socket>)
        })
    }
}

struct WsSocket {
    ws: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Socket for WsSocket {
    fn send(&mut self, text: String) -> BoxFut<'_, Result<(), String>> {
        Box::pin(async move {
            self.ws
                .send(Message::Text(text.into()))
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn recv(&mut self) -> BoxFut<'_, Option<WsEvent>> {
        Box::pin(async move {
            Some(match self.ws.next().await? {
                Ok(Message::Text(t)) => WsEvent::Text(t.as_str().to_owned()),
                Ok(Message::Close(frame)) => WsEvent::Close(frame.map(|f| u16::from(f.code))),
                Ok(_) => WsEvent::Activity,
                Err(e) => WsEvent::Error(e.to_string()),
            })
        })
    }

    fn close(&mut self) -> BoxFut<'_, ()> {
        Box::pin(async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(None)).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_config_accepts_pem_and_refuses_garbage() {
        assert!(tls_config(None).is_ok());
        assert!(tls_config(Some("not a pem")).is_err());
        let bogus = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(tls_config(Some(bogus)).is_err());
    }
}
