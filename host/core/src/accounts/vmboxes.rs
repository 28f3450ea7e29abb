//! Voicemail boxes: KAZOO-style documents `accounts/<id>/vmboxes/<box_id>.json`,
//! `{"name", "mailbox": "<digits>", "owner_id": "<user_id>"}`. A `voicemail` node records into
//! the box its data names (`{"id": "<box_id>"}`); the box's messages are the store's.

use serde::{Deserialize, Deserializer};

/// The most digits a mailbox number has.
pub const MAX_MAILBOX_DIGITS: usize = 16;

/// A voicemail box document.
#[derive(Debug, Clone, Deserialize)]
pub struct VmBoxDocument {
    /// What people call it.
    pub name: String,
    /// The number that reaches it from a phone: 1 to [`MAX_MAILBOX_DIGITS`] digits.
    #[serde(deserialize_with = "mailbox")]
    pub mailbox: String,
    /// The user whose box it is.
    pub owner_id: Option<String>,
}

fn mailbox<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let number = String::deserialize(d)?;
    let digits = !number.is_empty()
        && number.len() <= MAX_MAILBOX_DIGITS
        && number.bytes().all(|b| b.is_ascii_digit());
    if digits {
        Ok(number)
    } else {
        Err(serde::de::Error::custom(format!(
            "`mailbox` is 1 to {MAX_MAILBOX_DIGITS} digits, not {number:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mailbox_is_digits() {
        let ok: VmBoxDocument =
            serde_json::from_str(r#"{"name": "Sales", "mailbox": "3001"}"#).unwrap();
        assert_eq!(ok.mailbox, "3001");
        for bad in [r#""""#, r#""30a1""#, r#""12345678901234567""#, "3001"] {
            let text = format!(r#"{{"name": "Sales", "mailbox": {bad}}}"#);
            let error = serde_json::from_str::<VmBoxDocument>(&text).unwrap_err();
            assert!(
                error.to_string().contains("mailbox") || error.to_string().contains("string"),
                "{bad}: {error}"
            );
        }
        assert!(serde_json::from_str::<VmBoxDocument>(r#"{"mailbox": "1"}"#).is_err());
    }
}
