//! The control table in memory: breakers, leases, digests, counters, markers, rate windows.

use super::*;
use crate::ports::{BreakerWrite, DigestClaim};

/// The owners' digest index in memory, with the adapter's conditional writes.
#[derive(Debug, Default, Clone)]
pub struct MemoryDigests {
    claims: Arc<Mutex<BTreeMap<(OwnerId, String), ImageId>>>,
}

impl MemoryDigests {
    /// The image holding `sha256` of `owner`, if any.
    pub fn holder(&self, owner: &OwnerId, sha256: &str) -> Option<ImageId> {
        lock(&self.claims)
            .get(&(owner.clone(), sha256.to_owned()))
            .copied()
    }
}

impl crate::ports::DigestIndex for MemoryDigests {
    async fn claim(&self, claim: &DigestClaim<'_>) -> Result<Option<ImageId>, RepoError> {
        let mut claims = lock(&self.claims);
        let slot = claims.entry((claim.owner.clone(), claim.sha256.to_owned()));
        match slot {
            std::collections::btree_map::Entry::Occupied(held) => Ok(Some(*held.get())),
            std::collections::btree_map::Entry::Vacant(free) => {
                free.insert(claim.image);
                Ok(None)
            }
        }
    }

    async fn reclaim(&self, claim: &DigestClaim<'_>, from: ImageId) -> Result<bool, RepoError> {
        let mut claims = lock(&self.claims);
        match claims.get_mut(&(claim.owner.clone(), claim.sha256.to_owned())) {
            Some(held) if *held == from => {
                *held = claim.image;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// The control table in memory: breakers with versions, and leases.
#[derive(Debug, Default, Clone)]
pub struct MemoryControl {
    breakers: Arc<Mutex<BTreeMap<Stage, (Breaker, u64)>>>,
    leases: Arc<Mutex<BTreeMap<LeaseKey, LeaseView>>>,
}

impl MemoryControl {
    /// A stage's breaker as stored.
    pub fn breaker(&self, stage: Stage) -> Breaker {
        lock(&self.breakers)
            .get(&stage)
            .map(|(b, _)| b.clone())
            .unwrap_or_default()
    }

    /// Replaces a stage's breaker (test setup).
    pub fn set_breaker(&self, stage: Stage, breaker: Breaker) {
        let mut all = lock(&self.breakers);
        let version = all.get(&stage).map_or(0, |(_, v)| *v) + 1;
        all.insert(stage, (breaker, version));
    }

    /// Gives a lease to `holder`'s first receive (test setup): taken once, not marked out of
    /// time.
    pub fn hold_lease(&self, stage: Stage, image: ImageId, holder: &str, until: Timestamp) {
        self.set_lease(
            stage,
            image,
            LeaseView {
                holder: holder.to_owned(),
                receive: 1,
                until,
                attempts: 1,
                ran_out_of_time: false,
            },
        );
    }

    /// Stores a lease as given (test setup).
    pub fn set_lease(&self, stage: Stage, image: ImageId, lease: LeaseView) {
        lock(&self.leases).insert(LeaseKey { stage, image }, lease);
    }

    /// A lease as stored.
    pub fn lease_of(&self, stage: Stage, image: ImageId) -> Option<LeaseView> {
        lock(&self.leases).get(&LeaseKey { stage, image }).cloned()
    }
}

impl ControlStore for MemoryControl {
    async fn load_breaker(&self, stage: Stage) -> Result<(Breaker, u64), RepoError> {
        Ok(lock(&self.breakers)
            .get(&stage)
            .cloned()
            .unwrap_or_default())
    }

    async fn save_breaker(&self, write: BreakerWrite<'_>) -> Result<(), RepoError> {
        let mut all = lock(&self.breakers);
        let current = all.get(&write.stage).map_or(0, |(_, v)| *v);
        if current != write.expected_version {
            return Err(RepoError::Conflict);
        }
        all.insert(write.stage, (write.breaker.clone(), current + 1));
        Ok(())
    }

    async fn acquire_lease(&self, request: &LeaseRequest<'_>) -> Result<Lease, RepoError> {
        let LeaseRequest {
            lease: key,
            holder,
            until,
            now,
        } = *request;
        let mut leases = lock(&self.leases);
        let old = leases.get(&key).cloned();
        let lease = match &old {
            None => Lease::Taken,
            Some(l) if l.until >= now && l.holder == holder.message_id => {
                return Ok(Lease::Running { until: l.until })
            }
            Some(l) if l.until >= now => return Ok(Lease::HeldElsewhere),
            Some(l) if l.holder == holder.message_id => Lease::Abandoned {
                attempts: l.attempts,
                ran_out_of_time: l.ran_out_of_time,
            },
            Some(_) => Lease::Taken,
        };
        let attempts = old.map_or(0, |l| l.attempts) + 1;
        leases.insert(
            key,
            LeaseView {
                holder: holder.message_id.to_owned(),
                receive: holder.receive,
                until,
                attempts,
                ran_out_of_time: false,
            },
        );
        Ok(lease)
    }

    async fn mark_out_of_time(
        &self,
        lease: LeaseKey,
        holder: &Holder<'_>,
    ) -> Result<(), RepoError> {
        if let Some(l) = lock(&self.leases).get_mut(&lease) {
            if l.is_held_by(holder) {
                l.ran_out_of_time = true;
            }
        }
        Ok(())
    }

    async fn lease(&self, lease: LeaseKey) -> Result<Option<LeaseView>, RepoError> {
        Ok(self.lease_of(lease.stage, lease.image))
    }

    async fn release_lease(&self, lease: LeaseKey, holder: &Holder<'_>) -> Result<(), RepoError> {
        let mut leases = lock(&self.leases);
        if leases.get(&lease).is_some_and(|l| l.is_held_by(holder)) {
            leases.remove(&lease);
        }
        Ok(())
    }
}

/// Per-minute throughput counters in memory.
#[derive(Debug, Default, Clone)]
pub struct MemoryThroughput {
    minutes: Arc<Mutex<BTreeMap<Timestamp, (u64, u64)>>>,
    /// The completed total's seed (`completed#seed`).
    pub completed_seed: Arc<Mutex<u64>>,
}

impl ThroughputLog for MemoryThroughput {
    async fn count(&self, at: Timestamp, outcome: Outcome) -> Result<(), RepoError> {
        let mut all = lock(&self.minutes);
        let entry = all.entry(crate::ops::minute_start(at)).or_default();
        match outcome {
            Outcome::Processed => entry.0 += 1,
            Outcome::Failed => entry.1 += 1,
        }
        Ok(())
    }

    async fn recent(&self, now: Timestamp, minutes: u32) -> Result<Vec<MinuteCount>, RepoError> {
        let all = lock(&self.minutes);
        Ok(MinuteCount::tally(
            crate::ops::recent_minutes(now, minutes),
            |minute| all.get(&minute).copied().unwrap_or_default(),
        ))
    }

    async fn completed_total(&self) -> Result<u64, RepoError> {
        // As the table's: the processed counts (all minutes: nothing expires here) plus the seed.
        let counted: u64 = lock(&self.minutes).values().map(|(p, _)| p).sum();
        Ok(counted + *lock(&self.completed_seed))
    }
}

/// Migration markers in memory.
#[derive(Debug, Default, Clone)]
pub struct MemoryMarkers {
    markers: Arc<Mutex<BTreeMap<String, (crate::domain::Marker, u64)>>>,
    /// The completed total's seed, once set.
    pub completed_seed: Arc<Mutex<Option<i64>>>,
    /// The completed total's counted part as this store sees it (test setup).
    pub counted: Arc<Mutex<u64>>,
}

impl MemoryMarkers {
    /// A marker as stored.
    pub fn marker(&self, name: &str) -> Option<crate::domain::Marker> {
        lock(&self.markers).get(name).map(|(m, _)| m.clone())
    }

    /// Replaces a marker (test setup).
    pub fn set(&self, name: &str, marker: crate::domain::Marker) {
        let mut all = lock(&self.markers);
        let v = all.get(name).map_or(0, |(_, v)| *v) + 1;
        all.insert(name.to_owned(), (marker, v));
    }
}

impl crate::ports::MarkerStore for MemoryMarkers {
    async fn load_marker(
        &self,
        name: &str,
    ) -> Result<Option<(crate::domain::Marker, u64)>, RepoError> {
        Ok(lock(&self.markers).get(name).cloned())
    }

    async fn save_marker(
        &self,
        name: &str,
        marker: &crate::domain::Marker,
        expected_version: u64,
    ) -> Result<(), RepoError> {
        let mut all = lock(&self.markers);
        let current = all.get(name).map_or(0, |(_, v)| *v);
        if current != expected_version {
            return Err(RepoError::Conflict);
        }
        all.insert(name.to_owned(), (marker.clone(), expected_version + 1));
        Ok(())
    }

    async fn completed_counted(&self) -> Result<Option<u64>, RepoError> {
        Ok(lock(&self.completed_seed)
            .is_none()
            .then(|| *lock(&self.counted)))
    }

    async fn seed_completed(&self, seed: i64) -> Result<bool, RepoError> {
        let mut current = lock(&self.completed_seed);
        if current.is_some() {
            return Ok(false);
        }
        *current = Some(seed);
        Ok(true)
    }
}

/// The per-owner request counters in memory, with the adapter's conditional `ADD`.
#[derive(Debug, Default, Clone)]
pub struct MemoryRates {
    counts: Arc<Mutex<BTreeMap<(OwnerId, Timestamp), u32>>>,
}

impl MemoryRates {
    /// The requests counted for `owner` in the window starting at `window_start`.
    pub fn count(&self, owner: &OwnerId, window_start: Timestamp) -> u32 {
        lock(&self.counts)
            .get(&(owner.clone(), window_start))
            .copied()
            .unwrap_or(0)
    }
}

impl crate::ports::RateCounter for MemoryRates {
    async fn take(
        &self,
        owner: &OwnerId,
        window_start: Timestamp,
        _window: Duration,
        limit: u32,
    ) -> Result<bool, RepoError> {
        let mut counts = lock(&self.counts);
        let count = counts.entry((owner.clone(), window_start)).or_insert(0);
        if *count >= limit {
            return Ok(false);
        }
        *count += 1;
        Ok(true)
    }
}
