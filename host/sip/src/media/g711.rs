//! G.711 (ITU-T G.711): 8-bit μ-law (PCMU, RTP payload type 0) and A-law (PCMA, type 8) to
//! 16-bit linear PCM and back. Decoding is what recording needs; encoding makes the tone played
//! before a voicemail recording.

/// One of the two G.711 laws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// μ-law, RTP payload type 0.
    Mu,
    /// A-law, RTP payload type 8.
    A,
}

impl Law {
    /// The law of an RTP static payload type (0 or 8).
    pub fn from_payload_type(payload_type: u8) -> Option<Law> {
        match payload_type {
            0 => Some(Law::Mu),
            8 => Some(Law::A),
            _ => None,
        }
    }

    /// Its RTP static payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            Law::Mu => 0,
            Law::A => 8,
        }
    }

    /// Its name in SDP `a=rtpmap` lines.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Law::Mu => "PCMU",
            Law::A => "PCMA",
        }
    }

    /// One byte as a linear sample.
    pub fn decode(self, byte: u8) -> i16 {
        match self {
            Law::Mu => MU_TABLE[usize::from(byte)],
            Law::A => A_TABLE[usize::from(byte)],
        }
    }

    /// One linear sample as a byte.
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Mu => encode_mu(sample),
            Law::A => encode_a(sample),
        }
    }
}

const MU_TABLE: [i16; 256] = mu_table();
const A_TABLE: [i16; 256] = a_table();

const fn mu_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = decode_mu(i as u8);
        i += 1;
    }
    table
}

const fn a_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = decode_a(i as u8);
        i += 1;
    }
    table
}

/// μ-law: the byte is stored inverted; sign, 3-bit segment, 4-bit mantissa, with a bias of 0x84.
const fn decode_mu(byte: u8) -> i16 {
    let byte = !byte;
    let sign = byte & 0x80;
    let exponent = (byte >> 4) & 0x07;
    let mantissa = (byte & 0x0f) as i16;
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    if sign != 0 { -magnitude } else { magnitude }
}

/// A-law: even bits inverted (XOR 0x55); sign, 3-bit segment, 4-bit mantissa.
const fn decode_a(byte: u8) -> i16 {
    let byte = byte ^ 0x55;
    let sign = byte & 0x80;
    let exponent = (byte >> 4) & 0x07;
    let mantissa = (byte & 0x0f) as i16;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    // A-law's sign bit set means positive.
    if sign != 0 { magnitude } else { -magnitude }
}

fn encode_mu(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut value = i32::from(sample);
    let sign: u8 = if value < 0 {
        value = -value;
        0x80
    } else {
        0
    };
    value = value.min(CLIP) + BIAS;
    // The segment: the highest set bit, from bit 14 (segment 7) down to bit 7 (segment 0).
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && value & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (value >> (exponent + 3)) & 0x0f;
    !(sign | ((exponent << 4) as u8) | mantissa as u8)
}

fn encode_a(sample: i16) -> u8 {
    let mut value = i32::from(sample);
    let sign = if value >= 0 {
        0x80
    } else {
        value = -value - 1;
        0
    };
    value = value.min(32767);
    let byte = if value < 256 {
        (value >> 4) as u8
    } else {
        let mut exponent = 1;
        while exponent < 7 && value >= (256 << exponent) {
            exponent += 1;
        }
        ((exponent << 4) as u8) | (((value >> (exponent + 3)) & 0x0f) as u8)
    };
    (sign | byte) ^ 0x55
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mu_law_decodes_to_the_standard_values() {
        // ITU-T G.711 Table 2a: the extremes, zero and a few codes in between.
        assert_eq!(Law::Mu.decode(0x00), -32124);
        assert_eq!(Law::Mu.decode(0x80), 32124);
        assert_eq!(Law::Mu.decode(0xFF), 0);
        assert_eq!(Law::Mu.decode(0x7F), 0);
        assert_eq!(Law::Mu.decode(0xFE), 8);
        assert_eq!(Law::Mu.decode(0x7E), -8);
        assert_eq!(Law::Mu.decode(0xF0), 120);
        assert_eq!(Law::Mu.decode(0xEF), 132);
        assert_eq!(Law::Mu.decode(0x8F), 16764);
        assert_eq!(Law::Mu.decode(0x0F), -16764);
    }

    #[test]
    fn a_law_decodes_to_the_standard_values() {
        // ITU-T G.711 Table 1a.
        assert_eq!(Law::A.decode(0xD5), 8);
        assert_eq!(Law::A.decode(0x55), -8);
        assert_eq!(Law::A.decode(0xAA), 32256);
        assert_eq!(Law::A.decode(0x2A), -32256);
        assert_eq!(Law::A.decode(0xD4), 24);
        assert_eq!(Law::A.decode(0xC5), 264);
        assert_eq!(Law::A.decode(0xE5), 1056);
    }

    #[test]
    fn encoding_round_trips_every_code() {
        for law in [Law::Mu, Law::A] {
            for byte in 0..=255u8 {
                let sample = law.decode(byte);
                let again = law.encode(sample);
                assert_eq!(
                    law.decode(again),
                    sample,
                    "{law:?} {byte:#04x} decodes to {sample}, which encodes to {again:#04x}"
                );
            }
        }
        assert_eq!(Law::Mu.encode(0), 0xFF);
        assert_eq!(Law::A.encode(0), 0xD5);
        assert_eq!(Law::Mu.encode(i16::MAX), 0x80);
        assert_eq!(Law::Mu.encode(i16::MIN), 0x00);
    }
}
