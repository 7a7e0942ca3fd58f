//! The WebSocket API's one function, for its three routes:
//!
//! - `$connect?token=<jwt>`: verifies the token (see [`token`]) and stores
//!   `connection_id -> owner` until the token's `exp` or 2 h (API Gateway's connection limit),
//!   whichever comes first: a connection row never outlives the token that opened it, so
//!   `notify` stops sending to it and `resume` refuses it once the token has expired. A missing, expired,
//!   forged or foreign token is refused with 401, which refuses the WebSocket handshake. The token
//!   is never logged. An owner who already has `MAX_CONNECTIONS_PER_OWNER` open connections (a
//!   query of the connections table's `by_owner` index, expired rows not counted) is refused with
//!   429 and `Retry-After` (API Gateway passes the status to the client; the local emulator turns
//!   any refusal into 403).
//! - `$disconnect`: removes the connection's row.
//! - `$default` (route selection is `$request.body.action`, and no other route exists):
//!   - `{"action":"ping"}` -> `{"type":"pong"}`;
//!   - `{"action":"resume","since":N}` -> the caller's stored notices with `seq > N`, at most
//!     `RESUME_PAGE_SIZE` of them, and those numbered below N that were stored after notice N
//!     (two stream shards of one owner can store 6 after 7), in `seq` order, then
//!     `{"type":"resumed","since":N,"replayed":k,"last_seq":L}` when that was all, or
//!     `{"type":"resume:more","since":N,"replayed":k,"after":A}` when more may follow: the client
//!     sends `{"action":"resume","since":A}` for the next page. A page fits well inside the
//!     function's 10 s timeout however long the log;
//!   - anything else -> `{"type":"error","code":…,"message":…}`.
//!
//!   Frames go back through `PostToConnection` to the caller's own connection id. A frame can
//!   also arrive live from `notify` while a replay is under way, and a replay may repeat a late
//!   notice the client saw live, so a client ignores an (image, seq) it has already applied.

pub mod token;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::http::HeaderValue;
use safelight::limits::{self, OwnerLimits};
use safelight::notice::CONNECTION_TTL_SECS;
use safelight::ports::{
    Connection, ConnectionPoster, ConnectionRepository, NoticeLog, PostOutcome, RealtimeError,
    ReplayQuery,
};
use safelight::Timestamp;
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;

pub use token::{HttpJwks, JwtVerifier, KeySource, TokenError, TokenVerifier, Verified};

/// Failures of the handler; each becomes a 500 (the socket stays, the client may retry).
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    /// The request is not a WebSocket event this function understands.
    #[error("not a WebSocket route event: {0}")]
    BadEvent(&'static str),
    /// A table or the management API failed.
    #[error(transparent)]
    Realtime(#[from] RealtimeError),
    /// The signing keys could not be fetched.
    #[error(transparent)]
    Keys(TokenError),
}

/// What a client may send on `$default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Ping,
    Resume { since: u64 },
}

#[derive(Debug, Deserialize)]
struct Envelope {
    action: Option<String>,
    since: Option<serde_json::Value>,
}

/// Reads a client frame; the error is the `code` and `message` of the error frame.
fn parse_action(body: &str) -> Result<Action, (&'static str, &'static str)> {
    const USAGE: &str = "send {\"action\":\"ping\"} or {\"action\":\"resume\",\"since\":<seq>}";
    let envelope: Envelope =
        serde_json::from_str(body).map_err(|_| ("bad_message", "frames must be JSON objects"))?;
    match envelope.action.as_deref() {
        Some("ping") => Ok(Action::Ping),
        Some("resume") => envelope
            .since
            .as_ref()
            .and_then(serde_json::Value::as_u64)
            .map(|since| Action::Resume { since })
            .ok_or((
                "bad_resume",
                "resume needs \"since\": the last seq received (0 for everything kept)",
            )),
        _ => Err(("unknown_action", USAGE)),
    }
}

/// The handler with its ports.
#[derive(Debug)]
pub struct Ws<C, N, P, V> {
    connections: C,
    notices: N,
    poster: P,
    verifier: V,
    limits: OwnerLimits,
}

/// A response without a body. API Gateway forwards a `$default` body to the client only when
/// the route has a route response (this API has none), but the local emulator always forwards
/// it: frames go out through `PostToConnection` only, so both behave the same.
fn response(status: i64) -> ApiGatewayProxyResponse {
    let mut r = ApiGatewayProxyResponse::default();
    r.status_code = status;
    r
}

