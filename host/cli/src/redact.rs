//! What never reaches the log: credentials. rsipstack logs every SIP message it sends and
//! receives (at `info`, as `raw_message`), and an `Authorization` or `Proxy-Authorization`
//! header is a digest response that a reader of the log could replay or attack offline. Every
//! field of every event goes through [`credentials`] before it is written, at any level.

use std::borrow::Cow;
use std::fmt;

use tracing::field::Field;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{Writer, debug_fn};

/// What stands in for a header's value.
pub const REDACTED: &str = "[redacted]";

/// `text` with the value of every `Authorization:` and `Proxy-Authorization:` header (any
/// case) replaced by [`REDACTED`], up to the end of its line: a real line break, or an
/// escaped one (`\r`, `\n`) as a field printed with `{:?}` has it.
pub fn credentials(text: &str) -> Cow<'_, str> {
    const NAME: &str = "authorization:";
    let lower = text.to_ascii_lowercase();
    if !lower.contains(NAME) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    while let Some(at) = lower[rest..].find(NAME) {
        let value = rest + at + NAME.len();
        out.push_str(&text[rest..value]);
        out.push(' ');
        out.push_str(REDACTED);
        rest = line_end(text, value);
    }
    out.push_str(&text[rest..]);
    Cow::Owned(out)
}

/// Where the line that `from` is in ends: at a CR or LF, or at a `\r` or `\n` escape.
fn line_end(text: &str, from: usize) -> usize {
    let bytes = text.as_bytes();
    let mut at = from;
    while at < bytes.len() {
        match bytes[at] {
            b'\r' | b'\n' => return at,
            b'\\' if matches!(bytes.get(at + 1), Some(b'r' | b'n')) => return at,
            _ => at += 1,
        }
    }
    at
}

/// The fields formatter of the log: each field as `name=value` (the message as it is),
/// separated by spaces, with [`credentials`] applied to every value.
pub fn fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    debug_fn(
        |writer: &mut Writer<'_>, field: &Field, value: &dyn fmt::Debug| {
            let text = format!("{value:?}");
            let text = credentials(&text);
            if field.name() == "message" {
                write!(writer, "{text}")
            } else {
                write!(writer, "{}={text}", field.name())
            }
        },
    )
    .delimited(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_values_are_redacted_to_their_line_end_in_any_form() {
        let raw = "REGISTER sip:a SIP/2.0\r\nAuthorization: Digest username=\"1001\", \
                   response=\"c0ffee\"\r\nproxy-authorization: Digest response=\"beef\"\nTo: <sip:a>";
        let out = credentials(raw);
        assert!(!out.contains("c0ffee") && !out.contains("beef"), "{out}");
        assert!(out.contains("Authorization: [redacted]\r\n"), "{out}");
        assert!(
            out.contains("proxy-authorization: [redacted]\nTo: <sip:a>"),
            "{out}"
        );
        // As a field printed with {:?}: escaped line ends and quotes.
        let debug = format!("{raw:?}");
        let out = credentials(&debug);
        assert!(!out.contains("c0ffee") && !out.contains("beef"), "{out}");
        assert!(out.contains("Authorization: [redacted]\\r\\n"), "{out}");
        // Nothing to redact: the same text, not copied.
        assert!(matches!(
            credentials("WWW-Authenticate: Digest nonce=\"x\""),
            Cow::Borrowed(_)
        ));
    }
}
