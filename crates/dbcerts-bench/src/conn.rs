//! One HTTP/1.1 keep-alive connection, made with hyper's low-level client.

use std::net::SocketAddr;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A complete response: the body is read to its end.
pub(crate) struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A connection to the server; requests go one at a time.
pub(crate) struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    /// Connects to the first of `addrs` that accepts, with `TCP_NODELAY`, and starts the task
    /// that drives the connection (it ends when this value is dropped or the server closes).
    pub async fn connect(addrs: &[SocketAddr]) -> anyhow::Result<Connection> {
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    stream.set_nodelay(true).context("setting TCP_NODELAY")?;
                    let (sender, conn) = http1::handshake(TokioIo::new(stream))
                        .await
                        .context("HTTP/1.1 handshake")?;
                    tokio::spawn(async move {
                        // An error here shows up in the next request on this connection.
                        let _ = conn.await;
                    });
                    return Ok(Connection { sender });
                }
                Err(e) => last = Some(anyhow!(e).context(format!("connecting to {addr}"))),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no address to connect to")))
    }

    /// Waits until the connection can take a request; fails when the server has closed it.
    pub async fn ready(&mut self) -> anyhow::Result<()> {
        self.sender
            .ready()
            .await
            .context("connection closed by the server")
    }

    /// Sends `request` and reads the whole response.
    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> anyhow::Result<Response> {
        let response = self
            .sender
            .send_request(request)
            .await
            .context("sending the request")?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .context("reading the response body")?
            .to_bytes();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}
