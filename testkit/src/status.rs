//! Conditions on a processing-status answer (`GET /api/images/{id}/processing-status`), for the
//! suites' waits.

use serde_json::Value;

/// `processing_status` is `completed` or `failed`.
pub fn terminal(v: &Value) -> bool {
    matches!(
        v["processing_status"].as_str(),
        Some("completed" | "failed")
    )
}

/// Both stages are `completed` or `failed` (`processing_status` turns `failed` with the first).
pub fn settled(v: &Value) -> bool {
    ["thumbnail_status", "variant_status"]
        .iter()
        .all(|s| matches!(v[*s].as_str(), Some("completed" | "failed")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_row_is_terminal_once_completed_or_failed_and_settled_once_both_stages_are() {
        assert!(!terminal(&json!({"processing_status": "processing"})));
        assert!(terminal(&json!({"processing_status": "failed"})));
        assert!(terminal(&json!({"processing_status": "completed"})));
        let half = json!({"thumbnail_status": "failed", "variant_status": "processing"});
        assert!(!settled(&half));
        assert!(settled(
            &json!({"thumbnail_status": "failed", "variant_status": "completed"})
        ));
    }
}
