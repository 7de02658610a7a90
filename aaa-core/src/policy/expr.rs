//! The condition language: a hand-written lexer and recursive-descent parser producing an
//! [`Expr`] tree with byte spans relative to the condition text.
//!
//! ```text
//! or      := and ( "||" and )*
//! and     := unary ( "&&" unary )*
//! unary   := "!" unary | compare
//! compare := postfix ( ("==" | "!=" | "<" | "<=" | ">" | ">=" | "in") postfix
//!                    | "like" STRING | "has" IDENT )?
//! postfix := primary ( "." IDENT ( "(" args ")" )? )*
//! primary := STRING | INTEGER | "true" | "false" | "principal" | "resource" | "context"
//!          | IDENT "(" STRING ")" | "[" args "]" | "(" or ")"
//! ```
//!
//! Nesting is limited to [`MAX_DEPTH`] (each parenthesis, `!`, set or argument list, and each
//! link of a `.name` / `.name(..)` chain, counts one level) and the text to [`MAX_LEN`] bytes, so
//! a hostile file cannot exhaust the stack of the parser, the type checker or the evaluator.

use std::ops::Range;

/// Deepest nesting of a condition.
pub(crate) const MAX_DEPTH: usize = 32;
/// Longest condition text, in bytes.
pub(crate) const MAX_LEN: usize = 16 * 1024;

/// A parse error: what and where (byte range in the condition text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    pub(crate) message: String,
    pub(crate) span: Range<usize>,
}

/// The three roots a condition can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Root {
    Principal,
    Resource,
    Context,
}

impl Root {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Root::Principal => "principal",
            Root::Resource => "resource",
            Root::Context => "context",
        }
    }
}

/// Binary comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A parsed condition with its span.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expr {
    pub(crate) kind: ExprKind,
    pub(crate) span: Range<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ExprKind {
    Bool(bool),
    Long(i64),
    Str(String),
    Var(Root),
    /// `base.name`
    Attr(Box<Expr>, String),
    /// `base.name(args)`
    Method(Box<Expr>, String, Vec<Expr>),
    /// `name("literal")`, e.g. `ip("10.0.0.0/8")`
    Call(String, String),
    /// `[a, b]`
    Set(Vec<Expr>),
    Not(Box<Expr>),
    /// `a && b && ...` (flat, at least two)
    And(Vec<Expr>),
    /// `a || b || ...` (flat, at least two)
    Or(Vec<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    In(Box<Expr>, Box<Expr>),
    Like(Box<Expr>, String),
    /// `base has name`
    Has(Box<Expr>, String),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    AndAnd,
    OrOr,
    Bang,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Str(_) => "a string".to_owned(),
        Tok::Int(_) => "a number".to_owned(),
        Tok::LParen => "`(`".to_owned(),
        Tok::RParen => "`)`".to_owned(),
        Tok::LBracket => "`[`".to_owned(),
        Tok::RBracket => "`]`".to_owned(),
        Tok::Comma => "`,`".to_owned(),
        Tok::Dot => "`.`".to_owned(),
        Tok::EqEq => "`==`".to_owned(),
        Tok::NotEq => "`!=`".to_owned(),
        Tok::Lt => "`<`".to_owned(),
        Tok::Le => "`<=`".to_owned(),
        Tok::Gt => "`>`".to_owned(),
        Tok::Ge => "`>=`".to_owned(),
        Tok::AndAnd => "`&&`".to_owned(),
        Tok::OrOr => "`||`".to_owned(),
        Tok::Bang => "`!`".to_owned(),
    }
}

fn err<T>(message: impl Into<String>, span: Range<usize>) -> Result<T, ParseError> {
    Err(ParseError {
        message: message.into(),
        span,
    })
}

