//! Numbers as KAZOO prints them in emails (`knm_util:pretty_print/1` with the default
//! `number_manager` settings): a value is normalised to E.164 by the default converters, and
//! a North American number is printed `(415) 886 - 7900`; anything else (names, `anonymous`,
//! extensions, other countries) is printed as it came.

/// The format KAZOO's US classifiers share: skip `+1`, then `(###) ### - ####`.
const NANP_FORMAT: &str = "SS(###) ### - ####";

/// `value` pretty-printed; a missing value is `unknown`.
pub fn pretty_print(value: Option<&str>) -> String {
    let Some(value) = value else {
        return "unknown".to_string();
    };
    let normalized = normalize(value);
    // Every classifier with a format (toll-free, toll, Caribbean, DID) is a +1 number and
    // formats the same; a +1 number no classifier claims is formatted too. Otherwise the
    // original value comes back, not the normalised one.
    if normalized.starts_with("+1") {
        apply_format(&normalized, NANP_FORMAT)
    } else {
        value.to_string()
    }
}

/// The default `e164_converters`: 10 NANP digits (with or without `1` or `+1`) become
/// `+1…`; `011…` and `00…` with at least 5 digits become `+…`; 8 or more digits not starting
/// with 0 or 1 become `+…`. A value that starts with `+` is kept.
fn normalize(value: &str) -> String {
    if value.starts_with('+') {
        return value.to_string();
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let nanp = |s: &str| {
        s.len() == 10
            && digits(s)
            && (b'2'..=b'9').contains(&s.as_bytes()[0])
            && (b'2'..=b'9').contains(&s.as_bytes()[3])
    };
    let national = value.strip_prefix('1').filter(|rest| nanp(rest));
    if let Some(rest) = national.or(nanp(value).then_some(value)) {
        return format!("+1{rest}");
    }
    for prefix in ["011", "00"] {
        if let Some(rest) = value.strip_prefix(prefix)
            && rest.len() >= 5
            && digits(rest)
        {
            return format!("+{rest}");
        }
    }
    if value.len() >= 8 && digits(value) && (b'2'..=b'9').contains(&value.as_bytes()[0]) {
        return format!("+{value}");
    }
    value.to_string()
}

/// KAZOO's format language: `S` skips a character, `#` copies one, `*` copies the rest, `\x`
/// is a literal `x`, anything else is copied; once the number runs out only literals are.
fn apply_format(number: &str, format: &str) -> String {
    let mut digits = number.chars();
    let mut out = String::new();
    let mut spec = format.chars();
    while let Some(c) = spec.next() {
        match c {
            'S' => {
                digits.next();
            }
            '#' => out.extend(digits.next()),
            '*' => out.extend(digits.by_ref()),
            '\\' => out.extend(spec.next()),
            other => out.push(other),
        }
    }
    out
}

/// teletype's `name_number`: `Name(Number)`, or the one that is known, or the number when they
/// are equal; none when neither is known.
pub fn name_number(name: &str, number: &str) -> Option<String> {
    match (name, number) {
        ("unknown", "unknown") => None,
        ("unknown", number) => Some(number.to_string()),
        (name, "unknown") => Some(name.to_string()),
        (name, number) if name == number => Some(number.to_string()),
        (name, number) => Some(format!("{name}({number})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_knm_util_prints_them() {
        assert_eq!(pretty_print(Some("+14158867900")), "(415) 886 - 7900");
        assert_eq!(pretty_print(Some("4158867900")), "(415) 886 - 7900");
        assert_eq!(pretty_print(Some("14158867900")), "(415) 886 - 7900");
        assert_eq!(pretty_print(Some("+442079460000")), "+442079460000");
        assert_eq!(pretty_print(Some("00442079460000")), "00442079460000");
        assert_eq!(pretty_print(Some("100")), "100");
        assert_eq!(pretty_print(Some("anonymous")), "anonymous");
        assert_eq!(pretty_print(Some("John")), "John");
        assert_eq!(pretty_print(None), "unknown");
        // A +1 number too short for any classifier still takes the format, literals and all.
        assert_eq!(pretty_print(Some("+1234")), "(234)  - ");
    }

    #[test]
    fn name_number_follows_teletypes_rules() {
        assert_eq!(
            name_number("John", "(415) 886 - 7900").unwrap(),
            "John((415) 886 - 7900)"
        );
        assert_eq!(name_number("unknown", "100").unwrap(), "100");
        assert_eq!(name_number("John", "unknown").unwrap(), "John");
        assert_eq!(name_number("100", "100").unwrap(), "100");
        assert_eq!(name_number("unknown", "unknown"), None);
    }
}
