//! The port contract: the rules an implementation of a port keeps, whether it is an in-memory
//! fake (`safelight::testing`) or an AWS adapter (`safelight::aws`). Each rule is an async
//! function generic over the port trait that panics when the implementation breaks it; the
//! macros ([`crate::image_repository_contract`], [`crate::control_store_contract`], ...) turn
//! every rule of a port into a `#[tokio::test]` for one implementation. The kit runs them against
//! the fakes (`testkit/tests/contract.rs`), the `contract` suite of `safelight-e2e` against the
//! adapters on the emulator: the two copies of each rule cannot drift apart unnoticed.
//!
//! Every rule works on its own new ids and owners, so it can share a table with anything else;
//! only the breaker rows (one per stage) and the seed of the completed total are global, and the
//! suites give those rules a store of their own.

pub mod control;
pub mod digests;
pub mod images;
pub mod notices;
pub mod rates;

use safelight::OwnerId;

/// An owner no other test uses.
pub fn fresh_owner() -> OwnerId {
    format!(
        "contract-{}",
        safelight::ImageId::new().to_string().to_lowercase()
    )
    .parse()
    .expect("a ulid makes a valid owner id")
}

/// One `#[tokio::test]` per rule of a contract module: `rules!(make, module, [rule, ...])` makes
/// `async fn rule() { module::rule(&make).await }`. `make` is evaluated once per test (it may
/// `.await`).
#[doc(hidden)]
#[macro_export]
macro_rules! contract_rules {
    ($make:expr, $module:ident, [$($rule:ident),* $(,)?]) => {
        $(
            #[tokio::test]
            async fn $rule() {
                let port = $make;
                $crate::contract::$module::$rule(&port).await;
            }
        )*
    };
}
