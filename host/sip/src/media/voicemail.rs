//! Recording a voicemail message from the caller's RTP, as a message for the store
//! ([`cfhost_store::Message`]): a WAV recording (8 kHz, mono, 16-bit PCM) and its metadata
//! (caller id, call id, time, length). In a data directory it is
//! `accounts/<account>/vmboxes/<box_id>/<message_id>.wav` and `.json`. A recording shorter than
//! KAZOO's minimum message length (`voicemail.min_message_size`, 500 ms) is not a message.

use std::future::Future;
use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cfhost_core::call::CallDetails;
use cfhost_core::files::is_plain_name;
use cfhost_store::Message;
use serde_json::json;
use tokio::net::UdpSocket;

use super::rtp::{RtpSource, SAMPLE_RATE, decode_packet};

/// KAZOO's minimum message length.
pub const MIN_MESSAGE: Duration = Duration::from_millis(500);

/// Why a recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingEnd {
    /// The call ended (the caller hung up).
    CallEnded,
    /// It reached the longest message allowed.
    MaxLength,
    /// No audio arrived for the silence timeout.
    NoMedia,
}

/// The audio recorded and why it stopped.
#[derive(Debug)]
pub struct Recording {
    pub samples: Vec<i16>,
    pub end: RecordingEnd,
}

impl Recording {
    /// Its length.
    pub fn length(&self) -> Duration {
        Duration::from_secs_f64(self.samples.len() as f64 / f64::from(SAMPLE_RATE))
    }
}

/// Records the caller's G.711 RTP arriving on `socket` (packets `source` does not accept are
/// dropped) until `call_over` completes, `max` of audio is recorded, or no audio arrives for
/// `silence`: telephone events (DTMF) and comfort noise are not audio and keep nothing open.
pub async fn record(
    socket: &UdpSocket,
    source: &mut RtpSource,
    max: Duration,
    silence: Duration,
    call_over: impl Future<Output = ()>,
) -> Recording {
    let max_samples = (max.as_secs_f64() * f64::from(SAMPLE_RATE)) as usize;
    // Grown as audio arrives: a held call that sends nothing costs nothing here (a
    // reservation for `max` would be a megabyte per call in voicemail).
    let mut samples = Vec::new();
    let mut buf = [0u8; 2048];
    let mut call_over = std::pin::pin!(call_over);
    let mut last_audio = tokio::time::Instant::now();
    let end = loop {
        tokio::select! {
            biased;
            () = &mut call_over => break RecordingEnd::CallEnded,
            () = tokio::time::sleep_until(last_audio + silence) => break RecordingEnd::NoMedia,
            received = socket.recv_from(&mut buf) => {
                let Ok((len, from)) = received else { continue };
                if !source.accepts(from) {
                    continue;
                }
                if decode_packet(&buf[..len], &mut samples) {
                    last_audio = tokio::time::Instant::now();
                }
                if samples.len() >= max_samples {
                    samples.truncate(max_samples);
                    break RecordingEnd::MaxLength;
                }
            }
        }
    };
    Recording { samples, end }
}

/// A box id that could not name a box.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a voicemail box id (letters, digits, `-` and `_`)")]
pub struct BadBox(pub String);

/// `recording` as a message of `box_id` for the call `details` that started at `started`:
/// a new message id, KAZOO's message fields and the WAV bytes, ready for the store.
pub fn message(
    box_id: &str,
    details: &CallDetails,
    started: SystemTime,
    recording: &Recording,
) -> Result<Message, BadBox> {
    if !is_plain_name(box_id) {
        return Err(BadBox(box_id.to_string()));
    }
    let unix = started.duration_since(UNIX_EPOCH).unwrap_or_default();
    let id = format!("{}-{:08x}", unix.as_secs(), rand::random::<u32>());
    let metadata = json!({
        "message_id": id,
        "box_id": box_id,
        "call_id": details.call_id,
        "caller_id_name": details.caller_id_name,
        "caller_id_number": details.caller_id_number,
        "timestamp": unix.as_secs(),
        "length_ms": recording.length().as_millis() as u64,
        "media": format!("{id}.wav"),
    });
    Ok(Message {
        account_id: details.account_id.clone(),
        box_id: box_id.to_string(),
        message_id: id,
        metadata,
        audio: Arc::from(wav_bytes(&recording.samples)),
    })
}

