//! SIP final responses and the Q.850 hangup cause names FreeSWITCH (and so KAZOO) reports for
//! them, both ways: a leg's final response becomes the cause a `user` node branches on, and a
//! cause the host hangs up an unanswered call with becomes the final response to the caller.

use cfhost_core::call::{Hangup, HangupCause};

/// The cause FreeSWITCH reports for a leg that ended with SIP `code`.
pub fn cause_of_sip(code: u16) -> HangupCause {
    let name = match code {
        200..=299 => "NORMAL_CLEARING",
        401 | 402 | 403 | 407 | 603 => "CALL_REJECTED",
        404 => "UNALLOCATED_NUMBER",
        485 | 604 => "NO_ROUTE_DESTINATION",
        408 | 504 => "RECOVERY_ON_TIMER_EXPIRE",
        410 => "NUMBER_CHANGED",
        413 | 414 | 416 | 420 | 421 | 423 | 505 | 513 => "INTERWORKING",
        480 => "NO_USER_RESPONSE",
        400 | 481 | 500 | 503 => "NORMAL_TEMPORARY_FAILURE",
        486 | 600 => "USER_BUSY",
        484 => "INVALID_NUMBER_FORMAT",
        488 | 606 => "INCOMPATIBLE_DESTINATION",
        502 => "NETWORK_OUT_OF_ORDER",
        405 => "SERVICE_UNAVAILABLE",
        406 | 415 | 501 => "SERVICE_NOT_IMPLEMENTED",
        482 | 483 => "EXCHANGE_ROUTING_ERROR",
        487 => "ORIGINATOR_CANCEL",
        _ => "NORMAL_UNSPECIFIED",
    };
    HangupCause::from(name)
}

/// The hangup of a leg that ended with SIP `code`: its cause and `sip:<code>`.
pub fn hangup_of_sip(code: u16) -> Hangup {
    Hangup::new(cause_of_sip(code), code)
}

/// The final response for an unanswered call the host hangs up with `cause`.
pub fn sip_of_cause(cause: &HangupCause) -> u16 {
    match cause.as_str() {
        "USER_BUSY" => 486,
        "NO_ANSWER" | "NO_USER_RESPONSE" | "NORMAL_CLEARING" => 480,
        "CALL_REJECTED" => 603,
        "UNALLOCATED_NUMBER" | "USER_NOT_REGISTERED" => 404,
        "NO_ROUTE_DESTINATION" => 404,
        "NUMBER_CHANGED" => 410,
        "INVALID_NUMBER_FORMAT" => 484,
        "INCOMPATIBLE_DESTINATION" => 488,
        "RECOVERY_ON_TIMER_EXPIRE" => 408,
        "ORIGINATOR_CANCEL" => 487,
        "SERVICE_NOT_IMPLEMENTED" => 501,
        "NETWORK_OUT_OF_ORDER" => 502,
        _ => 503,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_codes_map_to_freeswitch_causes_and_back() {
        assert_eq!(cause_of_sip(486), HangupCause::USER_BUSY);
        assert_eq!(cause_of_sip(404), HangupCause::UNALLOCATED_NUMBER);
        assert_eq!(cause_of_sip(603), HangupCause::CALL_REJECTED);
        assert_eq!(cause_of_sip(487), HangupCause::ORIGINATOR_CANCEL);
        assert_eq!(cause_of_sip(480), "NO_USER_RESPONSE");
        assert_eq!(cause_of_sip(408), "RECOVERY_ON_TIMER_EXPIRE");
        assert_eq!(cause_of_sip(503), HangupCause::NORMAL_TEMPORARY_FAILURE);
        assert_eq!(cause_of_sip(599), "NORMAL_UNSPECIFIED");
        assert_eq!(hangup_of_sip(486).code, "sip:486");
        for code in [486, 404, 603, 487, 408, 484, 488] {
            assert_eq!(sip_of_cause(&cause_of_sip(code)), code, "{code}");
        }
        assert_eq!(sip_of_cause(&HangupCause::NO_ANSWER), 480);
        assert_eq!(sip_of_cause(&HangupCause::NORMAL_TEMPORARY_FAILURE), 503);
    }
}
