//! Dialed numbers as KAZOO normalises them: its default `e164_converters`.

/// `number` in E.164 by KAZOO's default rules: ten NANP digits, or `1` and ten digits, get
/// `+1`; `011` or `00` followed by at least five digits becomes `+`; anything else (already
/// E.164, or an extension) is left as it is.
pub fn normalize_e164(number: &str) -> String {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let nanp = |s: &str| {
        let b = s.as_bytes();
        s.len() == 10 && digits(s) && (b'2'..=b'9').contains(&b[0]) && (b'2'..=b'9').contains(&b[3])
    };
    let national = number
        .strip_prefix("+1")
        .or_else(|| number.strip_prefix('1'))
        .filter(|rest| nanp(rest))
        .or(Some(number).filter(|n| nanp(n)));
    if let Some(national) = national {
        return format!("+1{national}");
    }
    if !number.starts_with('+') {
        for international in ["011", "00"] {
            if let Some(rest) = number.strip_prefix(international)
                && rest.len() >= 5
                && digits(rest)
            {
                return format!("+{rest}");
            }
        }
    }
    number.to_string()
}

/// Whether a normalised number is globally routable (E.164), not an extension.
pub fn is_global(normalized: &str) -> bool {
    normalized
        .strip_prefix('+')
        .is_some_and(|rest| rest.len() >= 7 && rest.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kazoos_default_rules() {
        assert_eq!(normalize_e164("4158867900"), "+14158867900");
        assert_eq!(normalize_e164("14158867900"), "+14158867900");
        assert_eq!(normalize_e164("+14158867900"), "+14158867900");
        assert_eq!(normalize_e164("011442071234567"), "+442071234567");
        assert_eq!(normalize_e164("00442071234567"), "+442071234567");
        assert_eq!(normalize_e164("+442071234567"), "+442071234567");
        assert_eq!(
            normalize_e164("+4158867900"),
            "+4158867900",
            "country code 4, not NANP"
        );
        // Not NANP (area code starting with 1), extensions, short international: unchanged.
        assert_eq!(normalize_e164("1158867900"), "1158867900");
        assert_eq!(normalize_e164("100"), "100");
        assert_eq!(normalize_e164("*97"), "*97");
        assert_eq!(normalize_e164("001"), "001");
        assert!(is_global("+14158867900"));
        assert!(!is_global("100"));
        assert!(!is_global("no_match"));
    }
}
