//! Bounds on what clients can hold open: how many connections at once, from one address and in
//! all, how long a connection may take to send a request's headers, and which connection gives
//! way when every slot is taken.
//!
//! - One address may hold only so many slots: a connection beyond its share is closed as soon
//!   as it is accepted, so one client opening thousands of connections cannot crowd out the
//!   others, who go on being served.
//! - At the overall limit, a new connection is not left waiting behind idle ones: the listener
//!   accepts it and closes the connection that has been idle longest and is not serving a
//!   request (as nginx reuses its keep-alive connections), which then frees its slot. Idle
//!   means no request in flight: a keep-alive connection after its last response, one that
//!   has not sent anything yet, or one still sending a request's headers (idle since its last
//!   byte, so chosen after the quieter ones). A connection mid-request is never closed to make
//!   room; only when every one is, does the new connection wait (holding one descriptor; those
//!   after it wait in the kernel's listen backlog) until a request finishes or a connection
//!   closes.
//! - Idle connections free their slot within the header timeout in any case, which also bounds
//!   a connection between two requests.
//!
//! Activity is tracked per connection ([`Activity`]): the stream records when bytes last came
//! in or went out, and the connection's service counts the requests it is serving, from the
//! dispatch of the request until its response body has been handed to hyper. A connection
//! asked to close ends its reads with end-of-file once no request is in flight, and hyper then
//! closes it as a client that hung up between requests.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::connect_info::Connected;
use axum::http::{Request, Response};
use axum_server::{AddrListener, Address};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::Service;

/// Connection bounds of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once; at the limit the longest-idle one is closed to make room.
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

/// How long the listener waits for a connection it asked to close before asking the next
/// longest-idle one. Closing takes a wake-up of the connection's task: well under this.
const CLOSE_WAIT: Duration = Duration::from_millis(250);

/// How often the listener looks again for an idle connection when every one is mid-request.
const BUSY_RECHECK: Duration = Duration::from_millis(100);

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

/// The peer address of an accepted connection (handlers see it as `ConnectInfo<SocketAddr>`),
/// with the connection's activity record.
#[derive(Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    activity: Option<Arc<Activity>>,
}

impl Peer {
    fn bare(addr: SocketAddr) -> Peer {
        Peer {
            addr,
            activity: None,
        }
    }
}

impl Address for Peer {
    type Stream = SlotStream;
    type Listener = LimitedListener;
}

impl Connected<Peer> for SocketAddr {
    fn connect_info(peer: Peer) -> SocketAddr {
        peer.addr
    }
}

/// What one connection is doing, shared by its stream, its service and the listener.
pub struct Activity {
    epoch: Instant,
    /// Milliseconds after `epoch` of the last bytes received or sent, or of the last response
    /// handed over: how long the connection has been idle is measured from here.
    last_active_ms: AtomicU64,
    /// Requests dispatched to the router whose response body hyper has not finished with.
    in_flight: AtomicUsize,
    /// Set when the listener asks the connection to give its slot up.
    closing: AtomicBool,
    /// The task reading the connection, woken when it is asked to close.
    reader: Mutex<Option<Waker>>,
}

impl Activity {
    fn new(epoch: Instant) -> Activity {
        let activity = Activity {
            epoch,
            last_active_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            reader: Mutex::new(None),
        };
        activity.touch();
        activity
    }

    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_active_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn begin_request(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        RequestGuard(Arc::clone(self))
    }

    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
    }

    /// Whether reads should end: asked to close and no request in flight. A request that
    /// raced the request to close is served first.
    fn should_close(&self) -> bool {
        self.closing.load(Ordering::SeqCst) && self.idle()
    }

    fn ask_to_close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        if let Some(waker) = self.reader.lock().unwrap_or_else(|e| e.into_inner()).take() {
            waker.wake();
        }
    }

    fn remember_reader(&self, waker: &Waker) {
        let mut reader = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        if !reader.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *reader = Some(waker.clone());
        }
    }
}

