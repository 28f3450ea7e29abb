//! Templates as teletype renders them: ErlyDTL sources ([`dtl`] rewrites them for minijinja),
//! ErlyDTL's values ([`values`]) and dates ([`date`]). A [`Template`] is compiled once, when
//! stored or loaded, and renders a subject, a text part and an HTML part.
//!
//! What is escaped differs from teletype on purpose (the README lists it): the HTML part is
//! always escaped (teletype escapes the system template's HTML nowhere, so a caller ID name
//! such as `<Pat>` goes into the HTML as markup); the subject and the text part never are
//! (teletype entity-escapes the subject, and an account template's text part).
//!
//! A rendering is bounded ([`RenderLimits`]): in work (minijinja's fuel, counted in the
//! engine's instructions) and in the bytes each part writes. Both are checked while it runs,
//! so a hostile template ends with an error naming the bound instead of spinning or filling
//! memory. The time bound is the caller's ([`crate::Composer::compose_bounded`]): rendering
//! runs off the async runtime and is waited for at most `render_timeout_ms`.

pub mod date;
pub mod dtl;
pub mod values;

use std::io;

use minijinja::{AutoEscape, Environment, ErrorKind};
use serde::Serialize;

/// How much one rendering may do; each bound is a `[mailer]` setting of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderLimits {
    /// `render_fuel`: the engine's instructions one part may run.
    pub fuel: u64,
    /// `render_max_bytes`: the bytes one part may write.
    pub max_bytes: usize,
}

impl Default for RenderLimits {
    /// 200,000 instructions: teletype's `missed_call` text and HTML take about 50 each, so a
    /// template with loops over a call's lists fits many times over, while one that runs away
    /// ends within a few milliseconds (6 ms measured on the development machine). 1 MiB:
    /// teletype's HTML renders to about 9 KB.
    fn default() -> Self {
        RenderLimits {
            fuel: 200_000,
            max_bytes: 1 << 20,
        }
    }
}

/// The parts of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    Subject,
    Text,
    Html,
}

impl Part {
    /// `subject`, `text` or `html`.
    pub fn name(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Text => "text",
            Part::Html => "html",
        }
    }
}

/// A template that does not compile or render, naming the part and, where known, the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", part.name(), line.map(|l| format!(", line {l}")).unwrap_or_default())]
pub struct TemplateError {
    pub part: Part,
    pub line: Option<usize>,
    pub message: String,
}

/// The ErlyDTL sources of a template; a missing body is a part the email does not have.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
}

/// What a template rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
}

/// A compiled template.
pub struct Template {
    env: Environment<'static>,
    limits: RenderLimits,
    has_text: bool,
    has_html: bool,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template")
            .field("has_text", &self.has_text)
            .field("has_html", &self.has_html)
            .finish()
    }
}

