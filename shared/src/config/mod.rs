//! Typed configuration, read once at cold start from SCREAMING_SNAKE environment variables.
//!
//! One library reads them: [`envy`] deserializes a snapshot of the environment ([`Env`]) into a
//! serde struct whose snake_case fields are the variables' names, so a struct's fields are its
//! variables. A blank variable counts as unset (the local stack clears a setting by setting it
//! to ""); values are trimmed. Each struct states its defaults (its `Default`) and checks its
//! bounds in one place, its [`Settings::validate`], with each whole-number setting's [`Bounds`].
//! A missing or malformed variable fails the init with a message naming it.
//!
//! - [`Config`]: the resources and limits the functions share (`BUCKET`, `IMAGES_TABLE`, ...);
//! - [`ProcessingConfig`]: the `thumbnail` and `variant` functions' outputs, input limits, backoff
//!   and lease, with [`BreakerSettings`] (`BREAKER_*`), which the admin function reads too
//!   ([`crate::OpsSettings`]);
//! - the `ws` and `backfill` functions read their own settings through [`Env::read`] as well.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

mod common;
mod processing;

pub use common::{CdnDelivery, Config, MAX_DIRECT_UPLOAD_BYTES, MAX_PRESIGN_EXPIRY};
pub use processing::{BreakerSettings, ProcessingConfig};

/// A configuration problem, naming the variable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or blank.
    #[error("environment variable {0} is required but not set")]
    Missing(String),
    /// A variable is set to something outside what the function can work with.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A variable is not of its type (the message names it: "... provided by NAME").
    #[error(transparent)]
    Unreadable(envy::Error),
}

impl From<envy::Error> for ConfigError {
    fn from(e: envy::Error) -> Self {
        match e {
            envy::Error::MissingValue(field) => ConfigError::Missing(field.to_ascii_uppercase()),
            e => ConfigError::Unreadable(e),
        }
    }
}

/// A struct read from the environment with [`Env::read`], with its bounds.
pub trait Settings: DeserializeOwned {
    /// Checks every setting against its bounds; the error names the variable.
    fn validate(&self) -> Result<(), ConfigError>;
}

/// The environment variables a function reads, as one snapshot: blank ones dropped, values
/// trimmed.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: Vec<(String, String)>,
}

impl Env {
    /// The process environment (variables that are not Unicode count as unset).
    pub fn process() -> Self {
        Env::from_vars(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// These variables (tests pass pairs); of two with the same name but for case, the last.
    pub fn from_vars<K: Into<String>, V: AsRef<str>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut named = BTreeMap::new();
        for (k, v) in vars {
            let (k, v) = (k.into(), v.as_ref().trim());
            if v.is_empty() {
                named.remove(&k.to_ascii_lowercase());
            } else {
                named.insert(k.to_ascii_lowercase(), (k, v.to_owned()));
            }
        }
        Env {
            vars: named.into_values().collect(),
        }
    }

    /// `T` from the variables named by its fields, checked against its bounds.
    pub fn read<T: Settings>(&self) -> Result<T, ConfigError> {
        let settings: T = self.parse()?;
        settings.validate()?;
        Ok(settings)
    }

    /// `T` from the variables named by its fields, unchecked (for a struct that checks itself
    /// as part of a larger read).
    pub(crate) fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        Ok(envy::from_iter(self.vars.iter().cloned())?)
    }
}

/// A whole-number setting's variable and the values it may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The environment variable.
    pub name: &'static str,
    /// The least value allowed.
    pub min: u64,
    /// The greatest value allowed.
    pub max: u64,
    /// Why the bounds are what they are, appended to the error ("" if obvious).
    pub why: &'static str,
}

impl Bounds {
    /// `name` may take `min..=max`.
    pub const fn new(name: &'static str, min: u64, max: u64) -> Self {
        Bounds {
            name,
            min,
            max,
            why: "",
        }
    }

    /// The same bounds, with the reason for them.
    pub const fn because(self, why: &'static str) -> Self {
        Bounds { why, ..self }
    }

