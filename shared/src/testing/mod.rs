//! In-memory fakes of the ports, for handler tests (feature `testing`). They keep the semantics
//! handlers rely on: not-found, conditional create, version-checked update, newest-first paging.
//! They hold no failure switch of their own: a test that needs a port to fail wraps the fake in
//! the fault decorator, `faults::Faulty<MemoryStore, faults::Switch>` (as the local stack wraps the
//! AWS adapters), and turns the switch on.
//! Each fake is a handle, like an SDK client: its clones share one state, so a test keeps a
//! clone of each port it inspects and hands another to the code under test (production types
//! need no accessor for tests).
//! Also [`image`], the builder of image rows every suite uses (re-exported by `testkit`), and
//! the engine's generator of the decode-budget sample ([`png_rgba16_one_colour`]), for the
//! pipeline suite, the simulation and `cargo run -p safelight-e2e --bin bomb`.

use crate::breaker::Breaker;
use crate::domain::Notice;
use crate::domain::Status;
use crate::domain::{ImageId, ImageRecord, ObjectKey, OwnerId, RetryMessage, Stage, Timestamp};
use crate::ports::{
    Connection, ConnectionPoster, ConnectionRepository, Delivery, NoticeLog, PostOutcome,
    RealtimeError,
};
use crate::ports::{
    ControlStore, Holder, ImageRepository, JobQueue, Lease, LeaseKey, LeaseRequest, LeaseView,
    ObjectMeta, ObjectStore, Page, PresignedPost, PresignedRequest, QueueError, RepoError,
    StoreError, StoredObject, UploadConstraints,
};
use crate::ports::{
    DeadLetter, DeadLetterReceive, MinuteCount, Outcome, QueueAdmin, QueueDepth, Receipt, Requeue,
    StatusIndex, ThroughputLog,
};
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

mod control;
mod images;
mod queues;
mod realtime;
mod records;
mod store;

pub use crate::engine::samples::png_rgba16_one_colour;
pub use control::*;
pub use images::*;
pub use queues::*;
pub use realtime::*;
pub use records::{image, image_of, ImageBuilder};
pub use store::*;
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
