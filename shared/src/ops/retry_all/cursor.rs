//! The cursor a caller passes back to continue a run: where the run is, base64url JSON.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::RetryAllError;
use crate::domain::{Stage, Timestamp};

/// Where a run is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Cursor {
    /// When the run started: rows changed after it are not this run's business.
    pub(super) started_at: Timestamp,
    /// The DLQ being drained, or `None` for the failed-rows phase.
    pub(super) dlq: Option<Stage>,
    /// Letters of that DLQ this run left in it, hidden for [`SKIP_HIDE`] (skipped).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) left_hidden: u64,
    /// The failed-rows phase's page cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) rows: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Cursor {
    pub(super) fn encode(&self) -> Option<String> {
        serde_json::to_vec(self).ok().map(|j| B64URL.encode(j))
    }

    pub(super) fn decode(text: &str) -> Result<Cursor, RetryAllError> {
        let json = B64URL.decode(text).map_err(|_| RetryAllError::BadCursor)?;
        serde_json::from_slice(&json).map_err(|_| RetryAllError::BadCursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let c = Cursor {
            started_at: Timestamp::from_unix_millis(1_800_000_000_000),
            dlq: Some(Stage::Variant),
            left_hidden: 3,
            rows: None,
        };
        let text = c.encode().unwrap();
        assert_eq!(Cursor::decode(&text).unwrap(), c);
        assert!(matches!(
            Cursor::decode("not a cursor!"),
            Err(RetryAllError::BadCursor)
        ));
        assert!(matches!(
            Cursor::decode(&B64URL.encode(b"{\"x\":1}")),
            Err(RetryAllError::BadCursor)
        ));
    }
}