fn lex(text: &str) -> Result<Vec<(Tok, Range<usize>)>, ParseError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let start = i;
        let two = bytes.get(i..i + 2);
        let tok = match b {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => Tok::LParen,
            b')' => Tok::RParen,
            b'[' => Tok::LBracket,
            b']' => Tok::RBracket,
            b',' => Tok::Comma,
            b'.' => Tok::Dot,
            b'=' if two == Some(b"==") => Tok::EqEq,
            b'!' if two == Some(b"!=") => Tok::NotEq,
            b'!' => Tok::Bang,
            b'<' if two == Some(b"<=") => Tok::Le,
            b'<' => Tok::Lt,
            b'>' if two == Some(b">=") => Tok::Ge,
            b'>' => Tok::Gt,
            b'&' if two == Some(b"&&") => Tok::AndAnd,
            b'|' if two == Some(b"||") => Tok::OrOr,
            b'"' => {
                let (s, end) = lex_string(text, i)?;
                out.push((Tok::Str(s), start..end));
                i = end;
                continue;
            }
            b'0'..=b'9' | b'-' => {
                let mut j = i + 1;
                while bytes.get(j).is_some_and(u8::is_ascii_digit) {
                    j += 1;
                }
                let digits = text.get(i..j).unwrap_or_default();
                if digits == "-" {
                    return err("expected a digit after `-`", i..j);
                }
                let n = digits
                    .parse::<i64>()
                    .or_else(|_| err("integer out of range", i..j))?;
                out.push((Tok::Int(n), start..j));
                i = j;
                continue;
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let mut j = i + 1;
                while bytes
                    .get(j)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    j += 1;
                }
                out.push((
                    Tok::Ident(text.get(i..j).unwrap_or_default().to_owned()),
                    i..j,
                ));
                i = j;
                continue;
            }
            _ => {
                let len = text
                    .get(i..)
                    .and_then(|r| r.chars().next())
                    .map_or(1, char::len_utf8);
                return err(
                    format!(
                        "unexpected character `{}`",
                        text.get(i..i + len).unwrap_or("?")
                    ),
                    i..i + len,
                );
            }
        };
        i += match tok {
            Tok::EqEq | Tok::NotEq | Tok::Le | Tok::Ge | Tok::AndAnd | Tok::OrOr => 2,
            _ => 1,
        };
        out.push((tok, start..i));
    }
    Ok(out)
}