impl Template {
    /// Compiles `sources`, to render within `limits`; the first part that does not compile is
    /// the error.
    pub fn compile(sources: &Sources, limits: RenderLimits) -> Result<Template, TemplateError> {
        let mut env = Environment::new();
        values::install(&mut env, limits.max_bytes);
        env.set_fuel(Some(limits.fuel));
        // Bodies end as their templates do (Jinja drops a last newline by default).
        env.set_keep_trailing_newline(true);
        env.set_auto_escape_callback(|name| {
            if name == Part::Html.name() {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        let parts = [
            (Part::Subject, Some(&sources.subject)),
            (Part::Text, sources.text.as_ref()),
            (Part::Html, sources.html.as_ref()),
        ];
        for (part, source) in parts {
            let Some(source) = source else { continue };
            let jinja = dtl::translate(source).map_err(|e| TemplateError {
                part,
                line: Some(e.line),
                message: e.message,
            })?;
            env.add_template_owned(part.name(), jinja)
                .map_err(|e| jinja_error(part, &e))?;
        }
        Ok(Template {
            env,
            limits,
            has_text: sources.text.is_some(),
            has_html: sources.html.is_some(),
        })
    }

    /// Renders every part against `context` (the macros, as JSON), each within the limits.
    pub fn render(&self, context: &serde_json::Value) -> Result<Rendered, TemplateError> {
        let context = minijinja::Value::from_serialize(context);
        let render = |part: Part| -> Result<String, TemplateError> {
            let mut out = Capped::new(self.limits.max_bytes);
            let rendered = self
                .env
                .get_template(part.name())
                .and_then(|t| t.render_captured_to(&context, &mut out).map(drop));
            match rendered {
                Ok(()) => Ok(spaceless_blocks(&String::from_utf8_lossy(&out.bytes))),
                Err(_) if out.overflowed => Err(TemplateError {
                    part,
                    line: None,
                    message: format!(
                        "the output passed render_max_bytes ({} bytes)",
                        self.limits.max_bytes
                    ),
                }),
                Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(TemplateError {
                    part,
                    line: e.line(),
                    message: format!(
                        "the template does more work than render_fuel allows ({} instructions)",
                        self.limits.fuel
                    ),
                }),
                Err(e) => Err(jinja_error(part, &e)),
            }
        };
        let subject = render(Part::Subject)?;
        Ok(Rendered {
            // A subject is one line: a template's line breaks are spaces.
            subject: subject.replace(['\r', '\n'], " ").trim().to_string(),
            text: self.has_text.then(|| render(Part::Text)).transpose()?,
            html: self.has_html.then(|| render(Part::Html)).transpose()?,
        })
    }
}

/// An output that refuses to grow past `limit` bytes.
struct Capped {
    bytes: Vec<u8>,
    limit: usize,
    overflowed: bool,
}

impl Capped {
    fn new(limit: usize) -> Self {
        Capped {
            bytes: Vec::new(),
            limit,
            overflowed: false,
        }
    }
}

impl io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            self.overflowed = true;
            return Err(io::Error::other("render_max_bytes"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The output with each `{% spaceless %}` block's whitespace between tags removed and the
/// blocks' markers gone (blocks nest; the front checked that they are balanced).
fn spaceless_blocks(output: &str) -> String {
    if !output.contains(dtl::SPACELESS_BEGIN) {
        return output.to_string();
    }
    // The text of each open block; the outermost is the output itself.
    let mut open: Vec<String> = vec![String::with_capacity(output.len())];
    for c in output.chars() {
        match c {
            dtl::SPACELESS_BEGIN => open.push(String::new()),
            dtl::SPACELESS_END if open.len() > 1 => {
                let block = open.pop().unwrap_or_default();
                let last = open.len() - 1;
                open[last].push_str(&values::spaceless(&block));
            }
            c => {
                let last = open.len() - 1;
                open[last].push(c);
            }
        }
    }
    // Unclosed blocks (not produced by the front) keep their text.
    let mut blocks = open.into_iter();
    let mut out = blocks.next().unwrap_or_default();
    blocks.for_each(|block| out.push_str(&block));
    out
}

fn jinja_error(part: Part, error: &minijinja::Error) -> TemplateError {
    TemplateError {
        part,
        line: error.line(),
        message: match error.detail() {
            Some(detail) => format!("{}: {detail}", error.kind()),
            None => error.kind().to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(subject: &str, text: &str, html: &str, context: serde_json::Value) -> Rendered {
        Template::compile(
            &Sources {
                subject: subject.to_string(),
                text: Some(text.to_string()),
                html: Some(html.to_string()),
            },
            RenderLimits::default(),
        )
        .unwrap()
        .render(&context)
        .unwrap()
    }

    fn compile(subject: &str, text: &str) -> Result<Template, TemplateError> {
        Template::compile(
            &Sources {
                subject: subject.to_string(),
                text: Some(text.to_string()),
                html: None,
            },
            RenderLimits::default(),
        )
    }

    #[test]
    fn html_is_escaped_and_subject_and_text_are_not() {
        let context = json!({"caller_id": {"name": "O'Brien <Pat>"}});
        let out = render(
            "From {{caller_id.name}}",
            "{{caller_id.name}}",
            "<b>{{caller_id.name}}</b>",
            context,
        );
        assert_eq!(out.subject, "From O'Brien <Pat>");
        assert_eq!(out.text.unwrap(), "O'Brien <Pat>");
        assert_eq!(out.html.unwrap(), "<b>O&#039;Brien &lt;Pat&gt;</b>");
    }

    #[test]
    fn missing_values_print_nothing_and_defaults_follow_erlydtl() {
        let context = json!({"call": {"zero": "0", "media": ["email", "sms"], "yes": true}});
        let out = render(
            "{{ nothing.at.all }}|{{ call.zero|default:\"none\" }}",
            "{% if call.zero %}z{% else %}no z{% endif %} {{ call.media }} {{ call.yes }} \
             {% if \"sms\" in call.media %}sms{% endif %} {% firstof call.zero nope \"x\" %}",
            "",
            context,
        );
        assert_eq!(out.subject, "|none");
        assert_eq!(out.text.unwrap(), "no z emailsms true sms x");
    }

    #[test]
    fn a_template_that_does_not_compile_names_the_part_and_line() {
        let error = compile("ok", "line 1\n{% if a %}\n{{ b.c. }}\n{% endif %}").unwrap_err();
        assert_eq!((error.part, error.line), (Part::Text, Some(3)), "{error}");
        let error = compile("{% cycle a b %}", "").unwrap_err();
        assert_eq!(
            error.to_string(),
            "subject, line 1: the tag `cycle` is not supported"
        );
    }

    fn limited(text: &str, limits: RenderLimits) -> Result<Rendered, TemplateError> {
        Template::compile(
            &Sources {
                subject: "s".to_string(),
                text: Some(text.to_string()),
                html: None,
            },
            limits,
        )?
        .render(&json!({"name": "Jane Caller"}))
    }

    fn loops(depth: usize, each: &str) -> String {
        let open = "{% for x in \"0123456789\" %}".repeat(depth);
        format!("{open}{each}{}", "{% endfor %}".repeat(depth))
    }

    #[test]
    fn work_output_and_values_are_bounded_and_each_bound_is_named() {
        let limits = RenderLimits {
            fuel: 100_000,
            max_bytes: 10_000,
        };
        let error = limited(&loops(6, ""), limits).unwrap_err();
        assert!(
            error.message.contains("render_fuel allows (100000"),
            "{error}"
        );
        assert_eq!(error.part, Part::Text);
        let error = limited(&loops(2, &"x".repeat(101)), limits).unwrap_err();
        assert!(error.message.contains("render_max_bytes (10000"), "{error}");
        // Just under both: fine.
        let out = limited(&loops(2, &"x".repeat(100)), limits).unwrap();
        assert_eq!(out.text.unwrap().len(), 10_000);
        let doubling = format!(
            "{{% with a=name %}}{}{{{{ a|length }}}}{}",
            "{% with a=a|add:a %}".repeat(20),
            "{% endwith %}".repeat(21)
        );
        let error = limited(&doubling, limits).unwrap_err();
        assert!(error.message.contains("render_max_bytes"), "{error}");
        // minijinja's globals are gone: a bare name is merely undefined.
        assert_eq!(
            limited("[{{ range }}{{ debug }}]", limits)
                .unwrap()
                .text
                .unwrap(),
            "[]"
        );
    }

    #[test]
    fn spaceless_applies_to_the_rendered_block_and_values_cannot_forge_it() {
        let out = render(
            "s",
            "a {% spaceless %}<p> {{name}} </p>\n <b>x</b>{% endspaceless %} b",
            "",
            json!({"name": format!("{}Jane{}", dtl::SPACELESS_END, dtl::SPACELESS_BEGIN)}),
        );
        assert_eq!(out.text.unwrap(), "a <p> Jane </p><b>x</b> b");
    }
}
