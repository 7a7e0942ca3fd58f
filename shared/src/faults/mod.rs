//! Fault injection, compiled only with the `faults` feature (local builds, tests, the
//! simulation; never the Lambda zips `make package` builds, which check for [`MARKER`]).
//!
//! [`Faulty`] is a decorator around any port: before a call reaches the port it asks its
//! [`Injector`] whether to go on, and answers with the port's own error kind when told to fail
//! (an injected outage is the port's "unavailable" error, an injected refusal its "refused"
//! error, so the processing code classifies it exactly as a real one). The adapters and the
//! in-memory fakes hold no test hook; wiring decides what to wrap (`aws::faults` for the
//! functions, the tests and the simulation for themselves).
//!
//! Injectors: [`Faults`] (`SAFELIGHT_FAULTS`, rates per operation, scopes, refusals and the
//! abort crash point), [`Switch`] (on/off, for handler tests) and the simulation's own (latency,
//! kills and outages on a virtual clock).

mod decorator;
mod spec;
mod switch;

use std::future::Future;

pub use decorator::Faulty;
pub use spec::{FaultSpecError, Faults};
pub use switch::Switch;

/// A text only this module puts in a binary. `make package` (`infra/release.py`) refuses a
/// Lambda zip whose bootstrap contains it, and shows it present in a build with the feature.
pub const MARKER: &str = "safelight-fault-injection-compiled-in";

/// The port a call goes to: one per port trait of `crate::ports`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Port {
    /// `ObjectStore`.
    ObjectStore,
    /// `OriginalsSource`.
    OriginalsSource,
    /// `ImageRepository`.
    ImageRepository,
    /// `AwaitingUploads`.
    AwaitingUploads,
    /// `RateCounter`.
    RateCounter,
    /// `StatusIndex`.
    StatusIndex,
    /// `BackfillRows`.
    BackfillRows,
    /// `JobQueue`.
    JobQueue,
    /// `QueueAdmin`.
    QueueAdmin,
    /// `ControlStore`.
    ControlStore,
    /// `ThroughputLog`.
    ThroughputLog,
    /// `MarkerStore`.
    MarkerStore,
    /// `ConnectionRepository`.
    ConnectionRepository,
    /// `NoticeLog`.
    NoticeLog,
    /// `ConnectionPoster`.
    ConnectionPoster,
    /// `DigestIndex`.
    DigestIndex,
}

/// One call through a decorated port.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The port.
    pub port: Port,
    /// The port method (`get`, `update`...); `claim_read` is a `DigestIndex::claim` that found
    /// the digest held and read its holder.
    pub method: &'static str,
    /// The object key, for object-store calls.
    pub key: Option<&'a str>,
}

/// An injected failure: the port reports it as its "unavailable" error, or as its "refused"
/// error (where it has one) when `refused`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct InjectedFault {
    /// What the error says (`injected fault in s3_get`).
    pub message: String,
    /// A refusal (access denied) rather than an outage.
    pub refused: bool,
}

/// Decides, before each call of a decorated port, whether it goes on.
pub trait Injector: Send + Sync {
    /// `Ok` to make the call, or the fault to answer with instead. May wait, and may never
    /// return (a simulated process kill) or abort the process (a crash point).
    fn enter(&self, call: Call<'_>) -> impl Future<Output = Result<(), InjectedFault>> + Send;
}