/// Lexes a double-quoted string starting at `start`; returns the value and the end offset.
fn lex_string(text: &str, start: usize) -> Result<(String, usize), ParseError> {
    let mut out = String::new();
    let mut chars = text.get(start + 1..).unwrap_or_default().char_indices();
    while let Some((k, c)) = chars.next() {
        let at = start + 1 + k;
        match c {
            '"' => return Ok((out, at + 1)),
            '\\' => match chars.next() {
                Some((_, '"')) => out.push('"'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((k2, other)) => {
                    let end = start + 1 + k2 + other.len_utf8();
                    return err(format!("unknown escape `\\{other}`"), at..end);
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    err("unterminated string", start..text.len())
}

struct Parser {
    toks: Vec<(Tok, Range<usize>)>,
    pos: usize,
    /// The nesting level being parsed.
    depth: usize,
    /// The deepest level reached since [`Parser::postfix`] last reset it: how deep the operand
    /// that a chain of links wraps goes.
    peak: usize,
    len: usize,
}

/// Parses a condition.
pub(crate) fn parse(text: &str) -> Result<Expr, ParseError> {
    if text.len() > MAX_LEN {
        return err(
            format!("condition is longer than {MAX_LEN} bytes"),
            0..text.len().min(1),
        );
    }
    let toks = lex(text)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
        peak: 0,
        len: text.len(),
    };
    if p.toks.is_empty() {
        return err("empty condition", 0..text.len());
    }
    let e = p.or()?;
    match p.toks.get(p.pos) {
        None => Ok(e),
        Some((t, span)) => err(
            format!("expected `&&`, `||` or the end, found {}", describe(t)),
            span.clone(),
        ),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn span_here(&self) -> Range<usize> {
        self.toks
            .get(self.pos)
            .map_or(self.len..self.len, |(_, s)| s.clone())
    }

    fn prev_end(&self) -> usize {
        self.pos
            .checked_sub(1)
            .and_then(|i| self.toks.get(i))
            .map_or(0, |(_, s)| s.end)
    }

    fn bump(&mut self) -> Option<(Tok, Range<usize>)> {
        let t = self.toks.get(self.pos).cloned();
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    fn expect(&mut self, want: &Tok, what: &str) -> Result<Range<usize>, ParseError> {
        match self.toks.get(self.pos) {
            Some((t, s)) if t == want => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            Some((t, s)) => err(format!("expected {what}, found {}", describe(t)), s.clone()),
            None => err(
                format!("expected {what}, found the end"),
                self.len..self.len,
            ),
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        self.peak = self.peak.max(self.depth);
        if self.depth > MAX_DEPTH {
            return err(
                format!("condition nests more than {MAX_DEPTH} levels deep"),
                self.span_here(),
            );
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let first = self.and()?;
        let mut items = vec![first];
        while self.peek() == Some(&Tok::OrOr) {
            self.pos += 1;
            items.push(self.and()?);
        }
        self.depth -= 1;
        Ok(flat(items, ExprKind::Or))
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let first = self.unary()?;
        let mut items = vec![first];
        while self.peek() == Some(&Tok::AndAnd) {
            self.pos += 1;
            items.push(self.unary()?);
        }
        Ok(flat(items, ExprKind::And))
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.peek() == Some(&Tok::Bang) {
            let start = self.span_here().start;
            self.pos += 1;
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            let span = start..inner.span.end;
            return Ok(Expr {
                kind: ExprKind::Not(Box::new(inner)),
                span,
            });
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Expr, ParseError> {
        let left = self.postfix()?;
        let op = match self.peek() {
            Some(Tok::EqEq) => Some(CmpOp::Eq),
            Some(Tok::NotEq) => Some(CmpOp::Ne),
            Some(Tok::Lt) => Some(CmpOp::Lt),
            Some(Tok::Le) => Some(CmpOp::Le),
            Some(Tok::Gt) => Some(CmpOp::Gt),
            Some(Tok::Ge) => Some(CmpOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.pos += 1;
            let right = self.postfix()?;
            let span = left.span.start..right.span.end;
            return Ok(Expr {
                kind: ExprKind::Cmp(op, Box::new(left), Box::new(right)),
                span,
            });
        }
        match self.peek() {
            Some(Tok::Ident(k)) if k == "in" => {
                self.pos += 1;
                let right = self.postfix()?;
                let span = left.span.start..right.span.end;
                Ok(Expr {
                    kind: ExprKind::In(Box::new(left), Box::new(right)),
                    span,
                })
            }
            Some(Tok::Ident(k)) if k == "like" => {
                self.pos += 1;
                match self.bump() {
                    Some((Tok::Str(p), s)) => {
                        let span = left.span.start..s.end;
                        Ok(Expr {
                            kind: ExprKind::Like(Box::new(left), p),
                            span,
                        })
                    }
                    Some((t, s)) => err(
                        format!(
                            "expected a pattern string after `like`, found {}",
                            describe(&t)
                        ),
                        s,
                    ),
                    None => err("expected a pattern string after `like`", self.len..self.len),
                }
            }
            Some(Tok::Ident(k)) if k == "has" => {
                self.pos += 1;
                match self.bump() {
                    Some((Tok::Ident(name), s)) => {
                        let span = left.span.start..s.end;
                        Ok(Expr {
                            kind: ExprKind::Has(Box::new(left), name),
                            span,
                        })
                    }
                    Some((t, s)) => err(
                        format!(
                            "expected an attribute name after `has`, found {}",
                            describe(&t)
                        ),
                        s,
                    ),
                    None => err("expected an attribute name after `has`", self.len..self.len),
                }
            }
            _ => Ok(left),
        }
    }

    fn postfix(&mut self) -> Result<Expr, ParseError> {
        let (depth, outer_peak) = (self.depth, self.peak);
        self.peak = depth;
        let mut e = self.primary()?;
        // Each `.name` or `.name(..)` wraps `e` in one more node, which the type checker and the
        // evaluator recurse into: a chain counts one level per link, on top of the deepest level
        // inside `e` (a parenthesized operand such as `((a.b).c).d` is as deep as its inside).
        self.depth = self.peak;
        while self.peek() == Some(&Tok::Dot) {
            self.enter()?;
            self.pos += 1;
            let (name, name_span) = match self.bump() {
                Some((Tok::Ident(n), s)) => (n, s),
                Some((t, s)) => {
                    return err(
                        format!(
                            "expected an attribute or method name, found {}",
                            describe(&t)
                        ),
                        s,
                    );
                }
                None => {
                    return err("expected an attribute or method name", self.len..self.len);
                }
            };
            if self.peek() == Some(&Tok::LParen) {
                self.pos += 1;
                let args = self.list(&Tok::RParen, "`)`")?;
                let span = e.span.start..self.prev_end();
                e = Expr {
                    kind: ExprKind::Method(Box::new(e), name, args),
                    span,
                };
            } else {
                let span = e.span.start..name_span.end;
                e = Expr {
                    kind: ExprKind::Attr(Box::new(e), name),
                    span,
                };
            }
        }
        self.depth = depth;
        self.peak = self.peak.max(outer_peak);
        Ok(e)
    }

    /// Comma-separated expressions up to `close` (already past the opener).
    fn list(&mut self, close: &Tok, what: &str) -> Result<Vec<Expr>, ParseError> {
        let mut items = Vec::new();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(items);
        }
        loop {
            items.push(self.or()?);
            match self.peek() {
                Some(Tok::Comma) => self.pos += 1,
                _ => {
                    self.expect(close, &format!("`,` or {what}"))?;
                    break;
                }
            }
        }
        Ok(items)
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let Some((tok, span)) = self.bump() else {
            return err("expected a value, found the end", self.len..self.len);
        };
        let kind = match tok {
            Tok::Str(s) => ExprKind::Str(s),
            Tok::Int(n) => ExprKind::Long(n),
            Tok::LParen => {
                let inner = self.or()?;
                let close = self.expect(&Tok::RParen, "`)`")?;
                return Ok(Expr {
                    kind: inner.kind,
                    span: span.start..close.end,
                });
            }
            Tok::LBracket => {
                let items = self.list(&Tok::RBracket, "`]`")?;
                ExprKind::Set(items)
            }
            Tok::Ident(name) => match name.as_str() {
                "true" => ExprKind::Bool(true),
                "false" => ExprKind::Bool(false),
                "principal" => ExprKind::Var(Root::Principal),
                "resource" => ExprKind::Var(Root::Resource),
                "context" => ExprKind::Var(Root::Context),
                _ if self.peek() == Some(&Tok::LParen) => {
                    self.pos += 1;
                    let arg = match self.bump() {
                        Some((Tok::Str(s), _)) => s,
                        Some((t, s)) => {
                            return err(
                                format!(
                                    "`{name}(..)` takes one string literal, found {}",
                                    describe(&t)
                                ),
                                s,
                            );
                        }
                        None => return err("expected a string", self.len..self.len),
                    };
                    let close = self.expect(&Tok::RParen, "`)`")?;
                    return Ok(Expr {
                        kind: ExprKind::Call(name, arg),
                        span: span.start..close.end,
                    });
                }
                _ => {
                    return err(
                        format!(
                            "unknown name `{name}`: conditions start from `principal`, `resource` or `context`"
                        ),
                        span,
                    );
                }
            },
            other => {
                return err(
                    format!("expected a value, found {}", describe(&other)),
                    span,
                );
            }
        };
        Ok(Expr { kind, span })
    }
}

/// One expression, or the n-ary `make` of several.
fn flat(mut items: Vec<Expr>, make: fn(Vec<Expr>) -> ExprKind) -> Expr {
    if items.len() == 1
        && let Some(only) = items.pop()
    {
        return only;
    }
    let start = items.first().map_or(0, |e| e.span.start);
    let end = items.last().map_or(0, |e| e.span.end);
    Expr {
        kind: make(items),
        span: start..end,
    }
}

/// Splits a condition at its top-level `&&`s, left to right.
pub(crate) fn conjuncts(e: Expr) -> Vec<Expr> {
    match e.kind {
        ExprKind::And(items) => items,
        kind => vec![Expr { kind, span: e.span }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Expr {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    #[test]
    fn precedence_and_spans() {
        let e = ok("principal.a == 1 || !resource.b && context.c");
        let ExprKind::Or(items) = &e.kind else {
            panic!("{e:?}")
        };
        assert!(matches!(items[0].kind, ExprKind::Cmp(CmpOp::Eq, _, _)));
        assert!(matches!(items[1].kind, ExprKind::And(_)));
        assert_eq!(items[0].span, 0..16);
        let e = ok("(resource.x)");
        assert_eq!(e.span, 0..12);
    }

    #[test]
    fn methods_calls_sets_like_has() {
        ok(r#"context.peer_ip.isInRange(ip("10.0.0.0/8"))"#);
        ok(r#"principal.roles.containsAny(["a", "b"])"#);
        ok(r#"resource.path like "docs/*""#);
        ok("resource has owner && resource.owner == principal.id");
        ok(r#""x" in principal.scopes"#);
        ok("context.time.hour() >= 9");
        ok("[]");
    }

    #[test]
    fn errors_have_positions() {
        let e = parse("principal.a ==").unwrap_err();
        assert_eq!(e.span, 14..14);
        let e = parse("principal.a @ 1").unwrap_err();
        assert_eq!(e.span, 12..13);
        let e = parse("foo.bar").unwrap_err();
        assert_eq!(e.span, 0..3);
        let e = parse("\"abc").unwrap_err();
        assert_eq!(e.message, "unterminated string");
        let e = parse("principal.a principal.b").unwrap_err();
        assert_eq!(e.span, 12..21);
        assert!(parse("").is_err());
        assert!(parse("-").is_err());
        assert!(parse("99999999999999999999").is_err());
    }

    #[test]
    fn depth_is_limited_without_overflowing_the_stack() {
        for open in ["(", "!", "[", "!("] {
            let s = format!("{}true", open.repeat(5_000));
            let e = parse(&s).unwrap_err();
            assert!(e.message.contains("nests"), "{open}: {e:?}");
        }
        let fine = format!("{}true{}", "(".repeat(20), ")".repeat(20));
        ok(&fine);
        let long_chain = vec!["true"; 1500].join(" && ");
        assert!(matches!(ok(&long_chain).kind, ExprKind::And(ref v) if v.len() == 1500));
    }

    #[test]
    fn method_and_attribute_chains_count_towards_the_depth() {
        for link in [".x()", ".x", ".x(true)"] {
            let s = format!("context.time{}", link.repeat(2_000));
            let e = parse(&s).unwrap_err();
            assert!(e.message.contains("nests"), "{link}: {e:?}");
        }
        // Within the limit: one level for `or`, one per link (`.time` is one), and the links of
        // one chain do not add up with those of the next operand.
        ok(&format!("context.time{}", ".x()".repeat(MAX_DEPTH - 2)));
        assert!(parse(&format!("context.time{}", ".x()".repeat(MAX_DEPTH - 1))).is_err());
        let twice = format!("context.a{0} == context.b{0}", ".x()".repeat(MAX_DEPTH - 2));
        ok(&twice);
        // Links after a parenthesized operand count on top of its inside (17 levels here).
        let parens = |links: usize| {
            format!(
                "{}context.a{}{}",
                "(".repeat(15),
                ")".repeat(15),
                ".x()".repeat(links)
            )
        };
        ok(&parens(MAX_DEPTH - 17));
        assert!(parse(&parens(MAX_DEPTH - 16)).is_err());
        // So do links inside arguments (5 levels at `context.b`).
        let args = |links: usize| format!("context.a.f(context.b{})", ".x()".repeat(links));
        ok(&args(MAX_DEPTH - 5));
        assert!(parse(&args(MAX_DEPTH - 4)).is_err());
    }

    /// The height of `e`'s tree, without recursing.
    fn height(e: &Expr) -> usize {
        let mut max = 0;
        let mut stack = vec![(e, 1)];
        while let Some((e, h)) = stack.pop() {
            max = max.max(h);
            let children: Vec<&Expr> = match &e.kind {
                ExprKind::Attr(b, _) | ExprKind::Like(b, _) | ExprKind::Has(b, _) => vec![b],
                ExprKind::Not(b) => vec![b],
                ExprKind::Method(b, _, args) => std::iter::once(&**b).chain(args).collect(),
                ExprKind::Set(xs) | ExprKind::And(xs) | ExprKind::Or(xs) => xs.iter().collect(),
                ExprKind::Cmp(_, l, r) | ExprKind::In(l, r) => vec![l, r],
                _ => vec![],
            };
            stack.extend(children.into_iter().map(|c| (c, h + 1)));
        }
        max
    }

    #[test]
    fn the_tree_height_is_bounded_whatever_the_shape() {
        // Each level of the parser adds at most a few nodes (`||`, `&&`, a comparison and its
        // operand), so the tree the checker and evaluator recurse into stays shallow.
        let bound = 4 * MAX_DEPTH + 4;
        let link = ".x()";
        let mut shapes = Vec::new();
        // Parenthesized operands followed by chains, nested: `((a.x()..).x()..).x()..`
        let mut e = "context.a".to_owned();
        for _ in 0..40 {
            e = format!("({e}){}", link.repeat(20));
            shapes.push(e.clone());
        }
        // Comparisons and negations between the links.
        let mut e = "context.a".to_owned();
        for _ in 0..60 {
            e = format!("!({e} == context.b{}){}", link.repeat(3), link.repeat(3));
            shapes.push(e.clone());
        }
        // Sets and arguments.
        let mut e = "context.a".to_owned();
        for _ in 0..60 {
            e = format!("[{e}].f({e}){link}");
            if e.len() > MAX_LEN {
                break;
            }
            shapes.push(e.clone());
        }
        for s in shapes {
            if let Ok(e) = parse(&s) {
                assert!(height(&e) <= bound, "{} > {bound}: {s}", height(&e));
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        for s in [
            "\u{1F600}",
            "a.",
            ".",
            "(",
            ")",
            "[,",
            "x(",
            "ip(1)",
            "\\",
            "\"\\q\"",
            "!",
            "&",
            "|",
        ] {
            let _ = parse(s);
        }
    }
}
