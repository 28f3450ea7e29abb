//! RTP sockets for the calls cfhost answers itself: an even port from `[sip] rtp_ports` on the
//! listening address, released when the socket is dropped; sending G.711 audio in 20 ms
//! packets (the tone before a recording), and reading it back to linear samples.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};
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

/// Sends `samples` to `peer` as 20 ms G.711 packets in real time.
pub async fn send_audio(socket: &UdpSocket, peer: SocketAddr, law: Law, samples: &[i16]) {
    let ssrc = rand::random::<u32>();
    let mut seq = Seq::from(rand::random::<u16>());
    let mut timestamp = rand::random::<u32>();
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    let mut payload = [0u8; SAMPLES_PER_PACKET];
    for (n, chunk) in samples.chunks(SAMPLES_PER_PACKET).enumerate() {
        ticks.tick().await;
        for (byte, sample) in payload.iter_mut().zip(chunk) {
            *byte = law.encode(*sample);
        }
        let packet = RtpPacketBuilder::new()
            .payload_type(law.payload_type())
            .marked(n == 0)
            .ssrc(ssrc)
            .sequence(seq)
            .timestamp(timestamp)
            .payload(&payload[..chunk.len()])
            .build();
        if let Ok(packet) = packet {
            // A lost tone packet is not worth failing a call for.
            let _ = socket.send_to(&packet, peer).await;
        }
        seq = seq.next();
        timestamp = timestamp.wrapping_add(chunk.len() as u32);
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

/// A short tone: `millis` of a `hertz` sine at a moderate level.
pub fn tone(hertz: f32, millis: u32) -> Vec<i16> {
    let count = (SAMPLE_RATE * millis / 1000) as usize;
    (0..count)
        .map(|n| {
            let t = n as f32 / SAMPLE_RATE as f32;
            ((2.0 * std::f32::consts::PI * hertz * t).sin() * 8000.0) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn audio_sent_is_audio_received() {
        let ports = RtpPorts::new("127.0.0.1".parse().unwrap(), 41000, 41999);
        let sender = ports.bind().await.unwrap();
        let receiver = ports.bind().await.unwrap();
        assert_eq!(sender.local_addr().unwrap().port() % 2, 0);
        let peer = receiver.local_addr().unwrap();
        let beep = tone(440.0, 60);
        assert_eq!(beep.len(), 480);
        send_audio(&sender, peer, Law::Mu, &beep).await;
        let mut samples = Vec::new();
        let mut buf = [0u8; 1500];
        for _ in 0..3 {
            let (n, _) = receiver.recv_from(&mut buf).await.unwrap();
            assert!(decode_packet(&buf[..n], &mut samples));
        }
        assert_eq!(samples.len(), 480);
        // G.711 is lossy, but close.
        for (sent, got) in beep.iter().zip(&samples) {
            assert!(
                (i32::from(*sent) - i32::from(*got)).abs() < 300,
                "{sent} {got}"
            );
        }
        assert!(!decode_packet(b"garbage", &mut samples));
    }
}