/// A request being served on a connection; dropped with its response body.
struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        // Idle from now on: touched before the count drops, so the listener never sees the
        // connection idle with the time of an earlier activity.
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.0.should_close() {
            // Asked to close while serving: the reader may be parked; let it see the end.
            if let Some(waker) = self
                .0
                .reader
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
            {
                waker.wake();
            }
        }
    }
}

/// Every open connection's activity, so that the longest-idle one can be found.
struct ConnectionTable {
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
}

impl ConnectionTable {
    fn new() -> ConnectionTable {
        ConnectionTable {
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        }
    }

    fn register(self: &Arc<Self>) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new(self.epoch));
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::clone(&activity));
        Registration {
            table: Arc::clone(self),
            id,
            activity,
        }
    }

    /// Asks the connection idle longest, among those not serving a request and not already
    /// asked, to close. False when there is none.
    fn close_longest_idle(&self) -> bool {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        // Ties (the same millisecond) go to the older connection.
        let victim = open
            .iter()
            .filter(|(_, a)| a.idle() && !a.closing.load(Ordering::SeqCst))
            .min_by_key(|(id, a)| (a.last_active_ms.load(Ordering::Relaxed), **id))
            .map(|(_, a)| a);
        let Some(victim) = victim else {
            return false;
        };
        let idle_ms = self
            .epoch
            .elapsed()
            .as_millis()
            .saturating_sub(u128::from(victim.last_active_ms.load(Ordering::Relaxed)));
        tracing::debug!(idle_ms, "closing the longest-idle connection to make room");
        victim.ask_to_close();
        metrics::counter!("dbcerts_idle_connections_closed_total").increment(1);
        true
    }
}

/// A connection's place in the table, removed when the connection is dropped.
struct Registration {
    table: Arc<ConnectionTable>,
    id: u64,
    activity: Arc<Activity>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.table
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// A TCP listener that keeps connections within the overall limit (closing the longest-idle
/// one to make room) and each address within its share.
pub struct LimitedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    per_address: Arc<AddressCounts>,
    table: Arc<ConnectionTable>,
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
            table: Arc::new(ConnectionTable::new()),
            saturated: AtomicBool::new(false),
        }
    }

    /// A free slot; at the limit, one made by closing the longest-idle connection.
    async fn slot(&self) -> OwnedSemaphorePermit {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            if self.saturated.swap(false, Ordering::Relaxed) {
                tracing::info!("connection slots free again");
            }
            return permit;
        }
        if !self.saturated.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "connection limit reached; closing the longest-idle connections to make room for new ones"
            );
        }
        loop {
            let wait = if self.table.close_longest_idle() {
                CLOSE_WAIT
            } else {
                BUSY_RECHECK
            };
            tokio::select! {
                permit = Arc::clone(&self.slots).acquire_owned() => {
                    return permit.expect("the slot semaphore is never closed");
                }
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

impl AddrListener<SlotStream, Peer> for LimitedListener {
    async fn bind_to(addr: Peer) -> io::Result<LimitedListener> {
        Ok(LimitedListener::new(
            TcpListener::bind(addr.addr).await?,
            ConnectionLimits::default(),
        ))
    }

    async fn accept_stream(&self) -> io::Result<(SlotStream, Peer)> {
        loop {
            let (stream, peer) = self.inner.accept().await?;
            // Over its address's share: dropping the stream closes it.
            let Some(address_slot) = self.per_address.admit(peer.ip()) else {
                continue;
            };
            let slot = self.slot().await;
            let registration = self.table.register();
            let activity = Arc::clone(&registration.activity);
            return Ok((
                SlotStream {
                    stream,
                    registration,
                    _slot: slot,
                    _address_slot: address_slot,
                },
                Peer {
                    addr: peer,
                    activity: Some(activity),
                },
            ));
        }
    }

    fn get_local_addr(&self) -> io::Result<Peer> {
        self.inner.local_addr().map(Peer::bare)
    }
}

/// An accepted connection holding its slots until it is dropped, recording its activity and
/// ending its reads when it is asked to make room.
pub struct SlotStream {
    stream: TcpStream,
    registration: Registration,
    _slot: OwnedSemaphorePermit,
    _address_slot: AddressSlot,
}

impl AsyncRead for SlotStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let activity = &this.registration.activity;
        // Remembered before looking at the flag: a request to close that comes after the
        // look wakes this waker.
        activity.remember_reader(cx.waker());
        if activity.should_close() {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            activity.touch();
        }
        polled
    }
}

