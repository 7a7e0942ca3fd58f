//! [`NoticeLog`]: sequence numbers handed out once, delivery records claimed once (the first
//! claim wins, later ones get it back with its progress), the replay log in order without the
//! expired notices.

use std::collections::BTreeSet;

use safelight::ports::{Delivery, LogEntry, NoticeLog, Progress, ReplayQuery};
use safelight::{Notice, NoticeType, OwnerId, Timestamp};

use super::fresh_owner;
use crate::records::image_of;

fn notice(owner: &OwnerId, seq: u64) -> Notice {
    Notice::new(NoticeType::ThumbnailComplete, &image_of(owner).build(), seq)
}

/// A time in whole seconds (the tables keep expiry times to the second) `secs` from now.
fn in_secs(secs: i64) -> Timestamp {
    Timestamp::from_unix_millis((Timestamp::now().unix_millis() / 1000 + secs) * 1000)
}

fn delivery(owner: &OwnerId, seq: u64) -> Delivery {
    Delivery {
        owner: owner.clone(),
        notice: notice(owner, seq),
        delivered: BTreeSet::new(),
        done: false,
        expires_at: in_secs(86_400),
    }
}

/// A new owner's first number is 1, each next one is one more; owners count on their own.
pub async fn sequence_numbers_start_at_1_and_rise_by_one_per_owner<N: NoticeLog>(log: &N) {
    let (a, b) = (fresh_owner(), fresh_owner());
    assert_eq!(log.next_seq(&a).await.expect("seq"), 1);
    assert_eq!(log.next_seq(&a).await.expect("seq"), 2);
    assert_eq!(log.next_seq(&b).await.expect("seq"), 1);
    assert_eq!(log.next_seq(&a).await.expect("seq"), 3);
}

/// The first claim of a delivery record stores it; a later claim under the same key gets the
/// stored one back, not its own.
pub async fn the_first_claim_of_a_delivery_record_wins<N: NoticeLog>(log: &N) {
    let owner = fresh_owner();
    let key = format!("contract#{}", safelight::ImageId::new());
    let first = delivery(&owner, 1);
    assert_eq!(log.claim(&key, &first).await.expect("claim"), first);
    let second = delivery(&owner, 2);
    assert_eq!(log.claim(&key, &second).await.expect("claim"), first);
    let other_key = format!("{key}-other");
    assert_eq!(log.claim(&other_key, &second).await.expect("claim"), second);
}

/// Progress recorded on a claimed record is what a later claim gets back.
pub async fn recorded_progress_is_what_a_later_claim_gets<N: NoticeLog>(log: &N) {
    let owner = fresh_owner();
    let key = format!("contract#{}", safelight::ImageId::new());
    let first = delivery(&owner, 1);
    log.claim(&key, &first).await.expect("claim");
    let some = BTreeSet::from(["c1".to_owned()]);
    log.record_progress(
        &key,
        &Progress {
            delivered: &some,
            done: false,
        },
    )
    .await
    .expect("progress");
    let again = log.claim(&key, &delivery(&owner, 2)).await.expect("claim");
    assert_eq!((again.delivered, again.done), (some, false));
    let all = BTreeSet::from(["c1".to_owned(), "c2".to_owned()]);
    log.record_progress(
        &key,
        &Progress {
            delivered: &all,
            done: true,
        },
    )
    .await
    .expect("progress");
    let again = log.claim(&key, &delivery(&owner, 2)).await.expect("claim");
    assert_eq!(again.notice, first.notice);
    assert_eq!((again.delivered, again.done), (all, true));
}

/// A replay holds the owner's notices after the given number, in order, each once (appending a
/// notice again does not add it), without the expired ones or another owner's; its pages,
/// followed, hold them all.
pub async fn a_replay_holds_the_owners_live_notices_in_order_once<N: NoticeLog>(log: &N) {
    let owner = fresh_owner();
    let live = in_secs(3600);
    for seq in [1, 2, 2, 3, 4] {
        log.append(&LogEntry {
            owner: &owner,
            notice: &notice(&owner, seq),
            expires_at: live,
        })
        .await
        .expect("append");
    }
    log.append(&LogEntry {
        owner: &owner,
        notice: &notice(&owner, 5),
        expires_at: in_secs(-3600),
    })
    .await
    .expect("append");
    let other = fresh_owner();
    log.append(&LogEntry {
        owner: &other,
        notice: &notice(&other, 6),
        expires_at: live,
    })
    .await
    .expect("append");
    let now = Timestamp::now();
    let seqs = |notices: &[Notice]| notices.iter().map(|n| n.seq).collect::<Vec<_>>();
    let all = log
        .since(&ReplayQuery {
            owner: &owner,
            after: 0,
            now,
            limit: 10,
        })
        .await
        .expect("replay");
    assert_eq!((seqs(&all.notices), all.next), (vec![1, 2, 3, 4], None));
    let rest = log
        .since(&ReplayQuery {
            owner: &owner,
            after: 2,
            now,
            limit: 10,
        })
        .await
        .expect("replay");
    assert_eq!(seqs(&rest.notices), vec![3, 4]);
    let mut paged = Vec::new();
    let mut after = 0;
    for _ in 0..10 {
        let page = log
            .since(&ReplayQuery {
                owner: &owner,
                after,
                now,
                limit: 2,
            })
            .await
            .expect("replay");
        assert!(page.notices.len() <= 2, "a page longer than its limit");
        paged.extend(seqs(&page.notices));
        match page.next {
            Some(next) => {
                assert!(next > after, "a next page that does not move on");
                after = next;
            }
            None => break,
        }
    }
    assert_eq!(paged, vec![1, 2, 3, 4]);
}

/// Every rule of this module as a test of the log `make` evaluates to.
#[macro_export]
macro_rules! notice_log_contract {
    ($make:expr) => {
        $crate::contract_rules!(
            $make,
            notices,
            [
                sequence_numbers_start_at_1_and_rise_by_one_per_owner,
                the_first_claim_of_a_delivery_record_wins,
                recorded_progress_is_what_a_later_claim_gets,
                a_replay_holds_the_owners_live_notices_in_order_once,
            ]
        );
    };
}
