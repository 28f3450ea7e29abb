//! RTP sockets for the calls cfhost answers itself: an even port from `[sip] rtp_ports` on the
//! listening address, released when the socket is dropped, and G.711 RTP read back to linear
//! samples ([`super::pacer`] sends it).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

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

/// The RTP ports cfhost may bind, handed out round the range.
#[derive(Debug)]
pub struct RtpPorts {
    ip: IpAddr,
    first: u16,
    last: u16,
    next: AtomicU32,
}

impl RtpPorts {
    /// Ports `first..=last` (even ones only, as RTP uses) on `ip`.
    pub fn new(ip: IpAddr, first: u16, last: u16) -> Self {
        let first = first + first % 2;
        RtpPorts {
            ip,
            first,
            last: last.max(first),
            next: AtomicU32::new(0),
        }
    }

    /// A socket on the next free even port, trying each port of the range at most once.
    pub async fn bind(&self) -> Result<UdpSocket, NoFreePort> {
        let slots = u32::from((self.last - self.first) / 2 + 1);
        for _ in 0..slots {
            let slot = self.next.fetch_add(1, Ordering::Relaxed) % slots;
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
