//! The one place a function decides whether its adapters run behind fault injection: from
//! `SAFELIGHT_FAULTS`, read once at cold start. With the `faults` feature (local builds) every
//! adapter is wrapped in [`crate::faults::Faulty`] (a no-op while the variable is unset); without
//! it (the Lambda zips of `make package`) the adapters are used bare, and a set `SAFELIGHT_FAULTS`
//! fails the cold start, naming the variable: a deployment that asks for faults it cannot inject
//! would otherwise pass its fault tests vacuously.

/// An adapter as the functions run it: behind the fault decorator in a local build, bare in an
/// AWS build.
#[cfg(feature = "faults")]
pub type MaybeFaulty<T> = crate::faults::Faulty<T, crate::faults::Faults>;
/// An adapter as the functions run it: behind the fault decorator in a local build, bare in an
/// AWS build.
#[cfg(not(feature = "faults"))]
pub type MaybeFaulty<T> = T;

/// A `SAFELIGHT_FAULTS` that cannot be honoured.
#[derive(Debug, thiserror::Error)]
pub enum FaultsError {
    /// The spec is malformed.
    #[cfg(feature = "faults")]
    #[error(transparent)]
    Spec(#[from] crate::faults::FaultSpecError),
    /// The spec is set, but this build has no fault injection.
    #[error(
        "SAFELIGHT_FAULTS is set ({0:?}) but this build has no fault injection (only local builds, \
         with the `faults` feature, have it): unset SAFELIGHT_FAULTS"
    )]
    NotCompiledIn(String),
}

/// The fault injection a function's adapters run behind.
#[derive(Debug, Clone, Default)]
pub struct FaultInjection {
    #[cfg(feature = "faults")]
    faults: crate::faults::Faults,
}

impl FaultInjection {
    /// From `SAFELIGHT_FAULTS` (`None` or blank: none).
    pub fn parse(spec: Option<&str>) -> Result<Self, FaultsError> {
        #[cfg(feature = "faults")]
        {
            Ok(FaultInjection {
                faults: crate::faults::Faults::parse(spec)?,
            })
        }
        #[cfg(not(feature = "faults"))]
        match spec.map(str::trim).filter(|s| !s.is_empty()) {
            Some(spec) => Err(FaultsError::NotCompiledIn(spec.to_owned())),
            None => Ok(FaultInjection {}),
        }
    }

    /// `adapter` as the function runs it.
    pub fn wrap<T>(&self, adapter: T) -> MaybeFaulty<T> {
        #[cfg(feature = "faults")]
        {
            crate::faults::Faulty::new(adapter, self.faults.clone())
        }
        #[cfg(not(feature = "faults"))]
        {
            adapter
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_spec_is_no_fault_injection_in_every_build() {
        assert!(FaultInjection::parse(None).is_ok());
        assert!(FaultInjection::parse(Some("  ")).is_ok());
    }

    #[cfg(not(feature = "faults"))]
    #[test]
    fn a_build_without_the_feature_refuses_a_spec_naming_the_variable() {
        let e = FaultInjection::parse(Some("s3_get:1")).unwrap_err();
        assert!(e.to_string().contains("SAFELIGHT_FAULTS"), "{e}");
        assert!(e.to_string().contains("s3_get:1"), "{e}");
    }

    #[cfg(feature = "faults")]
    #[tokio::test]
    async fn a_build_with_the_feature_wraps_adapters_in_the_decorator() {
        use crate::faults::{Call, Injector, Port};
        let injection = FaultInjection::parse(Some("s3_get:1")).unwrap();
        let wrapped: MaybeFaulty<()> = injection.wrap(());
        let call = Call {
            port: Port::ObjectStore,
            method: "get",
            key: Some("originals/u/01J"),
        };
        assert!(wrapped.injector().enter(call).await.is_err());
        assert!(FaultInjection::parse(Some("s3_get")).is_err());
    }
}
