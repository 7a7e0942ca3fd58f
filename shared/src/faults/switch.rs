//! [`Switch`]: an injector turned on and off by a test: every call of the port it guards fails
//! while it is on (as an outage, or as a refusal).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{Call, InjectedFault, Injector};

/// On/off faults for handler tests; clones share the switch, so a test keeps one and the port
/// it guards goes to the code under test.
#[derive(Debug, Clone, Default)]
pub struct Switch(Arc<State>);

#[derive(Debug, Default)]
struct State {
    failing: AtomicBool,
    refusing: AtomicBool,
    /// Only calls of this port method fail (e.g. a caller not allowed to read a queue's depth).
    only: Option<&'static str>,
}

impl Switch {
    /// A switch that fails only the calls of `method` (of whichever port it guards).
    pub fn only(method: &'static str) -> Self {
        Switch(Arc::new(State {
            only: Some(method),
            ..State::default()
        }))
    }

    /// While on, every call fails as unavailable.
    pub fn fail(&self, on: bool) {
        self.0.failing.store(on, Ordering::SeqCst);
    }

    /// While on, every call is refused (access denied); takes precedence over `fail`.
    pub fn refuse(&self, on: bool) {
        self.0.refusing.store(on, Ordering::SeqCst);
    }
}

impl Injector for Switch {
    async fn enter(&self, call: Call<'_>) -> Result<(), InjectedFault> {
        if self.0.only.is_some_and(|m| m != call.method) {
            return Ok(());
        }
        let refused = self.0.refusing.load(Ordering::SeqCst);
        if refused || self.0.failing.load(Ordering::SeqCst) {
            let what = if refused { "refusal" } else { "fault" };
            return Err(InjectedFault {
                message: format!("injected {what} in {:?}.{}", call.port, call.method),
                refused,
            });
        }
        Ok(())
    }
}