    /// Whether `value` is within the bounds; the error names the variable.
    pub fn check(&self, value: impl Into<u64>) -> Result<(), ConfigError> {
        let value = value.into();
        if (self.min..=self.max).contains(&value) {
            return Ok(());
        }
        let why = if self.why.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.why)
        };
        Err(ConfigError::Invalid {
            name: self.name,
            reason: format!(
                "{value} is not a whole number between {} and {}{why}",
                self.min, self.max
            ),
        })
    }

    /// Whether `value`, in whole seconds, is within the bounds.
    pub fn check_secs(&self, value: Duration) -> Result<(), ConfigError> {
        self.check(value.as_secs())
    }
}

/// Deserializes a `..._SECS` variable (whole seconds) into a [`Duration`]
/// (`#[serde(deserialize_with = "safelight::config::secs")]`).
pub fn secs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    u64::deserialize(deserializer).map(Duration::from_secs)
}

/// What `infra/template.yaml` passes to a variable, for tests that hold the code's defaults and
/// bounds to the template's parameters.
#[cfg(test)]
pub(crate) mod template {
    use super::Bounds;

    /// Asserts that the template parameter behind `bounds.name` defaults to `default` and that
    /// its `MinValue` and `MaxValue` (CloudFormation refuses values outside them before a
    /// function sees them) are within `bounds`. A parameter without `MaxValue` leaves the
    /// greatest value to the function's check at init.
    pub(crate) fn agrees(bounds: Bounds, default: impl ToString) {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../infra/template.yaml"
        ))
        .expect("the template");
        let reference = format!("{}: !Ref ", bounds.name);
        let parameter = text
            .lines()
            .find_map(|l| l.trim().strip_prefix(&reference))
            .unwrap_or_else(|| panic!("the template sets {} from a parameter", bounds.name));
        let header = format!("  {parameter}:");
        let lines = text.lines().skip_while(|l| *l != header).skip(1);
        let field = |name: &str| {
            lines
                .clone()
                .take_while(|l| l.starts_with("    "))
                .find_map(|l| l.trim().strip_prefix(name).map(str::trim))
                .map(str::to_owned)
        };
        let number = |name| field(name).map(|v| v.parse::<u64>().expect("a number"));
        assert_eq!(
            field("Default:").as_deref(),
            Some(default.to_string().as_str()),
            "{parameter}'s default"
        );
        let (min, max) = (number("MinValue:"), number("MaxValue:"));
        assert!(
            min.is_some_and(|min| min >= bounds.min),
            "{parameter}'s MinValue {min:?} allows values {} refuses",
            bounds.name
        );
        assert!(
            max.is_none_or(|max| max <= bounds.max),
            "{parameter}'s MaxValue {max:?} allows values {} refuses",
            bounds.name
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Probe {
        count: u32,
        #[serde(default, deserialize_with = "secs")]
        wait_secs: Duration,
        name: Option<String>,
    }

    impl Settings for Probe {
        fn validate(&self) -> Result<(), ConfigError> {
            Bounds::new("COUNT", 1, 10).check(self.count)
        }
    }

    #[test]
    fn blank_variables_count_as_unset_and_values_are_trimmed() {
        let p: Probe = Env::from_vars([("COUNT", " 3 "), ("WAIT_SECS", "5"), ("NAME", "  ")])
            .read()
            .unwrap();
        assert_eq!(p.count, 3);
        let later: Probe =
            Env::from_vars([("COUNT", "1"), ("count", "2"), ("NAME", "a"), ("NAME", "")])
                .read()
                .unwrap();
        assert_eq!(
            (later.count, later.name),
            (2, None),
            "the last of two names wins"
        );
        assert_eq!(p.wait_secs, Duration::from_secs(5));
        assert_eq!(p.name, None);
    }

    #[test]
    fn a_missing_unreadable_or_out_of_bounds_variable_is_named() {
        assert_eq!(
            Env::default().read::<Probe>().unwrap_err(),
            ConfigError::Missing("COUNT".into())
        );
        for (name, value) in [("COUNT", "many"), ("WAIT_SECS", "-1")] {
            let err = Env::from_vars([("COUNT", "1"), ("WAIT_SECS", "1"), (name, value)])
                .read::<Probe>()
                .unwrap_err();
            assert!(matches!(err, ConfigError::Unreadable(_)), "{err:?}");
            assert!(err.to_string().contains(name), "{err}");
        }
        let err = Env::from_vars([("COUNT", "11")])
            .read::<Probe>()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable COUNT is invalid: 11 is not a whole number between 1 and 10"
        );
    }
}
