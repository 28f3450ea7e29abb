//! One clock for the audio cfhost plays: every 20 ms it sends the next packet of every prompt
//! being played, on every call, so a thousand calls hearing a tone cost one timer wake-up per
//! packet time instead of a thousand (as a media server's timer thread does). Idle, the clock
//! sleeps until a prompt arrives.
//!
//! ```no_run
//! # async fn f(socket: std::sync::Arc<tokio::net::UdpSocket>, peer: std::net::SocketAddr) {
//! use cfhost_sip::media::{g711::Law, pacer::{Pacer, Prompt}};
//! let pacer = Pacer::start();
//! let beep = Prompt::tone(440.0, 500);
//! pacer.play(socket, peer, beep.encoded(Law::Mu)).await; // returns after 500 ms
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rtp_rs::{RtpPacketBuilder, Seq};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;

use super::g711::Law;
use super::rtp::{SAMPLE_RATE, SAMPLES_PER_PACKET};

/// The time one packet's audio lasts.
pub const PACKET_TIME: Duration = Duration::from_millis(20);
/// An RTP header without extensions or CSRCs.
const HEADER_BYTES: usize = 12;

/// Audio to play, encoded once for each G.711 law.
#[derive(Debug, Clone)]
pub struct Prompt {
    mu: Arc<[u8]>,
    a: Arc<[u8]>,
}

impl Prompt {
    /// `millis` of a `hertz` sine at a moderate level.
    pub fn tone(hertz: f32, millis: u32) -> Prompt {
        Prompt::from_samples(&tone_samples(hertz, millis))
    }

    /// Linear 8 kHz samples, encoded.
    pub fn from_samples(samples: &[i16]) -> Prompt {
        let encode = |law: Law| samples.iter().map(|s| law.encode(*s)).collect();
        Prompt {
            mu: encode(Law::Mu),
            a: encode(Law::A),
        }
    }

    /// The prompt in `law`: one byte per sample.
    pub fn encoded(&self, law: Law) -> Encoded {
        let bytes = match law {
            Law::Mu => Arc::clone(&self.mu),
            Law::A => Arc::clone(&self.a),
        };
        Encoded { law, bytes }
    }
}

/// A prompt in one law, ready to send.
#[derive(Debug, Clone)]
pub struct Encoded {
    law: Law,
    bytes: Arc<[u8]>,
}

/// `millis` of a `hertz` sine, as linear samples.
pub fn tone_samples(hertz: f32, millis: u32) -> Vec<i16> {
    let count = (SAMPLE_RATE * millis / 1000) as usize;
    (0..count)
        .map(|n| {
            let t = n as f32 / SAMPLE_RATE as f32;
            ((2.0 * std::f32::consts::PI * hertz * t).sin() * 8000.0) as i16
        })
        .collect()
}

/// The handle of the clock; the clock stops when every handle is dropped.
#[derive(Debug, Clone)]
pub struct Pacer {
    streams: mpsc::UnboundedSender<Stream>,
}

impl Pacer {
    /// Starts the clock on the current tokio runtime.
    pub fn start() -> Pacer {
        let (streams, incoming) = mpsc::unbounded_channel();
        tokio::spawn(clock(incoming));
        Pacer { streams }
    }

    /// Plays `audio` from `socket` to `peer` in real time, 20 ms per packet; returns when the
    /// last packet is sent. Dropping the future stops the playing at the next tick.
    pub async fn play(&self, socket: Arc<UdpSocket>, peer: SocketAddr, audio: Encoded) {
        let (done, finished) = oneshot::channel();
        let stream = Stream {
            socket,
            peer,
            audio,
            sent: 0,
            ssrc: rand::random(),
            seq: Seq::from(rand::random::<u16>()),
            timestamp: rand::random(),
            done,
        };
        if self.streams.send(stream).is_ok() {
            // An error means the clock is gone (the runtime is shutting down): nothing to wait for.
            let _ = finished.await;
        }
    }
}

/// One prompt being played.
struct Stream {
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    audio: Encoded,
    /// Samples sent so far.
    sent: usize,
    ssrc: u32,
    seq: Seq,
    timestamp: u32,
    /// Dropped when the prompt is over; closed when the player stopped waiting.
    done: oneshot::Sender<()>,
}

