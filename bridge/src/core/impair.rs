//! Simulated network trouble at the socket boundary (loopback never loses anything): UDP loss,
//! duplication, reordering and delay on what an endpoint sends, and for TCP a delay before each
//! send and a slow reader. Every action is recorded as an `impaired` event, so the timeline
//! always says the trouble was simulated. What waits out a UDP delay is bounded per socket
//! ([`MAX_DELAYED`] datagrams, [`MAX_DELAYED_BYTES`]); beyond that a datagram is dropped, and
//! the event says why.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shared::{EventKind, Impairment};

use super::ctx::Ctx;

/// An endpoint's current impairment, changed live by the `impair` command.
#[derive(Clone, Default)]
pub(crate) struct Knob(Arc<Mutex<Impairment>>);

impl Knob {
    pub(crate) fn new(initial: Option<Impairment>) -> Knob {
        Knob(Arc::new(Mutex::new(initial.unwrap_or_default())))
    }

    pub(crate) fn get(&self) -> Impairment {
        self.0.lock().expect("impairment lock").clone()
    }

    pub(crate) fn set(&self, impairment: Impairment) {
        *self.0.lock().expect("impairment lock") = impairment;
    }

    /// TCP: waits the added delay before a send, and records that it did.
    pub(crate) async fn before_send(&self, ctx: &Ctx, bytes: usize) {
        let delay = self.get().delay_ms;
        if delay > 0 {
            ctx.emit(impaired(format!("delayed {delay} ms (simulated)"), bytes));
            tokio::time::sleep(Duration::from_millis(u64::from(delay))).await;
        }
    }

    /// TCP: how many bytes the next read may take (a slow reader: a tenth of a second's worth).
    pub(crate) fn read_limit(&self, buffer: usize) -> usize {
        match self.get().read_bytes_per_second as usize {
            0 => buffer,
            rate => buffer.min((rate / 10).max(1)),
        }
    }

    /// TCP: waits as long as reading `n` bytes should take at the slow reader's rate.
    pub(crate) async fn after_read(&self, ctx: &Ctx, n: usize) {
        let rate = self.get().read_bytes_per_second;
        if rate > 0 {
            ctx.emit(impaired(
                format!("reading slowly: {rate} B/s (simulated)"),
                n,
            ));
            tokio::time::sleep(Duration::from_secs_f64(n as f64 / f64::from(rate))).await;
        }
    }
}

pub(crate) fn impaired(action: String, bytes: usize) -> EventKind {
    EventKind::Impaired { action, bytes }
}

/// A small random source for the dice (xorshift, seeded by the OS).
pub(crate) struct Dice(u64);

impl Dice {
    pub(crate) fn new() -> Dice {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        Dice(u64::from_le_bytes(seed) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// True `percent` times in a hundred.
    fn roll(&mut self, percent: u8) -> bool {
        percent > 0 && self.next() % 100 < u64::from(percent)
    }
}

/// What the UDP trouble decided for one datagram.
pub(crate) struct UdpPlan {
    /// Copies to send now (0: dropped or held back).
    pub(crate) copies: usize,
    /// Milliseconds to wait before sending them.
    pub(crate) delay_ms: u32,
    /// A datagram held back earlier, to send after this one.
    pub(crate) release: Option<(Vec<u8>, SocketAddr)>,
}

/// Datagrams one socket may have waiting out a simulated delay: a flood of replies under a
/// long delay would otherwise hold a copy of each, without limit.
pub(crate) const MAX_DELAYED: usize = 1024;
/// Bytes those datagrams may take together.
pub(crate) const MAX_DELAYED_BYTES: usize = 4 << 20;

/// What waits out a simulated delay on one socket: (datagrams, bytes).
#[derive(Clone, Default)]
pub(crate) struct Waiting(Arc<Mutex<(usize, usize)>>);

impl Waiting {
    /// Counts `bytes` more as waiting, unless the socket's budget is spent.
    pub(crate) fn try_add(&self, bytes: usize) -> bool {
        let mut waiting = self.0.lock().expect("delay lock");
        if waiting.0 >= MAX_DELAYED || waiting.1 + bytes > MAX_DELAYED_BYTES {
            return false;
        }
        waiting.0 += 1;
        waiting.1 += bytes;
        true
    }

    /// They went out (or were given up).
    pub(crate) fn done(&self, bytes: usize) {
        let mut waiting = self.0.lock().expect("delay lock");
        waiting.0 -= 1;
        waiting.1 -= bytes;
    }
}

/// Per-socket UDP trouble: the knob, the dice, a datagram held back for reordering, and what
/// waits out a delay.
pub(crate) struct UdpTrouble {
    pub(crate) knob: Knob,
    dice: Dice,
    held: Option<(Vec<u8>, SocketAddr)>,
    pub(crate) waiting: Waiting,
}

impl UdpTrouble {
    pub(crate) fn new(knob: Knob) -> Self {
        UdpTrouble {
            knob,
            dice: Dice::new(),
            held: None,
            waiting: Waiting::default(),
        }
    }

    /// The datagram held back for reordering, if any (at the end of a file, nothing comes after
    /// it, so it goes now).
    pub(crate) fn take_held(&mut self) -> Option<(Vec<u8>, SocketAddr)> {
        self.held.take()
    }

    /// Decides what happens to a datagram about to be sent, recording each decision.
    pub(crate) fn plan(&mut self, ctx: &Ctx, data: &[u8], to: SocketAddr) -> UdpPlan {
        let now = self.knob.get();
        let bytes = data.len();
        if self.dice.roll(now.loss_percent) {
            ctx.emit(impaired(
                "dropped: it never left (simulated loss)".into(),
                bytes,
            ));
            return UdpPlan {
                copies: 0,
                delay_ms: 0,
                release: None,
            };
        }
        if self.held.is_none() && self.dice.roll(now.reorder_percent) {
            ctx.emit(impaired(
                "held back: it goes after the next one (simulated reordering)".into(),
                bytes,
            ));
            self.held = Some((data.to_vec(), to));
            return UdpPlan {
                copies: 0,
                delay_ms: 0,
                release: None,
            };
        }
        let copies = if self.dice.roll(now.duplicate_percent) {
            ctx.emit(impaired(
                "duplicated: it goes twice (simulated)".into(),
                bytes,
            ));
            2
        } else {
            1
        };
        if now.delay_ms > 0 {
            ctx.emit(impaired(
                format!("delayed {} ms (simulated)", now.delay_ms),
                bytes,
            ));
        }
        UdpPlan {
            copies,
            delay_ms: now.delay_ms,
            release: self.held.take(),
        }
    }
}
