//! The domain: identifiers, content types (the engine's, re-exported), object keys, identity and
//! the status model.
//! No AWS types here.

pub mod identity;
pub mod ids;
pub mod job;
pub mod link;
pub mod migration;
pub mod notice;
pub mod record;
pub mod status;
pub mod time;

pub use identity::{Identity, IdentityError, DEFAULT_ADMIN_SCOPE};
pub use ids::{IdError, ImageId, ObjectKey, OwnerId};
pub use job::{Job, JobError, Origin, RetryMessage};
pub use link::LinkWindow;
pub use migration::{BackfillCounts, LegacyRow, Marker, RunState};
pub use notice::{Notice, NoticeType, StatusSnapshot};
pub use record::{Derivative, ImageRecord, NewImage, NotFailed, StageResult};
pub use safelight_engine::content_type::{ContentType, TypeMismatch, UnsupportedContentType};
pub use status::{ErrorKind, Stage, Status, TransitionError, UploadState};
pub use time::Timestamp;
