//! The little SDP cfhost reads and writes itself (a bridge passes SDP through untouched): the
//! caller's audio offer, to know where to send a tone and which G.711 law to use, and the answer
//! cfhost gives when it answers a call (for voicemail) with its own RTP port.

use std::net::{IpAddr, SocketAddr};

use sdp_types::{Attribute, Connection, Media, Origin, Session, Time};

use super::g711::Law;

/// `Content-Type: application/sdp`, the type of every body cfhost sends.
pub fn content_type() -> rsipstack::sip::Header {
    rsipstack::sip::Header::ContentType("application/sdp".into())
}

/// An SDP body that cfhost cannot use.
#[derive(Debug, thiserror::Error)]
pub enum SdpError {
    #[error("the SDP does not parse: {0}")]
    Parse(String),
    #[error("the SDP offers no audio stream")]
    NoAudio,
    #[error("the SDP's connection address `{0}` is not an IP address")]
    Address(String),
    #[error("the SDP offers neither PCMU nor PCMA")]
    NoG711,
}

/// The caller's audio offer, as far as cfhost needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioOffer {
    /// Where the caller receives RTP.
    pub address: SocketAddr,
    /// The G.711 law to use: the first of PCMU and PCMA the offer lists.
    pub law: Law,
}

impl AudioOffer {
    /// Reads the first audio stream of `body`.
    pub fn parse(body: &[u8]) -> Result<AudioOffer, SdpError> {
        let session = Session::parse(body).map_err(|e| SdpError::Parse(e.to_string()))?;
        let media = session
            .medias
            .iter()
            .find(|m| m.media == "audio" && m.port != 0)
            .ok_or(SdpError::NoAudio)?;
        let connection = media
            .connections
            .first()
            .or(session.connection.as_ref())
            .ok_or_else(|| SdpError::Address(String::new()))?;
        let host = connection
            .connection_address
            .split('/')
            .next()
            .unwrap_or_default();
        let ip: IpAddr = host
            .parse()
            .map_err(|_| SdpError::Address(host.to_string()))?;
        let law = media
            .fmt
            .split_whitespace()
            .filter_map(|pt| pt.parse::<u8>().ok())
            .find_map(Law::from_payload_type)
            .ok_or(SdpError::NoG711)?;
        Ok(AudioOffer {
            address: SocketAddr::new(ip, media.port),
            law,
        })
    }
}

/// cfhost's answer: one audio stream at `local` in `law`, 20 ms packets, send and receive.
pub fn answer(local: SocketAddr, law: Law, session_id: u64) -> Vec<u8> {
    let ip = local.ip();
    let pt = law.payload_type();
    let mut session = Session::new(Origin::with_ip_addr(session_id, 1, ip), "cfhost");
    session.connection = Some(Connection::from_ip_addr(ip));
    session.times.push(Time::new(0, 0));
    session.medias.push(Media {
        media: "audio".to_string(),
        port: local.port(),
        num_ports: None,
        proto: "RTP/AVP".to_string(),
        fmt: pt.to_string(),
        media_title: None,
        connections: Vec::new(),
        bandwidths: Vec::new(),
        key: None,
        attributes: vec![
            Attribute {
                attribute: "rtpmap".to_string(),
                value: Some(format!("{pt} {}/8000", law.encoding_name())),
            },
            Attribute {
                attribute: "ptime".to_string(),
                value: Some("20".to_string()),
            },
            Attribute {
                attribute: "sendrecv".to_string(),
                value: None,
            },
        ],
    });
    let mut out = Vec::new();
    session
        .write(&mut out)
        .expect("writing to a Vec cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
        c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 0 101\r\n\
        a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

    #[test]
    fn the_first_g711_law_offered_is_used() {
        let offer = AudioOffer::parse(OFFER.as_bytes()).unwrap();
        assert_eq!(offer.address, "127.0.0.1:6000".parse().unwrap());
        assert_eq!(offer.law, Law::A);
        let g729 = OFFER.replace("RTP/AVP 8 0 101", "RTP/AVP 18");
        assert!(matches!(
            AudioOffer::parse(g729.as_bytes()),
            Err(SdpError::NoG711)
        ));
        assert!(AudioOffer::parse(b"not sdp at all").is_err());
    }

    #[test]
    fn the_answer_offers_one_stream_that_parses_back() {
        let body = answer("127.0.0.1:20002".parse().unwrap(), Law::Mu, 7);
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(text.contains("m=audio 20002 RTP/AVP 0\r\n"), "{text}");
        assert!(text.contains("a=rtpmap:0 PCMU/8000"), "{text}");
        let back = AudioOffer::parse(&body).unwrap();
        assert_eq!(back.address.port(), 20002);
        assert_eq!(back.law, Law::Mu);
    }
}
