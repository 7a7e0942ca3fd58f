//! Who is calling: read from the claims the API Gateway JWT authorizer verified.
//!
//! # Admin is a scope, not a group
//! What a caller may do beyond their own images is an OAuth scope the identity provider granted
//! ([`DEFAULT_ADMIN_SCOPE`] unless the deployment names another), never a group name. The HTTP
//! API's admin routes carry the same scope as `AuthorizationScopes`, so API Gateway refuses a
//! token without it (403) before the function runs; the function checks it again
//! ([`Identity::has_scope`]) so a route added without the setting is still closed. Groups are
//! not read at all: a group named `Site admin`, `x,admin` or even `admin` grants nothing, and
//! there is no list format to split wrongly.

use std::collections::HashMap;

use super::ids::OwnerId;

/// The scope that grants the admin routes when the deployment names no other (`AdminScope`
/// template parameter, `ADMIN_SCOPE` in the admin function's environment).
pub const DEFAULT_ADMIN_SCOPE: &str = "safelight/admin";

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The `sub` claim: the owner of what this caller uploads.
    pub owner: OwnerId,
    /// The OAuth scopes granted to the token (`scope` and `scp` claims).
    scopes: Vec<String>,
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
    /// Reads the identity from verified claims. API Gateway hands every claim over as a string.
    /// Scopes are read the way API Gateway's own `AuthorizationScopes` check reads them: the
    /// `scope` claim is one space-separated string (RFC 6749 section 3.3, RFC 8693 section 4.2),
    /// and `scp` is a list (flattened by API Gateway to `[a b]`, or a JSON array string) or a
    /// space-separated string.
    pub fn from_claims(claims: &HashMap<String, String>) -> Result<Self, IdentityError> {
        let sub = claims.get("sub").ok_or(IdentityError::Missing)?;
        let owner = sub.parse().map_err(|_| IdentityError::BadSubject)?;
        let mut scopes: Vec<String> = claims
            .get("scope")
            .map(|s| space_separated(s).map(str::to_owned).collect())
            .unwrap_or_default();
        if let Some(scp) = claims.get("scp") {
            scopes.extend(scp_items(scp));
        }
        Ok(Identity { owner, scopes })
    }

    /// Whether the token was granted `scope`, compared whole and case-sensitively (scopes are
    /// case-sensitive, RFC 6749 section 3.3).
    pub fn has_scope(&self, scope: &str) -> bool {
        !scope.is_empty() && self.scopes.iter().any(|s| s == scope)
    }
}

/// The tokens of a space-delimited scope string: split on the space character only, as the
/// RFC defines it, so no other separator can make a token out of part of a name.
fn space_separated(value: &str) -> impl Iterator<Item = &str> {
    value.split(' ').filter(|s| !s.is_empty())
}

/// The items of an `scp` claim: a list as API Gateway flattens it (`[a b]`), a JSON array string
/// (`["a","b"]`), or a space-separated string.
fn scp_items(value: &str) -> Vec<String> {
    let trimmed = value.trim();
    if let Ok(items) = serde_json::from_str::<Vec<String>>(trimmed) {
        return items;
    }
    let inner = trimmed
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(trimmed);
    space_separated(inner).map(str::to_owned).collect()
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

    fn admin(pairs: &[(&str, &str)]) -> bool {
        Identity::from_claims(&claims(pairs))
            .unwrap()
            .has_scope(DEFAULT_ADMIN_SCOPE)
    }

    #[test]
    fn the_admin_scope_in_the_scope_claim_grants_admin() {
        for scope in [
            "safelight/admin",
            "openid safelight/admin",
            "safelight/admin email",
            "openid  safelight/admin",
        ] {
            assert!(admin(&[("sub", "u1"), ("scope", scope)]), "{scope:?}");
        }
    }

    #[test]
    fn the_admin_scope_in_an_scp_list_grants_admin_in_every_shape_api_gateway_hands_over() {
        for scp in [
            "[openid safelight/admin]",
            "[\"openid\",\"safelight/admin\"]",
            "safelight/admin",
            "openid safelight/admin",
        ] {
            assert!(admin(&[("sub", "u1"), ("scp", scp)]), "{scp:?}");
        }
    }

    #[test]
    fn no_group_grants_admin_whatever_its_name() {
        for groups in [
            "admin",
            "[admin]",
            "[\"admin\"]",
            "Site admin",
            "[Site admin]",
            "x,admin",
            "[x,admin]",
            "users admin",
            "safelight/admin",
            "[safelight/admin]",
        ] {
            for claim in ["groups", "cognito:groups"] {
                assert!(
                    !admin(&[("sub", "u1"), (claim, groups)]),
                    "{claim}={groups:?}"
                );
            }
        }
    }

    #[test]
    fn a_scope_is_compared_whole_and_split_on_spaces_only() {
        for scope in [
            "safelight/admin,openid",
            "x,safelight/admin",
            "safelight/admins",
            "Safelight/Admin",
            "safelight/admin\topenid",
            "[safelight/admin]",
            "safelight",
            "admin",
            "",
        ] {
            assert!(!admin(&[("sub", "u1"), ("scope", scope)]), "{scope:?}");
        }
        let id = Identity::from_claims(&claims(&[("sub", "u1"), ("scope", "openid")])).unwrap();
        assert!(!id.has_scope(""), "the empty scope is never granted");
    }

    #[test]
    fn a_deployment_may_name_another_admin_scope() {
        let id = Identity::from_claims(&claims(&[("sub", "u1"), ("scope", "ops/admin openid")]))
            .unwrap();
        assert!(id.has_scope("ops/admin"));
        assert!(!id.has_scope(DEFAULT_ADMIN_SCOPE));
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