impl SlotStream {
    fn wrote(&self, polled: &Poll<io::Result<usize>>) {
        if matches!(polled, Poll::Ready(Ok(n)) if *n > 0) {
            self.registration.activity.touch();
        }
    }
}

impl AsyncWrite for SlotStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.wrote(&polled);
        polled
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

/// Makes each connection's service: the router, seeing the peer address as
/// `ConnectInfo<SocketAddr>`, with the connection's requests counted in its activity record
/// (what `into_make_service_with_connect_info` does, plus the counting).
#[derive(Clone)]
pub struct ConnectionRouter(Router);

impl ConnectionRouter {
    pub fn new(router: Router) -> ConnectionRouter {
        ConnectionRouter(router)
    }
}

impl Service<Peer> for ConnectionRouter {
    type Response = ConnectionService;
    type Error = Infallible;
    type Future = std::future::Ready<Result<ConnectionService, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, peer: Peer) -> Self::Future {
        std::future::ready(Ok(ConnectionService {
            router: self.0.clone(),
            addr: peer.addr,
            activity: peer.activity,
        }))
    }
}

/// The router as one connection's service.
#[derive(Clone)]
pub struct ConnectionService {
    router: Router,
    addr: SocketAddr,
    activity: Option<Arc<Activity>>,
}

type ServiceFuture =
    Pin<Box<dyn Future<Output = Result<Response<CountedBody>, Infallible>> + Send>>;

impl Service<Request<Incoming>> for ConnectionService {
    type Response = Response<CountedBody>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Incoming>) -> ServiceFuture {
        req.extensions_mut().insert(ConnectInfo(self.addr));
        let guard = self.activity.as_ref().map(Activity::begin_request);
        let response = self.router.call(req);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| CountedBody {
                body,
                _guard: guard,
            }))
        })
    }
}

/// A response body that keeps its request counted as in flight until hyper drops it.
pub struct CountedBody {
    body: axum::body::Body,
    _guard: Option<RequestGuard>,
}

