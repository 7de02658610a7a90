//! Errors of loading a policy file: [`PolicyError`], a list of [`PolicyDiagnostic`]s with source
//! positions, help texts and stable codes.

use std::{fmt, ops::Range, sync::Arc};

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};

/// What kind of problem a [`PolicyDiagnostic`] reports. Each kind has a stable
/// [`code`](PolicyErrorKind::code) such as `aaa::policy::unknown_role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PolicyErrorKind {
    /// The file could not be read.
    Io,
    /// The file is not valid TOML or JSON, or does not have the policy's shape.
    Syntax,
    /// A role is named that the policy does not define.
    UnknownRole,
    /// Role inheritance forms a cycle.
    RoleCycle,
    /// A condition names an attribute the schema does not declare.
    UnknownAttribute,
    /// A condition combines values of the wrong types.
    TypeMismatch,
    /// A route names an action no rule or role permission mentions.
    UnknownAction,
    /// A route names a resource type no rule mentions.
    UnknownResourceType,
    /// Two rules share an id.
    DuplicateRuleId,
    /// Two routes share a method and template.
    DuplicateRoute,
    /// A condition could not be parsed.
    InvalidCondition,
    /// An action pattern is not in the glob dialect.
    InvalidPattern,
    /// The schema is malformed (unknown type, a name that shadows a built-in).
    InvalidSchema,
    /// A route entry is malformed (a method not in uppercase, an action that is not one exact
    /// action, a missing field, an unknown path parameter).
    InvalidRoute,
    /// A rule is malformed (no actions, an empty id, an id with the reserved prefix `role:` or
    /// `route:`).
    InvalidRule,
}

impl PolicyErrorKind {
    /// The stable code, e.g. `aaa::policy::unknown_role`.
    pub fn code(self) -> &'static str {
        match self {
            PolicyErrorKind::Io => "aaa::policy::io",
            PolicyErrorKind::Syntax => "aaa::policy::syntax",
            PolicyErrorKind::UnknownRole => "aaa::policy::unknown_role",
            PolicyErrorKind::RoleCycle => "aaa::policy::role_cycle",
            PolicyErrorKind::UnknownAttribute => "aaa::policy::unknown_attribute",
            PolicyErrorKind::TypeMismatch => "aaa::policy::type_mismatch",
            PolicyErrorKind::UnknownAction => "aaa::policy::unknown_action",
            PolicyErrorKind::UnknownResourceType => "aaa::policy::unknown_resource_type",
            PolicyErrorKind::DuplicateRuleId => "aaa::policy::duplicate_rule_id",
            PolicyErrorKind::DuplicateRoute => "aaa::policy::duplicate_route",
            PolicyErrorKind::InvalidCondition => "aaa::policy::invalid_condition",
            PolicyErrorKind::InvalidPattern => "aaa::policy::invalid_pattern",
            PolicyErrorKind::InvalidSchema => "aaa::policy::invalid_schema",
            PolicyErrorKind::InvalidRoute => "aaa::policy::invalid_route",
            PolicyErrorKind::InvalidRule => "aaa::policy::invalid_rule",
        }
    }
}

/// The text of a policy file and its name, shared by all diagnostics about it.
#[derive(Clone)]
pub(crate) struct Source {
    pub(crate) name: Arc<str>,
    pub(crate) text: Arc<NamedSource<String>>,
    /// Whether byte offsets refer to `text` (TOML) or to nothing (JSON, converted).
    pub(crate) positions: bool,
}

impl Source {
    pub(crate) fn new(name: &str, text: &str, positions: bool) -> Self {
        Source {
            name: Arc::from(name),
            text: Arc::new(NamedSource::new(name, text.to_owned())),
            positions,
        }
    }

    fn inner(&self) -> &str {
        self.text.inner()
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source").field("name", &self.name).finish()
    }
}

/// One problem in a policy file, with where it is and how to fix it.
#[derive(Debug, Clone)]
pub struct PolicyDiagnostic {
    kind: PolicyErrorKind,
    message: String,
    help: Option<String>,
    span: Option<Range<usize>>,
    line: usize,
    column: usize,
    source: Source,
}

