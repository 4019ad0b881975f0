//! The admin HTTP listener: HTTP/1.1 over plain TCP, one task per
//! connection, answered by [`super::routes`].

use super::routes::respond;
use super::Health;
use crate::config::BindError;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The admin listener, bound and not yet serving.
pub struct AdminServer {
    listener: TcpListener,
    health: Arc<Health>,
}

impl AdminServer {
    /// Binds `addr`; logs `admin endpoints listening` with the bound address.
    pub async fn bind(addr: SocketAddr, health: Arc<Health>) -> Result<AdminServer, BindError> {
        let bind_error = BindError::maker("--admin-listen", addr);
        let listener = TcpListener::bind(addr).await.map_err(&bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        tracing::info!(addr = %local, "admin endpoints listening");
        Ok(AdminServer { listener, health })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until the task running it is dropped or aborted.
    pub async fn run(self) {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        connections.spawn(serve_connection(stream, peer, self.health.clone()));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "admin: accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, health: Arc<Health>) {
    let service = service_fn(move |request: Request<Incoming>| {
        let response = respond(&health, request.method(), request.uri().path(), peer);
        async move { Ok::<_, Infallible>(response) }
    });
    if let Err(error) = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%peer, %error, "admin: connection ended with an error");
    }
}
