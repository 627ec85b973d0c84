//! Room for peers that have not shown the token yet. Anyone who can reach the port can open
//! connections, so refusing newcomers once a budget is full would let a loop of idle
//! connections lock the real page out. Instead each budget keeps the newest: a newcomer over
//! the budget pushes out the oldest holder that has not proved itself. A browser sends its
//! request (or its hello) within milliseconds of connecting, so it is never the oldest for
//! long; an idle connection is.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// A budget of places, at most `cap` held at once; see the module header.
pub(crate) struct Gate {
    cap: usize,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    next: u64,
    /// Oldest first.
    places: VecDeque<(u64, CancellationToken)>,
}

/// One held place; it is given back when dropped. `evicted` is cancelled when a newcomer
/// pushed it out: its holder must then close.
pub(crate) struct Ticket {
    gate: Arc<Gate>,
    id: u64,
    evicted: CancellationToken,
}

impl Gate {
    pub(crate) fn new(cap: usize) -> Arc<Gate> {
        Arc::new(Gate {
            cap: cap.max(1),
            held: Mutex::default(),
        })
    }

    /// Takes a place, pushing out the oldest holder if every place is taken.
    pub(crate) fn admit(self: &Arc<Self>) -> Ticket {
        let evicted = CancellationToken::new();
        let mut held = self.held.lock().expect("gate lock");
        while held.places.len() >= self.cap {
            if let Some((_, oldest)) = held.places.pop_front() {
                oldest.cancel();
            }
        }
        held.next += 1;
        let id = held.next;
        held.places.push_back((id, evicted.clone()));
        Ticket {
            gate: self.clone(),
            id,
            evicted,
        }
    }

    /// Places held now.
    pub(crate) fn held(&self) -> usize {
        self.held.lock().expect("gate lock").places.len()
    }
}

impl Ticket {
    /// Resolves once a newcomer pushed this holder out.
    pub(crate) async fn evicted(&self) {
        self.evicted.cancelled().await
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut held = self.gate.held.lock().expect("gate lock");
        if let Some(at) = held.places.iter().position(|(id, _)| *id == self.id) {
            held.places.remove(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newcomer_over_the_budget_pushes_out_the_oldest() {
        let gate = Gate::new(2);
        let first = gate.admit();
        let second = gate.admit();
        assert!(!first.evicted.is_cancelled());
        let third = gate.admit();
        assert!(first.evicted.is_cancelled(), "the oldest goes");
        assert!(!second.evicted.is_cancelled() && !third.evicted.is_cancelled());
        assert_eq!(gate.held(), 2);
        drop(second);
        assert_eq!(gate.held(), 1);
        let _fourth = gate.admit();
        assert!(!third.evicted.is_cancelled(), "a place was free");
        drop(first);
        assert_eq!(gate.held(), 2, "an evicted ticket holds nothing");
    }
}
