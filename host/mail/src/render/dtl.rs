//! The ErlyDTL front: KAZOO's templates are Django templates as ErlyDTL reads them; this
//! rewrites one into the Jinja that minijinja compiles, keeping every line where it was so that
//! errors name the template's own lines.
//!
//! | ErlyDTL | Jinja |
//! |---|---|
//! | `{{ v\|date:"l, F j" }}` | `{{ v\|date("l, F j") }}` |
//! | `{% firstof a b %}` | `{{ firstof(a, b) }}` |
//! | `{% if a and not b %}` | `{% if truthy(a) and not truthy(b) %}` (ErlyDTL's truthiness: `"0"` is false) |
//! | `{% for x in xs reversed %}`, `{% empty %}` | `{% for x in xs\|reverse %}`, `{% else %}` |
//! | `forloop.counter`, `forloop.counter0`, `forloop.first`, `forloop.last` | `loop.index`, `loop.index0`, `loop.first`, `loop.last` |
//! | `{% with a as b %}`, `{% with b=a %}` | `{% with b=a %}` |
//! | `{% autoescape on %}` | `{% autoescape true %}` |
//! | `{% spaceless %}…{% endspaceless %}` | [`SPACELESS_BEGIN`]…[`SPACELESS_END`], applied to the output after rendering |
//! | `{% comment %}…{% endcomment %}` | dropped |
//!
//! Anything else is refused with its line: another tag (`{% include %}`, `{% set %}`), an
//! unknown filter, and the Jinja that ErlyDTL does not have: function calls (`range(9)`),
//! `[...]`, arithmetic and `~`, `is` tests, inline `if`, `for ... recursive`. Expressions are
//! ErlyDTL's: variables, string and number literals, filters, and in conditions comparisons,
//! `in`, `and`, `or`, `not` and parentheses.
//!
//! `spaceless` is not a filter block because a block's output is captured apart from the
//! template's: every byte a template writes goes through the one output whose size is bounded
//! ([`super::RenderLimits`]).

/// What the front refuses, with the 1-based line where it starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DtlError {
    pub line: usize,
    pub message: String,
}

/// The filters a template may use; each has ErlyDTL's meaning (see `filters`).
pub const FILTERS: &[&str] = &[
    "add",
    "capfirst",
    "date",
    "default",
    "default_if_none",
    "escape",
    "first",
    "join",
    "last",
    "length",
    "lower",
    "safe",
    "title",
    "upper",
];

/// Where a `{% spaceless %}` block starts and ends in the output (Unicode noncharacters, which a
/// template may not contain and a printed value never carries).
pub const SPACELESS_BEGIN: char = '\u{FDD0}';
pub const SPACELESS_END: char = '\u{FDD1}';

/// Jinja's words that ErlyDTL expressions do not have.
const JINJA_ONLY: &[&str] = &["is", "if", "else", "recursive"];