impl HttpBody for CountedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn listener(limits: ConnectionLimits) -> (LimitedListener, SocketAddr) {
        let listener =
            LimitedListener::new(TcpListener::bind("127.0.0.1:0").await.unwrap(), limits);
        let addr = listener.get_local_addr().unwrap().addr;
        (listener, addr)
    }

    fn limits(max_connections: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections,
            ..ConnectionLimits::default()
        }
    }

    /// Serves an accepted stream as hyper would between requests: reads until the stream
    /// ends (end-of-file when asked to close), then drops it, which frees its slots.
    fn serve(stream: SlotStream) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut stream = stream;
            let mut buf = [0u8; 64];
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
        })
    }

    async fn closed_by_server(client: &mut TcpStream) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), client.read(&mut byte)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    async fn still_open(client: &mut TcpStream) -> bool {
        let mut byte = [0u8; 1];
        tokio::time::timeout(Duration::from_millis(100), client.read(&mut byte))
            .await
            .is_err()
    }

    #[tokio::test]
    async fn at_the_limit_the_longest_idle_connection_makes_room() {
        let (listener, addr) = listener(limits(3)).await;
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(TcpStream::connect(addr).await.unwrap());
            let (stream, _) = listener.accept_stream().await.unwrap();
            serve(stream);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The oldest connection has been active since: the second is now the longest idle.
        clients[0].write_all(b"x").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _newcomer = TcpStream::connect(addr).await.unwrap();
        let (stream, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept_stream())
            .await
            .expect("the newcomer is accepted once an idle connection has made room")
            .unwrap();
        // Exactly one connection made room: the one idle longest.
        assert!(closed_by_server(&mut clients[1]).await);
        assert!(still_open(&mut clients[0]).await);
        assert!(still_open(&mut clients[2]).await);
        drop(stream);
    }

    #[tokio::test]
    async fn a_connection_mid_request_is_not_closed_to_make_room() {
        let (listener, addr) = listener(limits(2)).await;
        let mut busy_client = TcpStream::connect(addr).await.unwrap();
        let (busy, busy_peer) = listener.accept_stream().await.unwrap();
        serve(busy);
        let request = busy_peer.activity.as_ref().unwrap().begin_request();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut idle_client = TcpStream::connect(addr).await.unwrap();
        let (idle, _) = listener.accept_stream().await.unwrap();
        serve(idle);
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The busy connection is the older one, but it is serving a request.
        let mut third_client = TcpStream::connect(addr).await.unwrap();
        let (third, third_peer) =
            tokio::time::timeout(Duration::from_secs(5), listener.accept_stream())
                .await
                .expect("the idle connection made room")
                .unwrap();
        serve(third);
        assert!(closed_by_server(&mut idle_client).await);
        assert!(still_open(&mut busy_client).await);
        // Every connection busy: a newcomer waits and nothing is closed, until a request ends;
        // then the connection that finished it makes room.
        let third_request = third_peer.activity.as_ref().unwrap().begin_request();
        let _waiting = TcpStream::connect(addr).await.unwrap();
        let accept = listener.accept_stream();
        tokio::pin!(accept);
        assert!(
            tokio::time::timeout(Duration::from_millis(400), &mut accept)
                .await
                .is_err(),
            "accepted while every connection was mid-request"
        );
        assert!(still_open(&mut busy_client).await);
        assert!(still_open(&mut third_client).await);
        drop(request);
        let (fourth, _) = tokio::time::timeout(Duration::from_secs(5), &mut accept)
            .await
            .expect("accepted once a request ended")
            .unwrap();
        assert!(closed_by_server(&mut busy_client).await);
        assert!(still_open(&mut third_client).await);
        drop((third_request, fourth));
    }

    #[tokio::test]
    async fn a_request_racing_the_close_is_served_first() {
        let (listener, addr) = listener(limits(1)).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (mut stream, peer) = listener.accept_stream().await.unwrap();
        let activity = Arc::clone(peer.activity.as_ref().unwrap());
        let request = activity.begin_request();
        activity.ask_to_close();
        // Mid-request, reads go on.
        client.write_all(b"body").await.unwrap();
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"body");
        drop(request);
        // Once it is over, the connection ends.
        assert_eq!(stream.read(&mut buf).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn an_address_over_its_share_is_closed_and_others_still_get_in() {
        let limits = ConnectionLimits {
            max_connections: 10,
            max_connections_per_address: 2,
            ..ConnectionLimits::default()
        };
        let (listener, addr) = listener(limits).await;
        let mut flood = Vec::new();
        for _ in 0..3 {
            flood.push(TcpStream::connect(addr).await.unwrap());
        }
        let first = listener.accept_stream().await.unwrap();
        let second = listener.accept_stream().await.unwrap();
        // The third from 127.0.0.1 is closed on arrival; one from 127.0.0.2 is accepted.
        let other = tokio::net::TcpSocket::new_v4().unwrap();
        other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let _other = other.connect(addr).await.unwrap();
        let (_, peer) = listener.accept_stream().await.unwrap();
        assert_eq!(peer.addr.ip(), "127.0.0.2".parse::<IpAddr>().unwrap());
        assert!(closed_by_server(&mut flood[2]).await);
        // A closed connection gives its address's place back.
        drop(first);
        let _again = TcpStream::connect(addr).await.unwrap();
        let (_, peer) = tokio::time::timeout(Duration::from_secs(5), listener.accept_stream())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(peer.addr.ip(), "127.0.0.1".parse::<IpAddr>().unwrap());
        drop(second);
    }
}
