//! The `dbcerts-bench` subcommands: each has an argument struct and a `main` function, called
//! from one arm of the binary's `Command` enum.

pub mod chart;
pub mod crl;
pub mod keygen;
pub mod load;
pub mod seed;
