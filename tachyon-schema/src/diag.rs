//! Diagnostics with file, line and column, rendered the way rustc renders its own.

use std::fmt;
use std::path::{Path, PathBuf};

/// A place in a schema file: 1-based line and column, and the length of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// Byte offset of the first character.
    pub offset: usize,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub col: u32,
    /// Length in bytes (at least 1 when rendered).
    pub len: usize,
}

/// One error in a schema: what is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The schema file.
    pub file: PathBuf,
    /// Where in it.
    pub span: Span,
    /// What is wrong, lowercase, no trailing period.
    pub message: String,
    /// A short note under the caret (may be empty).
    pub label: String,
    /// The source line the span points into, for rendering.
    pub source_line: String,
}

impl Diagnostic {
    /// A diagnostic at `span` of `source` (the whole file text).
    pub fn new(
        file: &Path,
        source: &str,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        let source_line = source.lines().nth(span.line.saturating_sub(1) as usize).unwrap_or("");
        Self {
            file: file.to_path_buf(),
            span,
            message: message.into(),
            label: label.into(),
            source_line: source_line.to_string(),
        }
    }

    /// `file:line:col`, as editors and terminals link it.
    pub fn location(&self) -> String {
        format!("{}:{}:{}", self.file.display(), self.span.line, self.span.col)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line_no = self.span.line.to_string();
        let pad = " ".repeat(line_no.len());
        writeln!(f, "error: {}", self.message)?;
        writeln!(f, "{pad}--> {}", self.location())?;
        writeln!(f, "{pad} |")?;
        writeln!(f, "{line_no} | {}", self.source_line)?;
        let lead = " ".repeat(self.span.col.saturating_sub(1) as usize);
        let width =
            self.span.len.max(1).min(self.source_line.len().saturating_sub(lead.len()).max(1));
        write!(f, "{pad} | {lead}{}", "^".repeat(width))?;
        if !self.label.is_empty() {
            write!(f, " {}", self.label)?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

/// Every error found in a schema set (at least one), in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Errors(pub Vec<Diagnostic>);

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}
