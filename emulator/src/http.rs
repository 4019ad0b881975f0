//! What the emulated cloud's HTTP endpoints share (the managed-identity
//! endpoint, the AWS container-credentials endpoint, the GCP metadata
//! server): a listener whose task serves each connection with hyper and
//! answers each request with a plain function of the endpoint's state. It
//! stops when dropped.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Answers one request from the endpoint's state and the peer's address.
pub(crate) type Respond<S> = fn(&S, &Request<Incoming>, SocketAddr) -> Response<Full<Bytes>>;

/// A bound endpoint and the task serving it.
#[derive(Debug)]
pub(crate) struct Listening {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Listening {
    /// Binds `listen` (port 0 picks a free one) and answers every request
    /// with `respond`; `what` names the endpoint in errors and logs.
    pub async fn start<S: Send + Sync + 'static>(
        listen: SocketAddr,
        what: &'static str,
        shared: Arc<S>,
        respond: Respond<S>,
    ) -> std::io::Result<Listening> {
        let listener = TcpListener::bind(listen).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("binding the {what} endpoint to {listen}: {e}"),
            )
        })?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(crate::serve_each(listener, what, move |stream, peer| {
            serve_connection(stream, peer, shared.clone(), respond, what)
        }));
        Ok(Listening { addr, task })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving: the listener and every open connection close.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_connection<S>(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<S>,
    respond: Respond<S>,
    what: &'static str,
) {
    let service = service_fn(move |request: Request<Incoming>| {
        let response = respond(&shared, &request, peer);
        async move { Ok::<_, Infallible>(response) }
    });
    if let Err(error) = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%peer, %error, "{what}: connection ended with an error");
    }
}
