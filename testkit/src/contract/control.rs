//! [`ControlStore`]: the breaker rows' version-conditional writes and the processing leases
//! (take, duplicate, expiry, abandonment, the out-of-time mark, release by the holder only).
//!
//! The breaker rules write the stage's one breaker row: give them a store of their own.

use safelight::breaker::{Breaker, CircuitState};
use safelight::ports::{
    BreakerWrite, ControlStore, Holder, Lease, LeaseKey, LeaseRequest, LeaseView, RepoError,
};
use safelight::{ImageId, Stage, Timestamp};

const STAGE: Stage = Stage::Thumbnail;

fn holder(message_id: &str, receive: u32) -> Holder<'_> {
    Holder {
        message_id,
        receive,
    }
}

/// The lease of `image` at [`STAGE`].
fn key(image: ImageId) -> LeaseKey {
    LeaseKey {
        stage: STAGE,
        image,
    }
}

/// A fixed "now" and a lease time a minute after it.
fn clock() -> (Timestamp, Timestamp) {
    let now = Timestamp::now();
    (now, now.plus_secs(60))
}

/// What a take of a lease run out under the same message answers.
fn abandoned(attempts: u32, ran_out_of_time: bool) -> Lease {
    Lease::Abandoned {
        attempts,
        ran_out_of_time,
    }
}

/// Receive `receive` of `message` asks for the image's lease at `at`, for a minute.
async fn take_at<C: ControlStore>(
    c: &C,
    image: ImageId,
    message: &str,
    receive: u32,
    at: Timestamp,
) -> Lease {
    c.acquire_lease(&LeaseRequest {
        lease: key(image),
        holder: holder(message, receive),
        until: at.plus_secs(60),
        now: at,
    })
    .await
    .expect("take")
}

/// A new image whose lease the first receive of message `m1` has taken: the image, when, until.
async fn taken<C: ControlStore>(c: &C) -> (ImageId, Timestamp, Timestamp) {
    let image = ImageId::new();
    let (now, until) = clock();
    let took = take_at(c, image, "m1", 1, now).await;
    assert_eq!(took, Lease::Taken);
    (image, now, until)
}

/// The image's lease, which must be held.
async fn held<C: ControlStore>(c: &C, image: ImageId) -> LeaseView {
    c.lease(key(image))
        .await
        .expect("read")
        .expect("the lease is held")
}

fn breaker(times_opened: u64) -> Breaker {
    Breaker {
        state: CircuitState::Open,
        failures: vec![1_000, 2_000],
        attempts: vec![1, 3],
        opened_at: Some(Timestamp::from_unix_millis(3_000)),
        until: Some(Timestamp::from_unix_millis(63_000)),
        times_opened,
        reset_at: None,
        reset_by: None,
    }
}

/// A breaker never written is the closed default at version 0.
pub async fn a_breaker_never_written_is_the_default_at_version_0<C: ControlStore>(c: &C) {
    for stage in [Stage::Thumbnail, Stage::Variant] {
        assert_eq!(
            c.load_breaker(stage).await.expect("load"),
            (Breaker::default(), 0)
        );
    }
}

/// Writes `breaker(times_opened)` over version `version` of `STAGE`'s breaker.
async fn save<C: ControlStore>(c: &C, times_opened: u64, version: u64) -> Result<(), RepoError> {
    c.save_breaker(BreakerWrite {
        stage: STAGE,
        breaker: &breaker(times_opened),
        expected_version: version,
    })
    .await
}

/// A breaker write needs the version it read: the write bumps it, a stale one is a `Conflict`
/// that changes nothing; the stages' rows are separate.
pub async fn a_breaker_write_needs_the_version_it_read<C: ControlStore>(c: &C) {
    save(c, 1, 0).await.expect("first");
    assert_eq!(c.load_breaker(STAGE).await.expect("load"), (breaker(1), 1));
    assert!(matches!(save(c, 2, 0).await, Err(RepoError::Conflict)));
    save(c, 2, 1).await.expect("second");
    assert!(matches!(save(c, 3, 1).await, Err(RepoError::Conflict)));
    assert!(matches!(save(c, 3, 7).await, Err(RepoError::Conflict)));
    assert_eq!(c.load_breaker(STAGE).await.expect("load"), (breaker(2), 2));
    assert_eq!(
        c.load_breaker(Stage::Variant).await.expect("load"),
        (Breaker::default(), 0)
    );
}

/// A free lease is taken, and reads back as its taker's: the receive, the time, one take.
pub async fn a_free_lease_is_taken_and_reads_back_as_its_holders<C: ControlStore>(c: &C) {
    let image = ImageId::new();
    let (now, until) = clock();
    assert_eq!(c.lease(key(image)).await.expect("read"), None);
    assert_eq!(take_at(c, image, "m1", 1, now).await, Lease::Taken);
    assert_eq!(
        c.lease(key(image)).await.expect("read"),
        Some(LeaseView {
            holder: "m1".into(),
            receive: 1,
            until,
            attempts: 1,
            ran_out_of_time: false,
        })
    );
    assert_eq!(
        c.lease(LeaseKey {
            stage: Stage::Variant,
            image,
        })
        .await
        .expect("read"),
        None
    );
}

/// A live lease (its time not run out, up to and including its last millisecond) is not taken by
/// another message, and stays its holder's.
pub async fn a_live_lease_is_held_elsewhere_for_another_message<C: ControlStore>(c: &C) {
    let (image, now, until) = taken(c).await;
    let before = c.lease(key(image)).await.expect("read");
    for at in [now, until] {
        assert_eq!(take_at(c, image, "m2", 1, at).await, Lease::HeldElsewhere);
    }
    assert_eq!(c.lease(key(image)).await.expect("read"), before);
}

