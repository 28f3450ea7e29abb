//! The host's typed errors as sentences, so that a module can pass them on with `?` where it
//! returns `Result<_, String>`. (wit-bindgen's own `Display` for them prints the variant as
//! `Debug` does.)

use crate::{ControlError, PublishError, RegisterError};

impl From<ControlError> for String {
    fn from(error: ControlError) -> Self {
        match error {
            ControlError::CallerGone => "the caller is gone".to_string(),
            ControlError::Invalid(why) => format!("refused: {why}"),
            ControlError::Failed(why) => format!("the switch failed: {why}"),
        }
    }
}

impl From<PublishError> for String {
    fn from(error: PublishError) -> Self {
        match error {
            PublishError::TooLarge(limit) => {
                format!("the notification exceeds the limit of {limit} bytes")
            }
            PublishError::Unavailable(why) => format!("the host could not publish: {why}"),
        }
    }
}

impl From<RegisterError> for String {
    fn from(error: RegisterError) -> Self {
        match error {
            RegisterError::TooLarge(limit) => {
                format!("the callback state exceeds the limit of {limit} bytes")
            }
            RegisterError::TooMany(max) => {
                format!("the call has {max} termination callbacks of this module already")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_sentences() {
        assert_eq!(String::from(ControlError::CallerGone), "the caller is gone");
        assert_eq!(
            String::from(PublishError::TooLarge(65536)),
            "the notification exceeds the limit of 65536 bytes"
        );
        assert_eq!(
            String::from(RegisterError::TooMany(8)),
            "the call has 8 termination callbacks of this module already"
        );
    }
}
