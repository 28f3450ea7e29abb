//! Recording a voicemail message from the caller's RTP and storing it in the account's data
//! directory: `accounts/<account>/vmboxes/<box_id>/<message_id>.wav` (8 kHz, mono, 16-bit PCM)
//! and `<message_id>.json` (caller id, call id, time, length). A recording shorter than
//! KAZOO's minimum message length (`voicemail.min_message_size`, 500 ms) is not a message.

use std::future::Future;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cfhost_core::call::CallDetails;
use cfhost_core::files::{is_plain_name, write_atomically};
use serde_json::json;
use tokio::net::UdpSocket;

use super::rtp::{SAMPLE_RATE, decode_packet};

/// KAZOO's minimum message length.
pub const MIN_MESSAGE: Duration = Duration::from_millis(500);

/// Why a recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingEnd {
    /// The call ended (the caller hung up).
    CallEnded,
    /// It reached the longest message allowed.
    MaxLength,
    /// No RTP arrived for the silence timeout.
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

/// Records the G.711 RTP arriving on `socket` until `call_over` completes, `max` of audio is
/// recorded, or no RTP arrives for `silence`.
pub async fn record(
    socket: &UdpSocket,
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
    let end = loop {
        tokio::select! {
            biased;
            () = &mut call_over => break RecordingEnd::CallEnded,
            received = tokio::time::timeout(silence, socket.recv_from(&mut buf)) => {
                let Ok(received) = received else { break RecordingEnd::NoMedia };
                if let Ok((len, _)) = received {
                    decode_packet(&buf[..len], &mut samples);
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

/// Why a message could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("`{0}` is not a voicemail box id (letters, digits, `-` and `_`)")]
    BadBox(String),
    #[error("cannot store the message in {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A message stored in a box.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub wav: PathBuf,
    pub metadata: PathBuf,
}

/// Stores `recording` as a message of `box_id` under `account_dir`, for the call `details`
/// that started at `started`.
pub fn store(
    account_dir: &Path,
    box_id: &str,
    details: &CallDetails,
    started: SystemTime,
    recording: &Recording,
) -> Result<StoredMessage, StoreError> {
    if !is_plain_name(box_id) {
        return Err(StoreError::BadBox(box_id.to_string()));
    }
    let dir = account_dir.join("vmboxes").join(box_id);
    let io = |source| StoreError::Io {
        dir: dir.clone(),
        source,
    };
    let unix = started.duration_since(UNIX_EPOCH).unwrap_or_default();
    let id = format!("{}-{:08x}", unix.as_secs(), rand::random::<u32>());
    let wav = dir.join(format!("{id}.wav"));
    let metadata = dir.join(format!("{id}.json"));
    write_atomically(&wav, &wav_bytes(&recording.samples)).map_err(io)?;
    let length = recording.length();
    let document = json!({
        "message_id": id,
        "box_id": box_id,
        "call_id": details.call_id,
        "caller_id_name": details.caller_id_name,
        "caller_id_number": details.caller_id_number,
        "timestamp": unix.as_secs(),
        "length_ms": length.as_millis() as u64,
        "media": format!("{id}.wav"),
    });
    let text = serde_json::to_vec_pretty(&document).expect("a JSON value serializes");
    write_atomically(&metadata, &text).map_err(io)?;
    Ok(StoredMessage { wav, metadata })
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
    use crate::media::rtp::RtpPorts;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_recording_ends_at_the_call_end_or_the_silence_and_is_stored_as_a_wav() {
        let ports = RtpPorts::new("127.0.0.1".parse().unwrap(), 42000, 42999);
        let socket = ports.bind().await.unwrap();
        let caller = ports.bind().await.unwrap();
        let to = socket.local_addr().unwrap();
        let sending = tokio::spawn(async move {
            let audio = Prompt::tone(300.0, 400).encoded(Law::A);
            Pacer::start().play(Arc::new(caller), to, audio).await;
        });
        let recording = record(
            &socket,
            Duration::from_secs(10),
            Duration::from_millis(300),
            std::future::pending(),
        )
        .await;
        sending.await.unwrap();
        assert_eq!(recording.end, RecordingEnd::NoMedia);
        assert_eq!(recording.samples.len(), 3200, "400 ms at 8 kHz");
        assert_eq!(recording.length(), Duration::from_millis(400));

        let dir = tempfile::tempdir().unwrap();
        let details = CallDetails {
            call_id: "c1".into(),
            caller_id_number: Some("+15550001234".into()),
            ..CallDetails::default()
        };
        let stored = store(dir.path(), "box1", &details, SystemTime::now(), &recording).unwrap();
        let reader = hound::WavReader::open(&stored.wav).unwrap();
        assert_eq!(reader.spec().sample_rate, 8000);
        assert_eq!(reader.spec().channels, 1);
        assert_eq!(reader.len(), 3200);
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&stored.metadata).unwrap()).unwrap();
        assert_eq!(meta["length_ms"], 400);
        assert_eq!(meta["caller_id_number"], "+15550001234");
        assert!(matches!(
            store(
                dir.path(),
                "../escape",
                &details,
                SystemTime::now(),
                &recording
            ),
            Err(StoreError::BadBox(_))
        ));

        let ended = record(
            &socket,
            Duration::from_secs(10),
            Duration::from_secs(10),
            async {},
        )
        .await;
        assert_eq!(ended.end, RecordingEnd::CallEnded);
    }
}