/// A live lease asked for again by its own message (a duplicate delivery) is `Running` until its
/// time, and not taken.
pub async fn a_live_lease_asked_for_by_its_own_message_is_running<C: ControlStore>(c: &C) {
    let (image, now, until) = taken(c).await;
    let before = c.lease(key(image)).await.expect("read");
    assert_eq!(
        take_at(c, image, "m1", 2, now).await,
        Lease::Running { until }
    );
    assert_eq!(c.lease(key(image)).await.expect("read"), before);
}

/// A lease whose time has run out is taken by another message, and the take is counted.
pub async fn a_lease_run_out_is_taken_by_another_message_and_counted<C: ControlStore>(c: &C) {
    let (image, _, until) = taken(c).await;
    let later = until.plus_secs(1);
    let next_until = later.plus_secs(60);
    assert_eq!(take_at(c, image, "m2", 3, later).await, Lease::Taken);
    assert_eq!(
        c.lease(key(image)).await.expect("read"),
        Some(LeaseView {
            holder: "m2".into(),
            receive: 3,
            until: next_until,
            attempts: 2,
            ran_out_of_time: false,
        })
    );
}

/// A lease run out under an earlier receive of the same message is `Abandoned`, with the takes
/// since its last release; the new receive holds it.
pub async fn a_lease_run_out_under_its_own_message_is_abandoned<C: ControlStore>(c: &C) {
    let (image, _, until) = taken(c).await;
    let second = until.plus_secs(1);
    assert_eq!(
        take_at(c, image, "m1", 2, second).await,
        abandoned(1, false)
    );
    let third = second.plus_secs(61);
    assert_eq!(take_at(c, image, "m1", 3, third).await, abandoned(2, false));
    let view = held(c, image).await;
    assert_eq!((view.receive, view.attempts), (3, 3));
}

/// Only the receive holding the lease marks it out of time; the next take reports the mark and
/// clears it.
pub async fn only_the_holding_receive_marks_the_lease_out_of_time<C: ControlStore>(c: &C) {
    let (image, _, until) = taken(c).await;
    for other in [holder("m1", 2), holder("m2", 1)] {
        c.mark_out_of_time(key(image), &other).await.expect("mark");
        let view = held(c, image).await;
        assert!(
            !view.ran_out_of_time,
            "{other:?} marked a lease it does not hold"
        );
    }
    c.mark_out_of_time(key(image), &holder("m1", 1))
        .await
        .expect("mark");
    let view = held(c, image).await;
    assert!(view.ran_out_of_time);
    let later = until.plus_secs(1);
    assert_eq!(take_at(c, image, "m1", 2, later).await, abandoned(1, true));
    let view = held(c, image).await;
    assert!(!view.ran_out_of_time, "the new take kept the old mark");
}

/// Only the receive holding the lease releases it; after a release the lease is free and its
/// takes are counted from one again.
pub async fn only_the_holding_receive_releases_the_lease<C: ControlStore>(c: &C) {
    let (image, now, _) = taken(c).await;
    for other in [holder("m1", 2), holder("m2", 1)] {
        c.release_lease(key(image), &other).await.expect("release");
        assert!(
            c.lease(key(image)).await.expect("read").is_some(),
            "{other:?} released a lease it does not hold"
        );
    }
    c.release_lease(key(image), &holder("m1", 1))
        .await
        .expect("release");
    assert_eq!(c.lease(key(image)).await.expect("read"), None);
    assert_eq!(take_at(c, image, "m1", 2, now).await, Lease::Taken);
    let view = held(c, image).await;
    assert_eq!(view.attempts, 1);
}

/// Marking or releasing a lease nobody holds is fine and creates nothing.
pub async fn marking_or_releasing_a_missing_lease_is_a_no_op<C: ControlStore>(c: &C) {
    let image = ImageId::new();
    c.mark_out_of_time(key(image), &holder("m1", 1))
        .await
        .expect("mark");
    c.release_lease(key(image), &holder("m1", 1))
        .await
        .expect("release");
    assert_eq!(c.lease(key(image)).await.expect("read"), None);
}

/// The breaker rules as tests of the store `make` evaluates to (a store of their own: they write
/// the stages' breaker rows).
#[macro_export]
macro_rules! breaker_contract {
    ($make:expr) => {
        $crate::contract_rules!(
            $make,
            control,
            [
                a_breaker_never_written_is_the_default_at_version_0,
                a_breaker_write_needs_the_version_it_read,
            ]
        );
    };
}

/// The lease rules as tests of the store `make` evaluates to.
#[macro_export]
macro_rules! lease_contract {
    ($make:expr) => {
        $crate::contract_rules!(
            $make,
            control,
            [
                a_free_lease_is_taken_and_reads_back_as_its_holders,
                a_live_lease_is_held_elsewhere_for_another_message,
                a_live_lease_asked_for_by_its_own_message_is_running,
                a_lease_run_out_is_taken_by_another_message_and_counted,
                a_lease_run_out_under_its_own_message_is_abandoned,
                only_the_holding_receive_marks_the_lease_out_of_time,
                only_the_holding_receive_releases_the_lease,
                marking_or_releasing_a_missing_lease_is_a_no_op,
            ]
        );
    };
}