/// `samples` as a WAV file: 8 kHz, mono, 16-bit PCM.
pub fn wav_bytes(samples: &[i16]) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    {
        let mut writer = hound::WavWriter::new(&mut out, spec).expect("writing to memory");
        for sample in samples {
            writer.write_sample(*sample).expect("writing to memory");
        }
        writer.finalize().expect("writing to memory");
    }
    out.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711::Law;
    use crate::media::pacer::{Pacer, Prompt};
    use crate::media::rtp::{RtpPorts, RtpSource};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_recording_ends_at_the_call_end_or_the_silence_and_is_stored_as_a_wav() {
        let ports = RtpPorts::new("127.0.0.1".parse().unwrap(), 42000, 42999);
        let socket = ports.bind().await.unwrap();
        let caller = ports.bind().await.unwrap();
        let stranger = ports.bind().await.unwrap();
        let to = socket.local_addr().unwrap();
        let mut source = RtpSource::new(Some(caller.local_addr().unwrap()), None);
        let sending = tokio::spawn(async move {
            let audio = Prompt::tone(300.0, 400).encoded(Law::A);
            let pacer = Pacer::start();
            // A stranger's audio to the same port, at the same time, is not the caller's.
            let noise = Prompt::tone(800.0, 1000).encoded(Law::A);
            tokio::join!(
                pacer.play(Arc::new(caller), to, audio),
                pacer.play(Arc::new(stranger), to, noise)
            );
        });
        let recording = record(
            &socket,
            &mut source,
            Duration::from_secs(10),
            Duration::from_millis(300),
            std::future::pending(),
        )
        .await;
        sending.await.unwrap();
        assert_eq!(recording.end, RecordingEnd::NoMedia);
        assert_eq!(recording.samples.len(), 3200, "400 ms at 8 kHz");
        assert_eq!(recording.length(), Duration::from_millis(400));

        let details = CallDetails {
            account_id: "acme".into(),
            call_id: "c1".into(),
            caller_id_number: Some("+15550001234".into()),
            ..CallDetails::default()
        };
        let stored = message("box1", &details, SystemTime::now(), &recording).unwrap();
        let reader = hound::WavReader::new(Cursor::new(&stored.audio[..])).unwrap();
        assert_eq!(reader.spec().sample_rate, 8000);
        assert_eq!(reader.spec().channels, 1);
        assert_eq!(reader.len(), 3200);
        assert_eq!((&*stored.account_id, &*stored.box_id), ("acme", "box1"));
        assert_eq!(stored.metadata["message_id"], stored.message_id);
        assert_eq!(stored.metadata["length_ms"], 400);
        assert_eq!(stored.metadata["caller_id_number"], "+15550001234");
        assert!(message("../escape", &details, SystemTime::now(), &recording).is_err());

        let ended = record(
            &socket,
            &mut source,
            Duration::from_secs(10),
            Duration::from_secs(10),
            async {},
        )
        .await;
        assert_eq!(ended.end, RecordingEnd::CallEnded);
    }

    /// An RTP packet of payload type `pt` from `socket` to `to`.
    async fn send_packet(
        socket: &tokio::net::UdpSocket,
        to: std::net::SocketAddr,
        pt: u8,
        seq: u16,
    ) {
        let mut packet = vec![
            0x80,
            pt,
            (seq >> 8) as u8,
            seq as u8,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            1,
        ];
        packet.extend(std::iter::repeat_n(0xd5u8, 160));
        socket.send_to(&packet, to).await.unwrap();
    }

    #[tokio::test]
    async fn telephone_events_and_comfort_noise_do_not_keep_a_recording_open() {
        let ports = RtpPorts::new("127.0.0.1".parse().unwrap(), 42000, 42999);
        let socket = ports.bind().await.unwrap();
        let caller = ports.bind().await.unwrap();
        let to = socket.local_addr().unwrap();
        let mut source = RtpSource::new(Some(caller.local_addr().unwrap()), None);
        let sending = tokio::spawn(async move {
            // 200 ms of PCMA, then 2 s of DTMF events (101) and comfort noise (13).
            for seq in 0..10u16 {
                send_packet(&caller, to, 8, seq).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            for seq in 10..110u16 {
                send_packet(&caller, to, if seq % 2 == 0 { 101 } else { 13 }, seq).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let started = std::time::Instant::now();
        let recording = record(
            &socket,
            &mut source,
            Duration::from_secs(10),
            Duration::from_millis(500),
            std::future::pending(),
        )
        .await;
        let took = started.elapsed();
        assert_eq!(recording.end, RecordingEnd::NoMedia);
        assert_eq!(recording.samples.len(), 1600, "the 200 ms of audio");
        assert!(
            took < Duration::from_millis(1500),
            "the events kept it open for {took:?}"
        );
        sending.abort();
    }
}
