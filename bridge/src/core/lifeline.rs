//! Lifelines: how a socket task learns that it must close, and why. A cancellation token with
//! the first reason given; stopping a server stops its connections through child lifelines,
//! which then report the server's reason.

use std::sync::{Arc, OnceLock};

use shared::ClosedBy;
use tokio_util::sync::CancellationToken;

/// See the module header.
#[derive(Clone)]
pub(crate) struct Lifeline {
    pub(crate) token: CancellationToken,
    why: Arc<OnceLock<(ClosedBy, String)>>,
    parent: Option<Arc<Lifeline>>,
}

impl Lifeline {
    pub(crate) fn root() -> Self {
        Lifeline {
            token: CancellationToken::new(),
            why: Arc::new(OnceLock::new()),
            parent: None,
        }
    }

    pub(crate) fn child(&self) -> Self {
        Lifeline {
            token: self.token.child_token(),
            why: Arc::new(OnceLock::new()),
            parent: Some(Arc::new(self.clone())),
        }
    }

    /// Asks the task to close; the first reason given wins.
    pub(crate) fn stop(&self, by: ClosedBy, reason: impl Into<String>) {
        let _ = self.why.set((by, reason.into()));
        self.token.cancel();
    }

    /// Resolves once the task must close.
    pub(crate) async fn stopped(&self) {
        self.token.cancelled().await
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Why it was stopped (its own reason, else its parent's).
    pub(crate) fn reason(&self) -> (ClosedBy, String) {
        if let Some(why) = self.why.get() {
            return why.clone();
        }
        match &self.parent {
            Some(parent) => parent.reason(),
            None => (ClosedBy::Bridge, "the bridge is shutting down".into()),
        }
    }
}
