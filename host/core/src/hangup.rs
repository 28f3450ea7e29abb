//! How a call or a leg ended: the hangup cause (a Q.850 cause name, as FreeSWITCH and so KAZOO
//! report it) and the SIP code, and where KAZOO's defaults come from.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A hangup cause as KAZOO names it (`NORMAL_CLEARING`, `NO_ANSWER`, `USER_BUSY`, ...). Any
/// name a switch reports is kept as it is; the ones cfhost itself uses are constants.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HangupCause(Cow<'static, str>);

impl HangupCause {
    /// A normal hangup by either side (Q.850 16).
    pub const NORMAL_CLEARING: HangupCause = HangupCause::named("NORMAL_CLEARING");
    /// Rang until the timeout (Q.850 19).
    pub const NO_ANSWER: HangupCause = HangupCause::named("NO_ANSWER");
    /// The far end was busy (Q.850 17).
    pub const USER_BUSY: HangupCause = HangupCause::named("USER_BUSY");
    /// The caller hung up while it rang (Q.850 487).
    pub const ORIGINATOR_CANCEL: HangupCause = HangupCause::named("ORIGINATOR_CANCEL");
    /// The far end refused the call (Q.850 21).
    pub const CALL_REJECTED: HangupCause = HangupCause::named("CALL_REJECTED");
    /// The number does not exist (Q.850 1).
    pub const UNALLOCATED_NUMBER: HangupCause = HangupCause::named("UNALLOCATED_NUMBER");
    /// A temporary failure (Q.850 41): what a fail-closed module's call is hung up with.
    pub const NORMAL_TEMPORARY_FAILURE: HangupCause =
        HangupCause::named("NORMAL_TEMPORARY_FAILURE");
    /// No cause was reported: KAZOO's default.
    pub const UNSPECIFIED: HangupCause = HangupCause::named("UNSPECIFIED");

    const fn named(name: &'static str) -> Self {
        HangupCause(Cow::Borrowed(name))
    }

    /// The cause's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for HangupCause {
    fn from(name: String) -> Self {
        HangupCause(Cow::Owned(name))
    }
}

impl From<&str> for HangupCause {
    fn from(name: &str) -> Self {
        HangupCause(Cow::Owned(name.to_string()))
    }
}

impl PartialEq<&str> for HangupCause {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for HangupCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why and how a call (or a leg that was rung) ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hangup {
    pub disposition: Option<String>,
    pub cause: HangupCause,
    /// The SIP code, as KAZOO writes it: `sip:200`, `sip:486`, ...
    pub code: String,
}

impl Hangup {
    /// A hangup with `cause` and SIP `code` (e.g. `486`), no disposition.
    pub fn new(cause: HangupCause, sip_code: u16) -> Self {
        Hangup {
            disposition: None,
            cause,
            code: format!("sip:{sip_code}"),
        }
    }
}

/// KAZOO's code when none was reported.
pub const DEFAULT_HANGUP_CODE: &str = "sip:600";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_compare_by_name_and_keep_unknown_names() {
        assert_eq!(HangupCause::NO_ANSWER, "NO_ANSWER");
        assert_eq!(HangupCause::from("NO_ANSWER"), HangupCause::NO_ANSWER);
        let odd = HangupCause::from("MEDIA_TIMEOUT".to_string());
        assert_eq!(odd.to_string(), "MEDIA_TIMEOUT");
        assert_eq!(Hangup::new(HangupCause::USER_BUSY, 486).code, "sip:486");
        assert_eq!(
            serde_json::to_string(&HangupCause::USER_BUSY).unwrap(),
            "\"USER_BUSY\""
        );
    }
}
