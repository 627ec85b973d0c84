//! The report of a TCP-versus-UDP comparison: real round trips measured at the socket, and an
//! optional file-sized transfer over each protocol.

use serde::Serialize;

/// Both sides of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompareReport {
    /// Round trips over TCP (one connection, write then read the echo).
    pub tcp: RoundTrips,
    /// Round trips over UDP (sendto then recvfrom the echo, one second's patience each).
    pub udp: RoundTrips,
    /// The one-way transfer, if one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileRace>,
}

/// Request/reply round trips over one protocol.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundTrips {
    /// Messages sent.
    pub messages: u32,
    /// Bytes per message.
    pub size: usize,
    /// Messages whose echo never came (UDP only can lose them).
    pub lost: u32,
    /// Round-trip times of the answered messages.
    pub rtt_us: Spread,
    /// Round-trip times in sending order, at most 1000 of them evenly picked, for charts.
    pub samples_us: Vec<u32>,
    /// From the first send to the last reply.
    pub duration_us: u64,
    /// Bytes sent and echoed back, per second.
    pub bytes_per_second: u64,
}

/// A distribution in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spread {
    pub min: u32,
    pub p50: u32,
    pub p90: u32,
    pub p99: u32,
    pub max: u32,
    pub mean: u32,
}

impl Spread {
    /// The spread of some samples (all zeros for none).
    pub fn of(samples: &[u32]) -> Spread {
        if samples.is_empty() {
            return Spread {
                min: 0,
                p50: 0,
                p90: 0,
                p99: 0,
                max: 0,
                mean: 0,
            };
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let at = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
        Spread {
            min: sorted[0],
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: *sorted.last().expect("not empty"),
            mean: {
                let (sum, n) = (
                    sorted.iter().map(|s| u64::from(*s)).sum::<u64>(),
                    sorted.len() as u64,
                );
                ((sum + n / 2) / n) as u32
            },
        }
    }
}

/// The same number of bytes sent one way over TCP and over UDP.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileRace {
    /// Bytes sent over each.
    pub bytes: u64,
    /// TCP: until the receiver had every byte.
    pub tcp_duration_us: u64,
    pub tcp_bytes_per_second: u64,
    /// UDP: until the sender was done (the receiver cannot know when to stop).
    pub udp_duration_us: u64,
    /// UDP: what the receiver counted.
    pub udp_datagrams_sent: u32,
    pub udp_datagrams_received: u32,
    pub udp_bytes_received: u64,
    pub udp_bytes_per_second: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_samples() {
        let spread = Spread::of(&(1..=100).collect::<Vec<_>>());
        assert_eq!(
            (spread.min, spread.p50, spread.p99, spread.max),
            (1, 51, 99, 100)
        );
        assert_eq!(Spread::of(&[]).max, 0);
    }
}