impl PolicyDiagnostic {
    pub(crate) fn new(
        source: &Source,
        kind: PolicyErrorKind,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Self {
        let span = span.filter(|_| source.positions);
        let (line, column) = match &span {
            Some(s) => line_column(source.inner(), s.start),
            None => (0, 0),
        };
        PolicyDiagnostic {
            kind,
            message: message.into(),
            help: None,
            span,
            line,
            column,
            source: source.clone(),
        }
    }

    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The kind of problem.
    pub fn kind(&self) -> PolicyErrorKind {
        self.kind
    }

    /// The stable code, e.g. `aaa::policy::unknown_role`.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// What is wrong, lowercase.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// How to fix it, when there is advice.
    pub fn help(&self) -> Option<&str> {
        self.help.as_deref()
    }

    /// The name of the file.
    pub fn file(&self) -> &str {
        &self.source.name
    }

    /// The 1-based line, or 0 when the position is unknown (JSON files).
    pub fn line(&self) -> usize {
        self.line
    }

    /// The 1-based column in characters, or 0 when the position is unknown.
    pub fn column(&self) -> usize {
        self.column
    }

    /// The byte range in the file, when known.
    pub fn span(&self) -> Option<Range<usize>> {
        self.span.clone()
    }

    /// A plain-text rendering: code, message, `file:line:column`, the source line with a caret
    /// under the problem, and the help.
    pub fn render(&self) -> String {
        use fmt::Write;
        let mut out = format!("error[{}]: {}\n", self.code(), self.message);
        if self.line > 0 {
            let _ = writeln!(out, "  --> {}:{}:{}", self.file(), self.line, self.column);
            if let Some(text) = self.source.inner().lines().nth(self.line - 1) {
                let width = self
                    .span
                    .as_ref()
                    .and_then(|s| self.source.inner().get(s.clone()))
                    .map_or(1, |t| {
                        t.lines().next().map_or(1, |l| l.chars().count().max(1))
                    });
                let gutter = self.line.to_string().len();
                let _ = writeln!(out, "{:gutter$} |", "");
                let _ = writeln!(out, "{} | {}", self.line, text);
                let _ = writeln!(
                    out,
                    "{:gutter$} | {}{}",
                    "",
                    " ".repeat(self.column.saturating_sub(1)),
                    "^".repeat(width)
                );
            }
        } else {
            let _ = writeln!(out, "  --> {}", self.file());
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "  = help: {help}");
        }
        out
    }
}

impl fmt::Display for PolicyDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file(),
                self.line,
                self.column,
                self.message
            )
        } else {
            write!(f, "{}: {}", self.file(), self.message)
        }
    }
}

impl std::error::Error for PolicyDiagnostic {}

impl Diagnostic for PolicyDiagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.kind.code()))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.span
            .as_ref()
            .map(|_| &*self.source.text as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.span.as_ref().map(|s| {
            Box::new(std::iter::once(LabeledSpan::new_with_span(
                Some(self.message.clone()),
                s.clone(),
            ))) as Box<dyn Iterator<Item = LabeledSpan>>
        })
    }
}

/// 1-based line and character column of byte `offset` in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A policy could not be loaded: one or more [`PolicyDiagnostic`]s.
///
/// `Display` shows the first problem and how many there are; [`PolicyError::render`] shows all of
/// them with their source lines. As a [`miette::Diagnostic`], the problems are `related()`.
#[derive(Debug, Clone)]
pub struct PolicyError {
    diagnostics: Vec<PolicyDiagnostic>,
}

impl PolicyError {
    pub(crate) fn new(diagnostics: Vec<PolicyDiagnostic>) -> Self {
        PolicyError { diagnostics }
    }

    pub(crate) fn single(diagnostic: PolicyDiagnostic) -> Self {
        PolicyError {
            diagnostics: vec![diagnostic],
        }
    }

    pub(crate) fn io(file: &str, error: &std::io::Error) -> Self {
        let source = Source::new(file, "", false);
        Self::single(PolicyDiagnostic::new(
            &source,
            PolicyErrorKind::Io,
            None,
            format!("cannot read the policy file: {}", error.kind()),
        ))
    }

    /// All problems found, in file order where known.
    pub fn diagnostics(&self) -> &[PolicyDiagnostic] {
        &self.diagnostics
    }

    /// The kind of the first problem.
    pub fn kind(&self) -> PolicyErrorKind {
        self.diagnostics
            .first()
            .map_or(PolicyErrorKind::Syntax, |d| d.kind)
    }

    /// All problems, rendered as plain text with their source lines.
    pub fn render(&self) -> String {
        self.diagnostics
            .iter()
            .map(PolicyDiagnostic::render)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.diagnostics.as_slice() {
            [] => f.write_str("invalid policy"),
            [one] => write!(f, "invalid policy: {one}"),
            [first, rest @ ..] => write!(
                f,
                "invalid policy: {first} (and {} more problem{})",
                rest.len(),
                if rest.len() == 1 { "" } else { "s" }
            ),
        }
    }
}

impl std::error::Error for PolicyError {}

impl Diagnostic for PolicyError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.kind().code()))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(
            self.diagnostics.iter().map(|d| d as &dyn Diagnostic),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        let x = text.find('"').unwrap();
        assert_eq!(line_column(text, x), (2, 6));
    }
}