/// Rewrites an ErlyDTL template into Jinja.
pub fn translate(source: &str) -> Result<String, DtlError> {
    if let Some(at) = source.find([SPACELESS_BEGIN, SPACELESS_END]) {
        return Err(DtlError {
            line: 1 + newlines(&source[..at]),
            message: "the template contains a Unicode noncharacter (U+FDD0 or U+FDD1)".to_string(),
        });
    }
    let mut out = String::with_capacity(source.len() + source.len() / 8);
    let mut rest = source;
    let mut line = 1;
    // Open block tags and their lines, to refuse an `end` that closes the wrong one.
    let mut open: Vec<(&'static str, usize)> = Vec::new();
    while let Some(at) = find_tag(rest) {
        let (text, tag) = rest.split_at(at);
        out.push_str(text);
        line += newlines(text);
        let closer = match &tag[..2] {
            "{{" => "}}",
            "{%" => "%}",
            _ => "#}",
        };
        let end = find_closer(&tag[2..], closer).ok_or_else(|| DtlError {
            line,
            message: format!("`{}` is never closed with `{closer}`", &tag[..2]),
        })? + 2;
        let inner = &tag[2..end];
        let whole = &tag[..end + 2];
        let breaks = "\n".repeat(newlines(whole));
        rest = &tag[end + 2..];
        match &tag[..2] {
            "{{" => {
                let expr = expression(inner.trim(), line)?;
                out.push_str(&format!("{{{{ {expr} {breaks}}}}}"));
            }
            "{#" => out.push_str(whole),
            _ => {
                let (word, args) = split_word(inner.trim());
                if word == "comment" {
                    let close = find_endcomment(rest).ok_or_else(|| DtlError {
                        line,
                        message: "`{% comment %}` is never closed with `{% endcomment %}`"
                            .to_string(),
                    })?;
                    let skipped = &rest[..close.end];
                    let breaks = "\n".repeat(newlines(whole) + newlines(skipped));
                    out.push_str(&format!("{{# {breaks}#}}"));
                    line += newlines(whole) + newlines(skipped);
                    rest = &rest[close.end..];
                    continue;
                }
                match statement(word, args, line, &mut open)? {
                    Tag::Prints(expr) => out.push_str(&format!("{{{{ {expr} {breaks}}}}}")),
                    Tag::Statement(body) => out.push_str(&format!("{{% {body} {breaks}%}}")),
                    Tag::Marker(marker) => {
                        out.push(marker);
                        out.push_str(&breaks);
                    }
                }
            }
        }
        line += newlines(whole);
    }
    out.push_str(rest);
    if let Some((block, opened)) = open.last() {
        return Err(DtlError {
            line: *opened,
            message: format!("`{{% {block} %}}` is never closed"),
        });
    }
    Ok(out)
}

fn newlines(text: &str) -> usize {
    text.bytes().filter(|&b| b == b'\n').count()
}

/// Where the next `{{`, `{%` or `{#` starts.
fn find_tag(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(1))
        .find(|&i| bytes[i] == b'{' && matches!(bytes[i + 1], b'{' | b'%' | b'#'))
}

