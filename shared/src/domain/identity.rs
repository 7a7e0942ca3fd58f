//! Who is calling: read from the claims the API Gateway JWT authorizer verified.

use std::collections::HashMap;

use super::ids::OwnerId;

/// The name of the group that grants the admin routes.
pub const ADMIN_GROUP: &str = "admin";

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The `sub` claim: the owner of what this caller uploads.
    pub owner: OwnerId,
    /// Member of the admin group (`groups` or `cognito:groups` claim).
    pub admin: bool,
}

/// Why no identity could be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// No authorizer claims, or no `sub` among them.
    #[error("the request carries no verified identity")]
    Missing,
    /// A `sub` that cannot be an owner id.
    #[error("the token's subject cannot be used as an owner id")]
    BadSubject,
}

impl Identity {
    /// Reads the identity from verified claims. API Gateway hands claims over as strings; list
    /// claims arrive flattened as `[a b]` (HTTP APIs) or as a JSON array string, so both are read.
    pub fn from_claims(claims: &HashMap<String, String>) -> Result<Self, IdentityError> {
        let sub = claims.get("sub").ok_or(IdentityError::Missing)?;
        let owner = sub.parse().map_err(|_| IdentityError::BadSubject)?;
        let admin = ["groups", "cognito:groups"]
            .iter()
            .filter_map(|name| claims.get(*name))
            .any(|value| list_claim(value).any(|g| g == ADMIN_GROUP));
        Ok(Identity { owner, admin })
    }
}

/// The items of a list claim in any of the shapes API Gateway produces.
fn list_claim(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| c.is_whitespace() || ",[]\"".contains(c))
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn admin_is_read_from_every_shape_of_the_groups_claim() {
        for groups in [
            "[admin users]",
            "admin",
            "[\"users\",\"admin\"]",
            "users admin",
        ] {
            let id = Identity::from_claims(&claims(&[("sub", "u1"), ("groups", groups)])).unwrap();
            assert!(id.admin, "{groups}");
        }
        let id = Identity::from_claims(&claims(&[("sub", "u1"), ("cognito:groups", "[admins]")]))
            .unwrap();
        assert!(!id.admin, "a group merely starting with admin is not admin");
    }

    #[test]
    fn a_request_without_sub_has_no_identity() {
        assert_eq!(
            Identity::from_claims(&claims(&[])),
            Err(IdentityError::Missing)
        );
        assert_eq!(
            Identity::from_claims(&claims(&[("sub", "a/b")])),
            Err(IdentityError::BadSubject)
        );
    }
}
