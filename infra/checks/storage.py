"""Invariants of what is stored: the bucket's lifecycle (incomplete uploads aborted, originals never
expired) and the images table's status index."""

from __future__ import annotations

from checks.template import Template, as_list, props, resources

# Where originals live (the EventBridge rule's key prefix): nothing under it may expire.
ORIGINALS_PREFIX = "originals/"


def every_bucket_aborts_incomplete_multipart_uploads(t: Template) -> list[str]:
    out = []
    for name, b in resources(t, "AWS::S3::Bucket").items():
        rules = (props(b).get("LifecycleConfiguration") or {}).get("Rules", [])
        if not any(r.get("Status") == "Enabled" and r.get("AbortIncompleteMultipartUpload") for r in rules):
            out.append(f"{name}: no enabled lifecycle rule with AbortIncompleteMultipartUpload")
    return out


def lifecycle_rule_prefixes(rule: dict) -> list[str]:
    """The key prefixes an S3 lifecycle rule applies to ("" = the whole bucket). A rule filtered
    only by tags or object size applies under every prefix."""
    filt = rule.get("Filter") or {}
    prefix = rule.get("Prefix", filt.get("Prefix", (filt.get("And") or {}).get("Prefix")))
    return [prefix if isinstance(prefix, str) else ""]


def no_lifecycle_rule_expires_anything_under_originals(t: Template) -> list[str]:
    """The original processing pinned (the row names its version) must never expire: when a later
    version of the key is left current (its event dead-lettered, its deletion failed) the pinned
    version is non-current, and a non-current expiry covering originals/ would delete it."""
    out = []
    expiring = ("NoncurrentVersionExpiration", "NoncurrentVersionExpirationInDays", "ExpirationInDays", "ExpirationDate")
    for name, b in resources(t, "AWS::S3::Bucket").items():
        for rule in (props(b).get("LifecycleConfiguration") or {}).get("Rules", []):
            if rule.get("Status") != "Enabled":
                continue
            what = [k for k in expiring if rule.get(k) not in (None, "", {})]
            if not what:
                continue
            for prefix in lifecycle_rule_prefixes(rule):
                if ORIGINALS_PREFIX.startswith(prefix) or prefix.startswith(ORIGINALS_PREFIX):
                    scope = f"prefix '{prefix}'" if prefix else "the whole bucket"
                    out.append(
                        f"{name}: lifecycle rule '{rule.get('Id', '?')}' ({', '.join(what)}) applies to "
                        f"{ORIGINALS_PREFIX} ({scope}): it would expire pinned originals"
                    )
    return out


STATUS_SHARD_KEY = "status_key"
STATUS_SORT_KEY = "status_since"


def status_indexes_are_sharded_and_any_index_on_the_bare_status_can_be_dropped(t: Template) -> list[str]:
    """The images table's status index is keyed by the write-sharded `status_key` (a partition
    key with 4 values is the first write limit at 10x), sorted by `status_since` and projecting
    the keys only (so a row write that keeps the status does not write the index: at 100x an
    `ALL` projection sorted by `updated_at` rewrote each entry on every row write), and an index
    keyed by the bare `processing_status` exists only behind a condition (the old index, kept
    for one release)."""
    problems = []
    table = t.get("Resources", {}).get("ImagesTable")
    if table is None:
        return ["ImagesTable: missing"]
    found_sharded = False
    for gsi in as_list(props(table).get("GlobalSecondaryIndexes")):
        conditional = isinstance(gsi, dict) and "Fn::If" in gsi
        if conditional:
            gsi = gsi["Fn::If"][1]
        if not isinstance(gsi, dict):
            continue
        keys = {k.get("KeyType"): k.get("AttributeName") for k in as_list(gsi.get("KeySchema"))}
        name = gsi.get("IndexName")
        if keys.get("HASH") == "processing_status" and not conditional:
            problems.append(f"ImagesTable: index {name} is keyed by the bare processing_status and cannot be dropped")
        if keys.get("HASH") == STATUS_SHARD_KEY:
            if name != "by_status_v2" or keys.get("RANGE") != STATUS_SORT_KEY:
                problems.append(f"ImagesTable: index {name} on {STATUS_SHARD_KEY} must be by_status_v2 sorted by {STATUS_SORT_KEY}")
            elif (gsi.get("Projection") or {}).get("ProjectionType") != "KEYS_ONLY":
                problems.append("ImagesTable: by_status_v2 must project KEYS_ONLY (a projected attribute would rewrite the entry on every row write)")
            else:
                found_sharded = True
    if not found_sharded:
        problems.append(f"ImagesTable: no by_status_v2 index on {STATUS_SHARD_KEY}, {STATUS_SORT_KEY}")
    return problems
