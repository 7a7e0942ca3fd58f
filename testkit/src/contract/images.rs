//! [`ImageRepository`]: a conditional create, version-checked replaces (and the row that won a
//! lost race), owner pages newest first.

use safelight::ports::{ImageRepository, PageRequest, RepoError, Written};
use safelight::{ImageRecord, Timestamp};

use super::fresh_owner;
use crate::records::image_of;

fn fresh_row() -> ImageRecord {
    image_of(&fresh_owner()).filename("contract.jpg").build()
}

/// A row reads back as it was written; an unknown id reads as `None`.
pub async fn a_created_row_reads_back_as_written<R: ImageRepository>(repo: &R) {
    let r = fresh_row();
    repo.create(&r).await.expect("create");
    assert_eq!(repo.get(r.image_id).await.expect("get"), Some(r));
    assert_eq!(repo.get(fresh_row().image_id).await.expect("get"), None);
}

/// `create` refuses an id that exists (`Conflict`) and leaves the row as it was.
pub async fn create_refuses_an_id_that_exists<R: ImageRepository>(repo: &R) {
    let r = fresh_row();
    repo.create(&r).await.expect("create");
    let mut other = r.clone();
    other.filename = Some("other.jpg".into());
    assert!(matches!(
        repo.create(&other).await,
        Err(RepoError::Conflict)
    ));
    assert_eq!(repo.get(r.image_id).await.expect("get"), Some(r));
}

/// `update` with the version read replaces the row and bumps the version (in the record too).
pub async fn an_update_with_the_version_read_replaces_the_row_and_bumps_it<R: ImageRepository>(
    repo: &R,
) {
    let mut r = fresh_row();
    repo.create(&r).await.expect("create");
    r.filename = Some("renamed.jpg".into());
    repo.update(&mut r).await.expect("update");
    assert_eq!(r.version, 1);
    assert_eq!(repo.get(r.image_id).await.expect("get"), Some(r.clone()));
    r.byte_size = 7;
    repo.update(&mut r).await.expect("second update");
    assert_eq!(r.version, 2);
    assert_eq!(repo.get(r.image_id).await.expect("get"), Some(r));
}

/// `update` with a stale version is a `Conflict`, changes nothing, and leaves the record's version
/// as it was.
pub async fn an_update_with_a_stale_version_is_a_conflict_and_changes_nothing<
    R: ImageRepository,
>(
    repo: &R,
) {
    let mut first = fresh_row();
    repo.create(&first).await.expect("create");
    let mut stale = first.clone();
    first.filename = Some("winner.jpg".into());
    repo.update(&mut first).await.expect("update");
    stale.filename = Some("loser.jpg".into());
    assert!(matches!(
        repo.update(&mut stale).await,
        Err(RepoError::Conflict)
    ));
    assert_eq!(stale.version, 0, "a refused write bumped the version");
    assert_eq!(repo.get(first.image_id).await.expect("get"), Some(first));
}

/// `update` of a row that is not there is a `Conflict` and creates nothing.
pub async fn an_update_of_a_missing_row_is_a_conflict_and_creates_nothing<R: ImageRepository>(
    repo: &R,
) {
    let mut r = fresh_row();
    assert!(matches!(
        repo.update(&mut r).await,
        Err(RepoError::Conflict)
    ));
    assert_eq!(repo.get(r.image_id).await.expect("get"), None);
}

/// `update_or_current`: `Done` (version bumped) with the version read; with a stale one, the row
/// that won; `Lost(None)` once the row is deleted.
pub async fn update_or_current_answers_a_lost_race_with_the_row_that_won<R: ImageRepository>(
    repo: &R,
) {
    let mut r = fresh_row();
    repo.create(&r).await.expect("create");
    let mut stale = r.clone();
    r.filename = Some("winner.jpg".into());
    assert_eq!(
        repo.update_or_current(&mut r).await.expect("write"),
        Written::Done
    );
    assert_eq!(r.version, 1);
    stale.filename = Some("loser.jpg".into());
    assert_eq!(
        repo.update_or_current(&mut stale).await.expect("write"),
        Written::Lost(Some(Box::new(r.clone())))
    );
    assert_eq!(repo.get(r.image_id).await.expect("get"), Some(r.clone()));
    repo.delete(r.image_id).await.expect("delete");
    assert_eq!(
        repo.update_or_current(&mut r).await.expect("write"),
        Written::Lost(None)
    );
    assert_eq!(repo.get(r.image_id).await.expect("get"), None);
}

/// `delete` removes the row; deleting it again is fine.
pub async fn delete_removes_the_row_and_deleting_again_is_fine<R: ImageRepository>(repo: &R) {
    let r = fresh_row();
    repo.create(&r).await.expect("create");
    repo.delete(r.image_id).await.expect("delete");
    assert_eq!(repo.get(r.image_id).await.expect("get"), None);
    repo.delete(r.image_id).await.expect("delete again");
}

/// An owner's pages, followed cursor by cursor, hold each of the owner's rows once, newest
/// first, and none of another owner's; a cursor the repository did not hand out is `BadCursor`.
pub async fn owner_pages_walk_the_owners_rows_newest_first<R: ImageRepository>(repo: &R) {
    let owner = fresh_owner();
    let start = Timestamp::now().plus_secs(-600);
    let mut mine = Vec::new();
    for i in 0..5 {
        let r = image_of(&owner).created(start.plus_secs(i * 10)).build();
        repo.create(&r).await.expect("create");
        mine.push(r.image_id);
    }
    repo.create(&fresh_row())
        .await
        .expect("another owner's row");
    mine.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let page = repo
            .list_by_owner(PageRequest {
                of: &owner,
                limit: 2,
                cursor: cursor.as_deref(),
            })
            .await
            .expect("page");
        assert!(page.items.len() <= 2, "a page longer than its limit");
        seen.extend(page.items.iter().map(|r| r.image_id));
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, mine);
    assert!(matches!(
        repo.list_by_owner(PageRequest {
            of: &owner,
            limit: 2,
            cursor: Some("not-a-cursor"),
        })
        .await,
        Err(RepoError::BadCursor)
    ));
}

/// Every rule of this module as a test of the repository `make` evaluates to.
#[macro_export]
macro_rules! image_repository_contract {
    ($make:expr) => {
        $crate::contract_rules!(
            $make,
            images,
            [
                a_created_row_reads_back_as_written,
                create_refuses_an_id_that_exists,
                an_update_with_the_version_read_replaces_the_row_and_bumps_it,
                an_update_with_a_stale_version_is_a_conflict_and_changes_nothing,
                an_update_of_a_missing_row_is_a_conflict_and_creates_nothing,
                update_or_current_answers_a_lost_race_with_the_row_that_won,
                delete_removes_the_row_and_deleting_again_is_fine,
                owner_pages_walk_the_owners_rows_newest_first,
            ]
        );
    };
}
