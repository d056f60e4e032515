//! Bounds on what clients can hold open: how many connections at once, from one address and in
//! all, and how long a connection may take to send a request's headers.
//!
//! - At the overall limit the server stops accepting: further connections wait in the kernel's
//!   listen backlog (beyond it, the client retries its SYN) until a connection closes, so file
//!   descriptors and per-connection memory stay bounded however many clients connect.
//! - One address may hold only so many of those slots: a connection beyond its share is closed
//!   as soon as it is accepted, so one client opening thousands of connections cannot crowd
//!   out the others, who go on being served.
//! - Idle connections free their slot within the header timeout, which also bounds a
//!   connection between two requests, so clients that connect and say nothing hold a slot for
//!   no longer than that.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum_server::{AddrListener, Address};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connection bounds of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Connections open at once from one IP address; more are closed on arrival.
    pub max_connections_per_address: usize,
    /// The longest a client may take to send a request's headers, counted from when the
    /// connection is ready for a request: so also the longest a connection may sit idle.
    pub header_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 1024,
            max_connections_per_address: 256,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// File descriptors kept back from the connection limit: the database pool, the listener,
/// log and key files, and headroom.
const RESERVED_FDS: u64 = 128;

impl ConnectionLimits {
    /// Raises this process's open-file limit as far as the hard limit allows for
    /// `max_connections` connections, and lowers `max_connections` if even that is not
    /// enough, so that accepting never runs the process out of descriptors for its database.
    pub fn fit_to_open_file_limit(mut self) -> ConnectionLimits {
        let wanted = self.max_connections as u64 + RESERVED_FDS;
        let available = match rlimit::increase_nofile_limit(wanted) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "could not read or raise the open-file limit");
                return self;
            }
        };
        if available < wanted {
            let fitted = available.saturating_sub(RESERVED_FDS).max(1) as usize;
            tracing::warn!(
                configured = self.max_connections,
                open_file_limit = available,
                max_connections = fitted,
                "the open-file limit is too low for max_connections; serving fewer at once"
            );
            self.max_connections = fitted;
        }
        self
    }
}

/// The peer address of an accepted connection; handlers see it as `ConnectInfo<SocketAddr>`.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Address for Peer {
    type Stream = SlotStream;
    type Listener = LimitedListener;
}

impl Connected<Peer> for SocketAddr {
    fn connect_info(peer: Peer) -> SocketAddr {
        peer.0
    }
}

/// A TCP listener that accepts only while a connection slot is free, and keeps connections
/// from one address within that address's share.
pub struct LimitedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    per_address: Arc<AddressCounts>,
    /// Set while the limit is reached, so that reaching it is logged once per episode.
    saturated: AtomicBool,
}

/// Open connections per peer address.
struct AddressCounts {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
    /// Set after a refusal is logged; cleared when an address is next admitted, so a flood is
    /// logged once rather than per connection.
    refusing: AtomicBool,
}

impl AddressCounts {
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.limit {
            drop(open);
            if !self.refusing.swap(true, Ordering::Relaxed) {
                tracing::warn!(%ip, limit = self.limit, "an address reached its connection limit; closing its further connections");
            }
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            counts: Arc::clone(self),
            ip,
        })
    }
}

/// One connection's place in its address's count.
struct AddressSlot {
    counts: Arc<AddressCounts>,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
        self.counts.refusing.store(false, Ordering::Relaxed);
    }
}

impl LimitedListener {
    pub fn new(inner: TcpListener, limits: ConnectionLimits) -> LimitedListener {
        LimitedListener {
            inner,
            slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            per_address: Arc::new(AddressCounts {
                limit: limits.max_connections_per_address.max(1),
                open: Mutex::new(HashMap::new()),
                refusing: AtomicBool::new(false),
            }),
            saturated: AtomicBool::new(false),
        }
    }

    async fn slot(&self) -> OwnedSemaphorePermit {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            if self.saturated.swap(false, Ordering::Relaxed) {
                tracing::info!("connection slots free again; accepting");
            }
            return permit;
        }
        if !self.saturated.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "connection limit reached; new connections wait in the listen backlog until one closes"
            );
        }
        Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("the slot semaphore is never closed")
    }
}

impl AddrListener<SlotStream, Peer> for LimitedListener {
    async fn bind_to(addr: Peer) -> io::Result<LimitedListener> {
        Ok(LimitedListener::new(
            TcpListener::bind(addr.0).await?,
            ConnectionLimits::default(),
        ))
    }

    async fn accept_stream(&self) -> io::Result<(SlotStream, Peer)> {
        let slot = self.slot().await;
        loop {
            let (stream, peer) = self.inner.accept().await?;
            // Over its address's share: dropping the stream closes it, and the slot stays
            // free for the next connection.
            if let Some(address_slot) = self.per_address.admit(peer.ip()) {
                return Ok((
                    SlotStream {
                        stream,
                        _slot: slot,
                        _address_slot: address_slot,
                    },
                    Peer(peer),
                ));
            }
        }
    }

    fn get_local_addr(&self) -> io::Result<Peer> {
        self.inner.local_addr().map(Peer)
    }
}

/// An accepted connection holding its slots until it is dropped.
pub struct SlotStream {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    _address_slot: AddressSlot,
}

impl AsyncRead for SlotStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SlotStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepts_only_while_a_slot_is_free() {
        let limits = ConnectionLimits {
            max_connections: 2,
            ..ConnectionLimits::default()
        };
        let listener =
            LimitedListener::new(TcpListener::bind("127.0.0.1:0").await.unwrap(), limits);
        let addr = listener.get_local_addr().unwrap().0;
        let clients: Vec<_> = futures_connect(addr, 3).await;
        let first = listener.accept_stream().await.unwrap();
        let second = listener.accept_stream().await.unwrap();
        // The third connection is in the backlog; accepting it waits for a slot.
        let third = tokio::time::timeout(Duration::from_millis(200), listener.accept_stream());
        assert!(third.await.is_err(), "accepted beyond the limit");
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), listener.accept_stream())
            .await
            .expect("a freed slot lets the waiting connection in")
            .unwrap();
        drop((second, third, clients));
    }

    #[tokio::test]
    async fn an_address_over_its_share_is_closed_and_others_still_get_in() {
        let limits = ConnectionLimits {
            max_connections: 10,
            max_connections_per_address: 2,
            ..ConnectionLimits::default()
        };
        let listener =
            LimitedListener::new(TcpListener::bind("127.0.0.1:0").await.unwrap(), limits);
        let addr = listener.get_local_addr().unwrap().0;
        let mut flood = futures_connect(addr, 3).await;
        let first = listener.accept_stream().await.unwrap();
        let second = listener.accept_stream().await.unwrap();
        // The third from 127.0.0.1 is closed on arrival; one from 127.0.0.2 is accepted.
        let other = tokio::net::TcpSocket::new_v4().unwrap();
        other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let _other = other.connect(addr).await.unwrap();
        let (_, peer) = listener.accept_stream().await.unwrap();
        assert_eq!(peer.0.ip(), "127.0.0.2".parse::<IpAddr>().unwrap());
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(&mut flood[2], &mut byte),
        )
        .await
        .expect("the refused connection is closed");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        // A closed connection gives its address's place back.
        drop(first);
        let _again = TcpStream::connect(addr).await.unwrap();
        let (_, peer) = tokio::time::timeout(Duration::from_secs(5), listener.accept_stream())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(peer.0.ip(), "127.0.0.1".parse::<IpAddr>().unwrap());
        drop(second);
    }

    async fn futures_connect(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(TcpStream::connect(addr).await.unwrap());
        }
        out
    }
}
