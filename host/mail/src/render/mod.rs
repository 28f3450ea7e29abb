//! Templates as teletype renders them: ErlyDTL sources ([`dtl`] rewrites them for minijinja),
//! ErlyDTL's values ([`values`]) and dates ([`date`]). A [`Template`] is compiled once, when
//! stored or loaded, and renders a subject, a text part and an HTML part.
//!
//! What is escaped differs from teletype on purpose (the README lists it): the HTML part is
//! always escaped (teletype escapes the system template's HTML nowhere, so a caller ID name
//! such as `<Pat>` goes into the HTML as markup); the subject and the text part never are
//! (teletype entity-escapes the subject, and an account template's text part).

pub mod date;
pub mod dtl;
pub mod values;

use minijinja::{AutoEscape, Environment};
use serde::Serialize;

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
    /// Compiles `sources`; the first part that does not compile is the error.
    pub fn compile(sources: &Sources) -> Result<Template, TemplateError> {
        let mut env = Environment::new();
        values::install(&mut env);
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
            has_text: sources.text.is_some(),
            has_html: sources.html.is_some(),
        })
    }

    /// Renders every part against `context` (the macros, as JSON).
    pub fn render(&self, context: &serde_json::Value) -> Result<Rendered, TemplateError> {
        let context = minijinja::Value::from_serialize(context);
        let render = |part: Part| -> Result<String, TemplateError> {
            self.env
                .get_template(part.name())
                .and_then(|t| t.render(&context))
                .map_err(|e| jinja_error(part, &e))
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
        Template::compile(&Sources {
            subject: subject.to_string(),
            text: Some(text.to_string()),
            html: Some(html.to_string()),
        })
        .unwrap()
        .render(&context)
        .unwrap()
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
        let error = Template::compile(&Sources {
            subject: "ok".to_string(),
            text: Some("line 1\n{% if a %}\n{{ b + }}\n{% endif %}".to_string()),
            html: None,
        })
        .unwrap_err();
        assert_eq!((error.part, error.line), (Part::Text, Some(3)), "{error}");
        let error = Template::compile(&Sources {
            subject: "{% cycle a b %}".to_string(),
            ..Sources::default()
        })
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "subject, line 1: the tag `cycle` is not supported"
        );
    }
}