impl<C, N, P, V> Ws<C, N, P, V>
where
    C: ConnectionRepository,
    N: NoticeLog,
    P: ConnectionPoster,
    V: TokenVerifier,
{
    /// A handler on these ports, with the default per-owner limits.
    pub fn new(connections: C, notices: N, poster: P, verifier: V) -> Self {
        Ws {
            connections,
            notices,
            poster,
            verifier,
            limits: OwnerLimits::default(),
        }
    }

    /// The same handler with these per-owner limits (open connections, resume page size).
    #[must_use]
    pub fn with_limits(self, limits: OwnerLimits) -> Self {
        Ws { limits, ..self }
    }

    /// Handles one WebSocket event; never fails (errors become a 500 response and a log line).
    pub async fn handle(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let ctx = &request.request_context;
        let route = ctx.route_key.as_deref().unwrap_or_default();
        let connection_id = ctx.connection_id.as_deref().unwrap_or_default();
        let span = tracing::info_span!("ws", route, connection_id);
        let result = async {
            if connection_id.is_empty() {
                return Err(WsError::BadEvent("no connection id"));
            }
            match route {
                "$connect" => self.connect(request, connection_id).await,
                "$disconnect" => self.disconnect(connection_id).await,
                _ => self.message(request, connection_id).await,
            }
        }
        .instrument(span.clone())
        .await;
        let _entered = span.enter();
        match result {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "websocket route failed");
                response(500)
            }
        }
    }

    async fn connect(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
        connection_id: &str,
    ) -> Result<ApiGatewayProxyResponse, WsError> {
        let Some(token) = request
            .query_string_parameters
            .first("token")
            .filter(|t| !t.is_empty())
        else {
            tracing::info!(reason = "missing token", "connection refused");
            return Ok(response(401));
        };
        let verified = match self.verifier.verify(token).await {
            Ok(verified) => verified,
            Err(TokenError::Refused(reason)) => {
                tracing::info!(reason, "connection refused");
                return Ok(response(401));
            }
            Err(e @ TokenError::KeysUnavailable(_)) => return Err(WsError::Keys(e)),
        };
        let now = Timestamp::now();
        let owner = verified.owner;
        let open = self.connections.for_owner(&owner, now).await?.len();
        if let Some(refusal) = limits::connections_refusal(open, self.limits.max_connections) {
            tracing::info!(owner = %owner, open, "connection refused: too many open connections");
            let mut r = response(429);
            r.headers
                .insert("retry-after", HeaderValue::from(refusal.retry_after_secs()));
            return Ok(r);
        }
        self.connections
            .put(&Connection {
                connection_id: connection_id.to_owned(),
                owner: owner.clone(),
                connected_at: now,
                expires_at: now.plus_secs(CONNECTION_TTL_SECS).min(verified.expires_at),
            })
            .await?;
        tracing::info!(owner = %owner, "connected");
        Ok(response(200))
    }

    async fn disconnect(&self, connection_id: &str) -> Result<ApiGatewayProxyResponse, WsError> {
        self.connections.delete(connection_id).await?;
        tracing::info!("disconnected");
        Ok(response(200))
    }

    async fn message(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
        connection_id: &str,
    ) -> Result<ApiGatewayProxyResponse, WsError> {
        let now = Timestamp::now();
        let Some(connection) = self.connections.get(connection_id, now).await? else {
            // Connected before its row expired or was removed: it has no owner any more.
            self.send_error(
                connection_id,
                "unknown_connection",
                "this connection is not registered; reconnect with a fresh token",
            )
            .await?;
            return Ok(response(200));
        };
        let body = request.body.as_deref().unwrap_or_default();
        let action = match parse_action(body) {
            Ok(action) => action,
            Err((code, message)) => {
                self.send_error(connection_id, code, message).await?;
                return Ok(response(200));
            }
        };
        match action {
            Action::Ping => {
                self.send(connection_id, &json!({"type": "pong"})).await?;
                Ok(response(200))
            }
            Action::Resume { since } => {
                let page = usize::try_from(self.limits.resume_page).unwrap_or(usize::MAX);
                let replay = self
                    .notices
                    .since(&ReplayQuery {
                        owner: &connection.owner,
                        after: since,
                        now,
                        limit: page,
                    })
                    .await?;
                let notices = &replay.notices;
                let last_seq = notices.iter().map(|n| n.seq).fold(since, u64::max);
                for notice in notices {
                    let frame = serde_json::to_value(notice)
                        .map_err(|e| RealtimeError::malformed("a notice frame", e))?;
                    if !self.send(connection_id, &frame).await? {
                        return Ok(response(200));
                    }
                }
                let end = match replay.next {
                    Some(after) => {
                        tracing::info!(since, replayed = notices.len(), after, "resume page sent");
                        json!({"type": "resume:more", "since": since, "replayed": notices.len(), "after": after})
                    }
                    None => {
                        tracing::info!(since, replayed = notices.len(), "resumed");
                        json!({"type": "resumed", "since": since, "replayed": notices.len(), "last_seq": last_seq})
                    }
                };
                self.send(connection_id, &end).await?;
                Ok(response(200))
            }
        }
    }

    async fn send_error(
        &self,
        connection_id: &str,
        code: &str,
        message: &str,
    ) -> Result<bool, WsError> {
        self.send(
            connection_id,
            &json!({"type": "error", "code": code, "message": message}),
        )
        .await
    }

    /// Sends a frame; `false` when the connection is gone (its row is removed then).
    async fn send(&self, connection_id: &str, frame: &serde_json::Value) -> Result<bool, WsError> {
        let payload = frame.to_string();
        match self.poster.post(connection_id, payload.as_bytes()).await? {
            PostOutcome::Delivered => Ok(true),
            PostOutcome::Gone => {
                self.connections.delete(connection_id).await?;
                Ok(false)
            }
        }
    }
}
