//! RTP sockets for the calls cfhost answers itself: an even port from `[sip] rtp_ports` on the
//! listening address, picked at random so that no one can guess the next call's, released when
//! the socket is dropped; which source a call's RTP is taken from ([`RtpSource`]); and G.711
//! RTP read back to linear samples ([`super::pacer`] sends it).

use std::net::{IpAddr, SocketAddr};

use rtp_rs::RtpReader;
use tokio::net::UdpSocket;

use super::g711::Law;

/// Samples in one 20 ms packet at 8 kHz.
pub const SAMPLES_PER_PACKET: usize = 160;
/// The RTP clock of G.711.
pub const SAMPLE_RATE: u32 = 8000;

/// No RTP port could be bound.
#[derive(Debug, thiserror::Error)]
#[error("no free RTP port in {first}-{last} on {ip}")]
pub struct NoFreePort {
    pub ip: IpAddr,
    pub first: u16,
    pub last: u16,
}

/// The RTP ports cfhost may bind, handed out at random.
#[derive(Debug)]
pub struct RtpPorts {
    ip: IpAddr,
    first: u16,
    last: u16,
}

impl RtpPorts {
    /// Ports `first..=last` (even ones only, as RTP uses) on `ip`.
    pub fn new(ip: IpAddr, first: u16, last: u16) -> Self {
        let first = first + first % 2;
        RtpPorts {
            ip,
            first,
            last: last.max(first),
        }
    }

    /// A socket on a free even port of the range, picked at random: a few random tries, then
    /// every port of the range once from a random one.
    pub async fn bind(&self) -> Result<UdpSocket, NoFreePort> {
        let slots = u32::from((self.last - self.first) / 2 + 1);
        let start = rand::random::<u32>() % slots;
        let random = (0..8).map(|_| rand::random::<u32>() % slots);
        let sweep = (0..slots).map(|i| (start + i) % slots);
        for slot in random.chain(sweep) {
            let port = self.first + (slot * 2) as u16;
            if let Ok(socket) = UdpSocket::bind((self.ip, port)).await {
                return Ok(socket);
            }
        }
        Err(NoFreePort {
            ip: self.ip,
            first: self.first,
            last: self.last,
        })
    }
}

/// Whose RTP a call takes, as Asterisk's `strictrtp` does: the address the caller's SDP names
/// when the caller signalled from that IP; behind NAT (the SDP names another IP than the
/// signalling came from), the first address RTP comes from at the signalling IP, and only it
/// from then on. Anything else (a stranger's packets to a port that was guessed or scanned) is
/// dropped.
#[derive(Debug, Clone, Copy)]
pub struct RtpSource {
    offered: Option<SocketAddr>,
    signalling: Option<IpAddr>,
    latched: Option<SocketAddr>,
}

impl RtpSource {
    /// The source of a caller whose SDP offered `offered` and who signalled from `signalling`.
    pub fn new(offered: Option<SocketAddr>, signalling: Option<IpAddr>) -> Self {
        let strict = match (offered, signalling) {
            (Some(offered), Some(ip)) => offered.ip() == ip,
            (Some(_), None) => true,
            (None, _) => false,
        };
        RtpSource {
            offered,
            signalling,
            latched: strict.then_some(offered).flatten(),
        }
    }

    /// Whether a packet from `from` is the caller's.
    pub fn accepts(&mut self, from: SocketAddr) -> bool {
        match self.latched {
            Some(latched) => latched == from,
            None if self.signalling.is_none_or(|ip| ip == from.ip()) => {
                self.latched = Some(from);
                true
            }
            None => false,
        }
    }

    /// Where to send RTP to the caller: where its RTP comes from once known, else its offer.
    pub fn send_to(&self) -> Option<SocketAddr> {
        self.latched.or(self.offered)
    }
}

/// The audio of one RTP packet as linear samples, appended to `out`: G.711 only (other payload
/// types, such as telephone events, and packets that do not parse are skipped). Returns
/// whether the packet carried audio.
pub fn decode_packet(packet: &[u8], out: &mut Vec<i16>) -> bool {
    let Ok(reader) = RtpReader::new(packet) else {
        return false;
    };
    let Some(law) = Law::from_payload_type(reader.payload_type()) else {
        return false;
    };
    out.extend(reader.payload().iter().map(|byte| law.decode(*byte)));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn rtp_is_taken_from_the_offer_or_latched_at_the_signalling_ip_behind_nat() {
        // Signalled from the SDP's IP: only the offered address.
        let mut strict = RtpSource::new(
            Some(at("198.51.100.7:4000")),
            Some(at("198.51.100.7:5060").ip()),
        );
        assert!(!strict.accepts(at("203.0.113.9:4000")), "a stranger");
        assert!(
            !strict.accepts(at("198.51.100.7:4002")),
            "another port of the caller's IP"
        );
        assert!(strict.accepts(at("198.51.100.7:4000")));
        // Behind NAT: the offer names a private address; the first packet from the NAT's IP
        // is latched, and then only it.
        let mut nat = RtpSource::new(
            Some(at("192.168.1.10:4000")),
            Some(at("203.0.113.5:5060").ip()),
        );
        assert_eq!(nat.send_to(), Some(at("192.168.1.10:4000")));
        assert!(
            !nat.accepts(at("198.51.100.66:30000")),
            "a stranger cannot latch"
        );
        assert!(nat.accepts(at("203.0.113.5:61000")));
        assert!(!nat.accepts(at("203.0.113.5:61002")));
        assert_eq!(nat.send_to(), Some(at("203.0.113.5:61000")));
    }

    #[tokio::test]
    async fn ports_are_handed_out_unpredictably_and_all_of_the_range_is_used() {
        let ports = RtpPorts::new("127.0.0.1".parse().unwrap(), 45000, 45999);
        let mut held = Vec::new();
        for _ in 0..20 {
            held.push(ports.bind().await.unwrap());
        }
        let numbers: Vec<u16> = held
            .iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect();
        assert!(
            numbers
                .iter()
                .all(|p| p % 2 == 0 && (45000..=45998).contains(p))
        );
        let in_sequence = numbers.windows(2).filter(|w| w[1] == w[0] + 2).count();
        assert!(in_sequence < 5, "ports come in sequence: {numbers:?}");
        // A range of two ports, one taken: the other is found. (Outside the range above: a
        // port held there could be one of these two, and this would find none.)
        drop(held);
        let small = RtpPorts::new("127.0.0.1".parse().unwrap(), 46990, 46992);
        let taken = small.bind().await.unwrap();
        let other = small.bind().await.unwrap();
        assert_ne!(
            taken.local_addr().unwrap().port(),
            other.local_addr().unwrap().port()
        );
    }
}
