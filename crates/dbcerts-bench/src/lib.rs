//! `dbcerts-bench`: the project's HTTP load generator for benchmarks.
//!
//! It drives one HTTP/1.1 server on this machine's loopback interface with a fixed number of
//! requests from a fixed number of workers, each on one persistent keep-alive connection, and
//! reports throughput, latency percentiles, the server's memory and the machine it ran on. The
//! same engine serves the `dbcerts-bench load` command and in-process callers:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use dbcerts_bench::{LoadSpec, Method, Target};
//!
//! let spec = LoadSpec {
//!     concurrency: 8,
//!     requests: 10_000,
//!     warmup: 500,
//!     ..LoadSpec::new(Target::NginxStatic, Method::GET, "http://127.0.0.1:8080/cert.pem")
//! };
//! let result = dbcerts_bench::run(&spec).await?;
//! println!("{}", result.summary());
//! # Ok(()) }
//! ```
//!
//! Only loopback targets are accepted (see [`url`]): this tool must never send load anywhere else.

pub mod chart;
pub mod cli;
mod conn;
mod digest;
mod engine;
pub mod machine;
pub mod result;
pub mod rss;
pub mod seed;
pub mod spec;
pub mod stats;
mod token;
pub mod url;

pub use chart::{Series, line_chart};
pub use engine::run;
pub use hyper::Method;
pub use result::{LoadResult, RssKib};
pub use rss::{RssSampler, RssStats, rss_kib};
pub use spec::{Auth, Expect, LoadSpec, Target};
pub use stats::LatencyMs;
pub use token::fetch_bearer_token;