impl Stream {
    /// Sends the next packet; `false` once there is nothing more to send or nobody listens.
    fn send_next(&mut self, buf: &mut [u8; HEADER_BYTES + SAMPLES_PER_PACKET]) -> bool {
        if self.done.is_closed() {
            return false;
        }
        let rest = &self.audio.bytes[self.sent..];
        let payload = &rest[..rest.len().min(SAMPLES_PER_PACKET)];
        if payload.is_empty() {
            return false;
        }
        let packet = RtpPacketBuilder::new()
            .payload_type(self.audio.law.payload_type())
            .marked(self.sent == 0)
            .ssrc(self.ssrc)
            .sequence(self.seq)
            .timestamp(self.timestamp)
            .payload(payload);
        if let Ok(len) = packet.build_into(buf) {
            // Non-blocking: a full socket buffer loses a tone packet, which is not worth
            // failing (or delaying every other call) for.
            let _ = self.socket.try_send_to(&buf[..len], self.peer);
        }
        self.sent += payload.len();
        self.seq = self.seq.next();
        self.timestamp = self.timestamp.wrapping_add(payload.len() as u32);
        self.sent < self.audio.bytes.len()
    }
}

/// The clock: at every tick, one packet of every stream.
async fn clock(mut incoming: mpsc::UnboundedReceiver<Stream>) {
    let mut streams: Vec<Stream> = Vec::new();
    let mut ticks = tokio::time::interval(PACKET_TIME);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut buf = [0u8; HEADER_BYTES + SAMPLES_PER_PACKET];
    loop {
        if streams.is_empty() {
            let Some(first) = incoming.recv().await else {
                return;
            };
            streams.push(first);
            ticks.reset_immediately();
        }
        ticks.tick().await;
        while let Ok(stream) = incoming.try_recv() {
            streams.push(stream);
        }
        streams.retain_mut(|stream| stream.send_next(&mut buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtp::{RtpPorts, decode_packet};

    #[tokio::test]
    async fn prompts_played_at_once_arrive_whole_in_real_time() {
        let ports = RtpPorts::new("127.0.0.1".parse().unwrap(), 41000, 41999);
        let pacer = Pacer::start();
        let beep = Prompt::tone(440.0, 60);
        let samples = tone_samples(440.0, 60);
        assert_eq!(samples.len(), 480);
        let mut receivers = Vec::new();
        let mut players = Vec::new();
        for law in [Law::Mu, Law::A] {
            let sender = Arc::new(ports.bind().await.unwrap());
            let receiver = ports.bind().await.unwrap();
            assert_eq!(sender.local_addr().unwrap().port() % 2, 0);
            let peer = receiver.local_addr().unwrap();
            let (pacer, audio) = (pacer.clone(), beep.encoded(law));
            players.push(tokio::spawn(async move {
                pacer.play(sender, peer, audio).await
            }));
            receivers.push(receiver);
        }
        let started = tokio::time::Instant::now();
        for player in players {
            player.await.unwrap();
        }
        // Three packets, the first sent at once: two packet times at least.
        assert!(
            started.elapsed() >= PACKET_TIME * 2,
            "{:?}",
            started.elapsed()
        );
        for receiver in receivers {
            let mut got = Vec::new();
            let mut buf = [0u8; 1500];
            for _ in 0..3 {
                let (n, _) = receiver.recv_from(&mut buf).await.unwrap();
                assert!(decode_packet(&buf[..n], &mut got));
            }
            assert_eq!(got.len(), 480);
            // G.711 is lossy, but close.
            for (sent, got) in samples.iter().zip(&got) {
                assert!(
                    (i32::from(*sent) - i32::from(*got)).abs() < 300,
                    "{sent} {got}"
                );
            }
        }
        let mut none = Vec::new();
        assert!(!decode_packet(b"garbage", &mut none));
    }

    #[tokio::test]
    async fn a_player_that_stops_waiting_stops_the_stream() {
        let ports = RtpPorts::new("127.0.0.1".parse().unwrap(), 43000, 43999);
        let pacer = Pacer::start();
        let sender = Arc::new(ports.bind().await.unwrap());
        let receiver = ports.bind().await.unwrap();
        let peer = receiver.local_addr().unwrap();
        let long = Prompt::tone(440.0, 10_000).encoded(Law::Mu);
        let playing = pacer.play(sender, peer, long);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), playing)
                .await
                .is_err()
        );
        tokio::time::sleep(PACKET_TIME * 3).await;
        // Drain what was sent; then nothing more comes.
        let mut buf = [0u8; 1500];
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(10), receiver.recv_from(&mut buf)).await
        {
        }
        let more = tokio::time::timeout(PACKET_TIME * 5, receiver.recv_from(&mut buf)).await;
        assert!(more.is_err(), "the stream went on after its player left");
    }
}
