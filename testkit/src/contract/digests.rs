//! [`DigestIndex`]: a claim is a conditional write (the first image keeps it), moved only from the
//! image that holds it.

use safelight::ports::{DigestClaim, DigestIndex};
use safelight::{ImageId, OwnerId};

use super::fresh_owner;

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const OTHER_SHA: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

fn claim<'a>(owner: &'a OwnerId, sha256: &'a str, image: ImageId) -> DigestClaim<'a> {
    DigestClaim {
        owner,
        sha256,
        image,
    }
}

/// The first claim of an owner's digest is made; every later one answers the image that holds
/// it. Other owners and other digests are claims of their own.
pub async fn the_first_claim_of_a_digest_wins<D: DigestIndex>(d: &D) {
    let owner = fresh_owner();
    let (first, second) = (ImageId::new(), ImageId::new());
    assert_eq!(
        d.claim(&claim(&owner, SHA, first)).await.expect("claim"),
        None
    );
    assert_eq!(
        d.claim(&claim(&owner, SHA, second)).await.expect("claim"),
        Some(first)
    );
    assert_eq!(
        d.claim(&claim(&owner, SHA, first)).await.expect("claim"),
        Some(first)
    );
    assert_eq!(
        d.claim(&claim(&fresh_owner(), SHA, second))
            .await
            .expect("claim"),
        None
    );
    assert_eq!(
        d.claim(&claim(&owner, OTHER_SHA, second))
            .await
            .expect("claim"),
        None
    );
}

/// A claim moves only from the image that holds it; a digest nobody claimed is not moved (nor
/// claimed).
pub async fn a_claim_moves_only_from_the_image_that_holds_it<D: DigestIndex>(d: &D) {
    let owner = fresh_owner();
    let (first, second, third) = (ImageId::new(), ImageId::new(), ImageId::new());
    d.claim(&claim(&owner, SHA, first)).await.expect("claim");
    assert!(!d
        .reclaim(&claim(&owner, SHA, third), second)
        .await
        .expect("reclaim"));
    assert_eq!(
        d.claim(&claim(&owner, SHA, third)).await.expect("claim"),
        Some(first)
    );
    assert!(d
        .reclaim(&claim(&owner, SHA, second), first)
        .await
        .expect("reclaim"));
    assert_eq!(
        d.claim(&claim(&owner, SHA, third)).await.expect("claim"),
        Some(second)
    );
    assert!(!d
        .reclaim(&claim(&owner, SHA, third), first)
        .await
        .expect("reclaim"));
    assert!(!d
        .reclaim(&claim(&owner, OTHER_SHA, third), first)
        .await
        .expect("reclaim"));
    assert_eq!(
        d.claim(&claim(&owner, OTHER_SHA, second))
            .await
            .expect("claim"),
        None
    );
}

/// Every rule of this module as a test of the index `make` evaluates to.
#[macro_export]
macro_rules! digest_index_contract {
    ($make:expr) => {
        $crate::contract_rules!(
            $make,
            digests,
            [
                the_first_claim_of_a_digest_wins,
                a_claim_moves_only_from_the_image_that_holds_it,
            ]
        );
    };
}
