//! ErlyDTL's meaning of values, given to minijinja: what is false, how a value prints, how HTML
//! is escaped, and the filters and functions whose Jinja namesakes mean something else.

use minijinja::value::{Rest, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State, Value};

use super::dtl::{SPACELESS_BEGIN, SPACELESS_END};

/// minijinja's global functions, which ErlyDTL has not (the front refuses calls; without them a
/// name such as `debug` is merely undefined).
const JINJA_GLOBALS: &[&str] = &["range", "dict", "debug", "namespace"];

/// ErlyDTL's falsehood (`erlydtl_runtime:is_false/1`): undefined, null, `false`, `0`, `"0"`,
/// `""` and `[]`. Unlike Django and Jinja, the string `"0"` is false; an empty object is true.
pub fn truthy(value: &Value) -> bool {
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => false,
        ValueKind::String => value.as_str().is_some_and(|s| !s.is_empty() && s != "0"),
        ValueKind::Map => true,
        _ => value.is_true(),
    }
}

/// How ErlyDTL prints a value: nothing for undefined and null, `true` and `false`, a list's
/// items one after another.
pub fn text(value: &Value) -> String {
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => String::new(),
        ValueKind::Bool => if value.is_true() { "true" } else { "false" }.to_string(),
        ValueKind::String => value.as_str().unwrap_or_default().to_string(),
        ValueKind::Seq | ValueKind::Iterable => value
            .try_iter()
            .map(|items| items.map(|item| text(&item)).collect())
            .unwrap_or_default(),
        _ => value.to_string(),
    }
}

/// HTML escaping as ErlyDTL does it: `& < > " '` as `&amp; &lt; &gt; &quot; &#039;`.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#039;"),
            c => out.push(c),
        }
    }
    out
}

/// The formatter: [`text`], escaped where the template escapes and the value is not safe.
/// A value never prints the front's `spaceless` markers.
fn format(out: &mut Output, state: &State, value: &Value) -> Result<(), Error> {
    let mut text = text(value);
    if text.contains([SPACELESS_BEGIN, SPACELESS_END]) {
        text.retain(|c| c != SPACELESS_BEGIN && c != SPACELESS_END);
    }
    let written = if state.auto_escape() == AutoEscape::Html && !value.is_safe() {
        out.write_str(&escape_html(&text))
    } else {
        out.write_str(&text)
    };
    written.map_err(|_| Error::new(ErrorKind::WriteFailure, "cannot write the output"))
}

/// Registers ErlyDTL's formatter, filters and functions on `env`, given `max_bytes` (what
/// `add` may make of two values).
pub fn install(env: &mut Environment<'static>, max_bytes: usize) {
    for global in JINJA_GLOBALS {
        env.remove_global(global);
    }
    env.set_formatter(format);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    env.add_function("truthy", |value: Value| truthy(&value));
    env.add_function("firstof", |values: Rest<Value>| {
        values
            .iter()
            .find(|value| truthy(value))
            .cloned()
            .unwrap_or_else(|| Value::from(""))
    });
    env.add_filter(
        "default",
        |value: Value, fallback: Value| {
            if truthy(&value) { value } else { fallback }
        },
    );
    env.add_filter("default_if_none", |value: Value, fallback: Value| {
        if value.is_undefined() || value.is_none() {
            fallback
        } else {
            value
        }
    });
    env.add_filter("capfirst", |value: Value| {
        let text = text(&value);
        let mut chars = text.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => String::new(),
        }
    });
    env.add_filter("add", move |value: Value, other: Value| {
        let number = |v: &Value| -> Option<i64> {
            i64::try_from(v.clone())
                .ok()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        };
        match (number(&value), number(&other)) {
            (Some(a), Some(b)) => Ok(Value::from(a.saturating_add(b))),
            _ => {
                let (a, b) = (text(&value), text(&other));
                if a.len() + b.len() > max_bytes {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        format!("`add` would make more than render_max_bytes ({max_bytes} bytes)"),
                    ));
                }
                Ok(Value::from(a + &b))
            }
        }
    });
    env.add_filter("escape", |value: Value| {
        Value::from_safe_string(escape_html(&text(&value)))
    });
    env.add_filter("date", |value: Value, format: String| {
        match value
            .as_str()
            .and_then(|s| s.parse::<jiff::civil::DateTime>().ok())
        {
            Some(date) => super::date::format(date, &format),
            None => text(&value),
        }
    });
}

/// Django's `spaceless`: whitespace between a `>` and the next `<` goes, and the ends are
/// trimmed.
pub fn spaceless(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('>') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let trimmed = rest.trim_start();
        if trimmed.starts_with('<') {
            rest = trimmed;
        }
    }
    out.push_str(rest);
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_as_a_string_is_false_and_values_print_as_erlydtl_prints_them() {
        assert!(!truthy(&Value::from("0")));
        assert!(!truthy(&Value::from("")));
        assert!(!truthy(&Value::from(0)));
        assert!(!truthy(&Value::from(Vec::<Value>::new())));
        assert!(!truthy(&Value::UNDEFINED));
        assert!(truthy(&Value::from("00")));
        assert_eq!(text(&Value::from(true)), "true");
        assert_eq!(text(&Value::from(vec!["email", "sms"])), "emailsms");
        assert_eq!(text(&Value::from(())), "");
        assert_eq!(
            escape_html("O'Brien <Pat> & \"x\""),
            "O&#039;Brien &lt;Pat&gt; &amp; &quot;x&quot;"
        );
    }
}