/// Where `closer` is in `text`, outside string literals.
fn find_closer(text: &str, closer: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut quote = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if text[i..].starts_with(closer) => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

/// The range of the next `{% endcomment %}` in `text`, up to its end.
fn find_endcomment(text: &str) -> Option<std::ops::Range<usize>> {
    let mut from = 0;
    while let Some(at) = text[from..].find("{%") {
        let start = from + at;
        let end = find_closer(&text[start + 2..], "%}")? + start + 2;
        if text[start + 2..end].trim() == "endcomment" {
            return Some(start..end + 2);
        }
        from = end + 2;
    }
    None
}

fn split_word(text: &str) -> (&str, &str) {
    match text.find(char::is_whitespace) {
        Some(at) => (&text[..at], text[at..].trim()),
        None => (text, ""),
    }
}

/// A `{% ... %}` tag, rewritten: the inside of a Jinja statement, or of a `{{ }}` when it
/// prints (`firstof`), or a marker in the output (`spaceless`).
enum Tag {
    Statement(String),
    Prints(String),
    Marker(char),
}

/// A `{% ... %}` tag, rewritten.
fn statement(
    word: &str,
    args: &str,
    line: usize,
    open: &mut Vec<(&'static str, usize)>,
) -> Result<Tag, DtlError> {
    let error = |message: String| DtlError { line, message };
    let innermost = |open: &[(&'static str, usize)]| open.last().map(|(block, _)| *block);
    let close = |open: &mut Vec<(&'static str, usize)>, block: &'static str| {
        if innermost(open) == Some(block) {
            open.pop();
            Ok(())
        } else {
            Err(error(match open.last() {
                Some((inner, opened)) => {
                    format!("`end{block}` closes `{inner}` (line {opened})")
                }
                None => format!("`end{block}` without `{block}`"),
            }))
        }
    };
    let inside = |open: &[(&'static str, usize)], block: &'static str, word: &str| {
        if innermost(open) == Some(block) {
            Ok(())
        } else {
            Err(error(format!("`{word}` outside `{block}`")))
        }
    };
    Ok(Tag::Statement(match word {
        "if" => {
            open.push(("if", line));
            format!("if {}", condition(args, line)?)
        }
        "elif" => {
            inside(open, "if", word)?;
            format!("elif {}", condition(args, line)?)
        }
        "else" => {
            if !matches!(innermost(open), Some("if") | Some("for")) {
                return Err(error("`else` outside `if` or `for`".to_string()));
            }
            "else".to_string()
        }
        "empty" => {
            inside(open, "for", word)?;
            "else".to_string()
        }
        "endif" => {
            close(open, "if")?;
            "endif".to_string()
        }
        "for" => {
            open.push(("for", line));
            format!("for {}", for_loop(args, line)?)
        }
        "endfor" => {
            close(open, "for")?;
            "endfor".to_string()
        }
        "with" => {
            open.push(("with", line));
            format!("with {}", with_bindings(args, line)?)
        }
        "endwith" => {
            close(open, "with")?;
            "endwith".to_string()
        }
        "firstof" => {
            let values = operands(args)
                .iter()
                .map(|value| expression(value, line))
                .collect::<Result<Vec<_>, _>>()?;
            if values.is_empty() {
                return Err(error("`firstof` needs at least one value".to_string()));
            }
            return Ok(Tag::Prints(format!("firstof({})", values.join(", "))));
        }
        "autoescape" => {
            open.push(("autoescape", line));
            let on = match args {
                "on" => "true",
                "off" => "false",
                _ => return Err(error(format!("`autoescape {args}`: on or off"))),
            };
            format!("autoescape {on}")
        }
        "endautoescape" => {
            close(open, "autoescape")?;
            "endautoescape".to_string()
        }
        "spaceless" => {
            open.push(("spaceless", line));
            return Ok(Tag::Marker(SPACELESS_BEGIN));
        }
        "endspaceless" => {
            close(open, "spaceless")?;
            return Ok(Tag::Marker(SPACELESS_END));
        }
        "" => return Err(error("an empty `{% %}` tag".to_string())),
        other => return Err(error(format!("the tag `{other}` is not supported"))),
    }))
}

/// Space-separated operands, keeping string literals whole.
fn operands(args: &str) -> Vec<String> {
    let mut operands = Vec::new();
    let mut current = String::new();
    let mut quote = None;
    for c in args.chars() {
        match quote {
            Some(q) => {
                current.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                current.push(c);
            }
            None if c.is_whitespace() => {
                if !current.is_empty() {
                    operands.push(std::mem::take(&mut current));
                }
            }
            None => current.push(c),
        }
    }
    if !current.is_empty() {
        operands.push(current);
    }
    operands
}

/// An `if` condition: operands that stand alone between `and`, `or`, `not` and parentheses
/// are tested with ErlyDTL's truthiness; comparisons and `in` are left to Jinja.
fn condition(args: &str, line: usize) -> Result<String, DtlError> {
    if args.is_empty() {
        return Err(DtlError {
            line,
            message: "`if` without a condition".to_string(),
        });
    }
    let words = operands(&args.replace('(', " ( ").replace(')', " ) "));
    let mut out = Vec::new();
    let mut part: Vec<String> = Vec::new();
    let flush = |part: &mut Vec<String>, out: &mut Vec<String>| -> Result<(), DtlError> {
        if part.is_empty() {
            return Ok(());
        }
        let text = part.join(" ");
        let expr = expression(&text, line)?;
        if part.len() == 1 && is_path(&part[0]) {
            out.push(format!("truthy({expr})"));
        } else {
            out.push(expr);
        }
        part.clear();
        Ok(())
    };
    for word in words {
        if word == "(" && (!part.is_empty() || out.last().is_some_and(|last| last == ")")) {
            return Err(DtlError {
                line,
                message: format!("`if {args}`: function calls are not supported"),
            });
        }
        if matches!(word.as_str(), "and" | "or" | "not" | "(" | ")") {
            flush(&mut part, &mut out)?;
            out.push(word);
        } else {
            part.push(word);
        }
    }
    flush(&mut part, &mut out)?;
    Ok(out.join(" "))
}

/// A variable, possibly with attributes and filters: `a.b`, `a.b|upper`.
fn is_path(word: &str) -> bool {
    let first = word.chars().next().unwrap_or('0');
    (first.is_alphabetic() || first == '_')
        && !matches!(word, "true" | "false" | "none" | "True" | "False" | "None")
        && word
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '|' | ':' | '"' | '\''))
}

/// `x in xs`, `k, v in d.items`, `x in xs reversed`.
fn for_loop(args: &str, line: usize) -> Result<String, DtlError> {
    let error = || DtlError {
        line,
        message: format!("`for {args}`: expected `for x in values`"),
    };
    let (targets, source) = args.split_once(" in ").ok_or_else(error)?;
    let source = source.trim();
    let (source, reversed) = match source.strip_suffix(" reversed") {
        Some(source) => (source.trim(), true),
        None => (source, false),
    };
    let targets = targets.trim();
    if targets.is_empty()
        || !targets
            .split(',')
            .all(|t| is_path(t.trim()) && !t.contains('.'))
    {
        return Err(error());
    }
    let mut source = expression(source, line)?;
    if let Some(dict) = source.strip_suffix(".items") {
        source = format!("{dict}|items");
    }
    if reversed {
        source = format!("{source}|reverse");
    }
    Ok(format!("{targets} in {source}"))
}

/// `b=a c=d`, or the older `a as b`.
fn with_bindings(args: &str, line: usize) -> Result<String, DtlError> {
    let words = operands(args);
    if let [value, as_, name] = words.as_slice()
        && as_ == "as"
    {
        return Ok(format!("{name}={}", expression(value, line)?));
    }
    let bindings = words
        .iter()
        .map(|binding| {
            let (name, value) = binding.split_once('=').ok_or_else(|| DtlError {
                line,
                message: format!("`with {args}`: expected `name=value`"),
            })?;
            Ok(format!("{name}={}", expression(value, line)?))
        })
        .collect::<Result<Vec<_>, DtlError>>()?;
    if bindings.is_empty() {
        return Err(DtlError {
            line,
            message: "`with` binds nothing".to_string(),
        });
    }
    Ok(bindings.join(", "))
}

/// An expression: `|name:arg` becomes `|name(arg)`, `forloop.*` becomes `loop.*`, and
/// every filter must be one of [`FILTERS`].
fn expression(expr: &str, line: usize) -> Result<String, DtlError> {
    if expr.is_empty() {
        return Err(DtlError {
            line,
            message: "an empty `{{ }}`".to_string(),
        });
    }
    let mut out = String::with_capacity(expr.len() + 8);
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    // Set after a `|`: the filter name being read, then whether an argument follows.
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            let end = literal_end(&chars, i).ok_or_else(|| DtlError {
                line,
                message: format!("an unclosed string in `{expr}`"),
            })?;
            out.extend(&chars[i..=end]);
            i = end + 1;
        } else if c == '|' {
            out.push('|');
            i += 1;
            while i < chars.len() && chars[i] == ' ' {
                i += 1;
            }
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let name: String = chars[start..i].iter().collect();
            if !FILTERS.contains(&name.as_str()) {
                return Err(DtlError {
                    line,
                    message: if name.is_empty() {
                        format!("a `|` without a filter in `{expr}`")
                    } else {
                        format!("the filter `{name}` is not supported")
                    },
                });
            }
            out.push_str(&name);
            if i < chars.len() && chars[i] == ':' {
                i += 1;
                let start = i;
                let end = if i < chars.len() && (chars[i] == '"' || chars[i] == '\'') {
                    literal_end(&chars, i).ok_or_else(|| DtlError {
                        line,
                        message: format!("an unclosed string in `{expr}`"),
                    })? + 1
                } else {
                    let mut end = i;
                    while end < chars.len()
                        && (chars[end].is_alphanumeric() || matches!(chars[end], '_' | '.' | '-'))
                    {
                        end += 1;
                    }
                    end
                };
                if end == start {
                    return Err(DtlError {
                        line,
                        message: format!("the filter `{name}` has `:` but no argument"),
                    });
                }
                let arg: String = chars[start..end].iter().collect();
                out.push('(');
                out.push_str(&rename_loop(&arg));
                out.push(')');
                i = end;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.')) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if JINJA_ONLY.contains(&word.as_str()) {
                return Err(DtlError {
                    line,
                    message: format!("`{word}` is not supported (in `{expr}`)"),
                });
            }
            out.push_str(&rename_loop(&word));
        } else if c.is_ascii_digit()
            || c.is_whitespace()
            || c == '.'
            || (c == '-' && is_sign(&out, chars.get(i + 1)))
        {
            out.push(c);
            i += 1;
        } else if matches!(c, '=' | '!' | '<' | '>') {
            // Comparisons: `==`, `!=`, `<`, `<=`, `>`, `>=` and nothing else.
            let next = chars.get(i + 1).copied();
            let width = match (c, next) {
                (_, Some('=')) => 2,
                ('<' | '>', _) => 1,
                _ => {
                    return Err(DtlError {
                        line,
                        message: format!("`{c}` is not supported (in `{expr}`)"),
                    });
                }
            };
            out.extend(&chars[i..i + width]);
            i += width;
        } else {
            return Err(DtlError {
                line,
                message: match c {
                    '(' => format!("function calls are not supported (in `{expr}`)"),
                    _ => format!("`{c}` is not supported (in `{expr}`)"),
                },
            });
        }
    }
    Ok(out)
}

/// Whether a `-` is a number's sign: a digit follows, and no operand precedes it (ErlyDTL has
/// no subtraction).
fn is_sign(before: &str, next: Option<&char>) -> bool {
    next.is_some_and(char::is_ascii_digit)
        && before
            .trim_end()
            .chars()
            .next_back()
            .is_none_or(|c| matches!(c, '=' | '<' | '>' | '(' | ','))
}

/// The index of the quote that closes the string literal opening at `start`.
fn literal_end(chars: &[char], start: usize) -> Option<usize> {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == '\\' {
            i += 2;
            continue;
        }
        if chars[i] == quote {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// `forloop.counter` and its kin, as Jinja's `loop` calls them.
fn rename_loop(word: &str) -> String {
    match word {
        "forloop.counter" => "loop.index".to_string(),
        "forloop.counter0" => "loop.index0".to_string(),
        "forloop.revcounter" => "loop.revindex".to_string(),
        "forloop.revcounter0" => "loop.revindex0".to_string(),
        "forloop.first" => "loop.first".to_string(),
        "forloop.last" => "loop.last".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_arguments_and_firstof_become_jinja() {
        assert_eq!(
            translate(r#"Received: {{date_called.local|date:"l, F j, Y \\a\\t H:i"}}"#).unwrap(),
            r#"Received: {{ date_called.local|date("l, F j, Y \\a\\t H:i") }}"#
        );
        assert_eq!(
            translate("on {%firstof callee_id.name_number to.user %}\nbut").unwrap(),
            "on {{ firstof(callee_id.name_number, to.user) }}\nbut"
        );
        assert_eq!(
            translate(r#"{{ x|default:"none"|upper }}"#).unwrap(),
            r#"{{ x|default("none")|upper }}"#
        );
    }

    #[test]
    fn conditions_use_erlydtl_truthiness_for_lone_operands() {
        assert_eq!(
            translate("{% if a.b and not c %}x{% elif d == \"0\" %}y{% else %}z{% endif %}")
                .unwrap(),
            "{% if truthy(a.b) and not truthy(c) %}x{% elif d == \"0\" %}y{% else %}z{% endif %}"
        );
        assert_eq!(
            translate("{% if \"sms\" in call.notification_media %}s{% endif %}").unwrap(),
            "{% if \"sms\" in call.notification_media %}s{% endif %}"
        );
    }

    #[test]
    fn loops_with_and_comments_are_rewritten_keeping_lines() {
        let source = "{% for x in xs reversed %}{{forloop.counter}}{% empty %}-{% endfor %}\n\
                      {% comment %}a\nb{% endcomment %}\n{% with a.b as c %}{{c}}{% endwith %}";
        let out = translate(source).unwrap();
        assert_eq!(
            out,
            "{% for x in xs|reverse %}{{ loop.index }}{% else %}-{% endfor %}\n\
             {# \n#}\n{% with c=a.b %}{{ c }}{% endwith %}"
        );
        assert_eq!(newlines(&out), newlines(source));
    }

    #[test]
    fn what_is_not_supported_is_refused_with_its_line() {
        let error = translate("a\nb\n{% include \"x\" %}").unwrap_err();
        assert_eq!(
            (error.line, error.message.as_str()),
            (3, "the tag `include` is not supported")
        );
        let error = translate("\n{{ x|truncatewords:3 }}").unwrap_err();
        assert_eq!(error.line, 2);
        assert!(error.message.contains("`truncatewords`"), "{error}");
        assert_eq!(translate("x\n{% if a %}\n\nb").unwrap_err().line, 2);
        assert_eq!(translate("{% endfor %}").unwrap_err().line, 1);
        assert_eq!(translate("x\n{{ a").unwrap_err().line, 2);
        assert!(translate("{% if a %}{% endfor %}").is_err());
    }

    #[test]
    fn jinja_that_erlydtl_has_not_is_refused_with_its_line() {
        for (source, says) in [
            (
                "{% for i in range(100000) %}x{% endfor %}",
                "function calls",
            ),
            ("\n{{ debug() }}", "function calls"),
            ("{{ namespace(a=1) }}", "function calls"),
            ("{{ x|default(dict()) }}", "function calls"),
            ("{% if range(3) %}x{% endif %}", "function calls"),
            ("{% if (a) (b) %}x{% endif %}", "function calls"),
            ("{% for x in xs recursive %}{% endfor %}", "`recursive`"),
            ("{% for x in xs if x %}{% endfor %}", "`if`"),
            ("{{ a if b else c }}", "`if`"),
            ("{% if a is defined %}x{% endif %}", "`is`"),
            ("{{ [1, 2] }}", "`[`"),
            ("{{ a ~ b }}", "`~`"),
            ("{{ 9 * 9 }}", "`*`"),
            ("{{ a - 1 }}", "`-`"),
            ("{{ a = 1 }}", "`=`"),
            ("{{ {'a': 1} }}", "`{`"),
            ("x\u{FDD0}", "noncharacter"),
        ] {
            let error = translate(source).unwrap_err();
            assert!(error.message.contains(says), "{source}: {error}");
            let line = 1 + source.matches('\n').count();
            assert_eq!(error.line, line, "{source}: {error}");
        }
        // What ErlyDTL has stays: comparisons, negative numbers, `in`, parentheses.
        for source in [
            "{% if a.b == -1 or (c != \"x\" and d >= 2) %}y{% endif %}",
            "{% if \"sms\" in call.media and not x %}y{% endif %}",
            "{{ x|add:-1 }}{{ x|default:\"(none)\" }}",
        ] {
            assert!(
                translate(source).is_ok(),
                "{source}: {:?}",
                translate(source)
            );
        }
    }

    #[test]
    fn spaceless_blocks_become_markers_in_the_output() {
        assert_eq!(
            translate("{% spaceless %}<p> {{a}} </p>{% endspaceless %}").unwrap(),
            format!("{SPACELESS_BEGIN}<p> {{{{ a }}}} </p>{SPACELESS_END}")
        );
        assert!(translate("{% spaceless %}x").is_err());
        assert!(translate("{% endspaceless %}").is_err());
    }
}
