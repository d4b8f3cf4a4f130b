//! Scopes: validation against RFC 6750, sets, and hierarchies (a broader scope implying others).

use std::collections::{BTreeMap, BTreeSet};

use crate::{BuildError, Setting};

const SCOPE: Setting = Setting::new("scope", "scope");

/// Whether `c` may appear in a scope token (RFC 6750 §3: `%x21 / %x23-5B / %x5D-7E`).
pub fn is_scope_char(c: u8) -> bool {
    c == 0x21 || (0x23..=0x5B).contains(&c) || (0x5D..=0x7E).contains(&c)
}

/// Checks one configured scope at start-up: non-empty, RFC 6750 characters only.
pub fn validate_scope(scope: &str) -> Result<(), BuildError> {
    if scope.is_empty() {
        return Err(BuildError::invalid(SCOPE, "empty scope"));
    }
    if !scope.bytes().all(is_scope_char) {
        return Err(BuildError::invalid(
            SCOPE,
            format!(
                "scope {:?} has characters outside the RFC 6750 set",
                scope.escape_debug().to_string()
            ),
        ));
    }
    Ok(())
}

/// Splits a configured list ("a b", "a,b", "a, b") into its items, dropping empty ones.
pub fn split_list(raw: &str) -> Vec<String> {
    raw.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An ordered, duplicate-free set of validated scopes.
///
/// ```
/// use mcp_auth_core::ScopeSet;
/// let scopes = ScopeSet::parse("todo:read, todo:write").unwrap();
/// assert_eq!(scopes.to_header_value(), "todo:read todo:write");
/// assert!(ScopeSet::parse("bad\"scope").is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet {
    scopes: Vec<String>,
}

impl ScopeSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a set from items, validating each (RFC 6750 character set).
    pub fn try_from_iter<I, S>(items: I) -> Result<Self, BuildError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut set = ScopeSet::new();
        for s in items {
            let s = s.into();
            validate_scope(&s)?;
            if !set.scopes.contains(&s) {
                set.scopes.push(s);
            }
        }
        Ok(set)
    }

    /// Parses a comma- or space-separated list.
    pub fn parse(raw: &str) -> Result<Self, BuildError> {
        Self::try_from_iter(split_list(raw))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }

    /// The number of scopes.
    pub fn len(&self) -> usize {
        self.scopes.len()
    }

    /// The scopes in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.scopes.iter().map(String::as_str)
    }

    /// The scopes as a slice.
    pub fn as_slice(&self) -> &[String] {
        &self.scopes
    }

    /// Whether `scope` is in the set.
    pub fn contains(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Adds the scopes of `other` not yet present.
    pub fn extend_from(&mut self, other: &ScopeSet) {
        for s in &other.scopes {
            if !self.contains(s) {
                self.scopes.push(s.clone());
            }
        }
    }

    /// The space-separated form used in `scope="…"` parameters.
    pub fn to_header_value(&self) -> String {
        self.scopes.join(" ")
    }
}

impl<'a> IntoIterator for &'a ScopeSet {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.scopes.iter()
    }
}

/// Which scopes imply which (MCP 2026-07-28 lets a broader scope stand for narrower ones).
///
/// The relation is transitive: with `admin ⇒ todo:write` and `todo:write ⇒ todo:read`, a token
/// holding `admin` satisfies a requirement for `todo:read`.
///
/// ```
/// use mcp_auth_core::ScopeHierarchy;
/// let h = ScopeHierarchy::new()
///     .imply("todo:write", ["todo:read"])
///     .imply("admin", ["todo:write"]);
/// let granted = vec!["admin".to_string()];
/// assert!(h.satisfies(&granted, "todo:read"));
/// assert!(!h.satisfies(&granted, "billing:read"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ScopeHierarchy {
    implies: BTreeMap<String, BTreeSet<String>>,
}

impl ScopeHierarchy {
    /// An empty hierarchy: every scope stands only for itself.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares that holding `broader` grants each of `narrower`.
    pub fn imply<I, S>(mut self, broader: impl Into<String>, narrower: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let entry = self.implies.entry(broader.into()).or_default();
        entry.extend(narrower.into_iter().map(Into::into));
        self.close();
        self
    }

    /// Whether nothing is declared.
    pub fn is_empty(&self) -> bool {
        self.implies.is_empty()
    }

    // Makes the relation transitive, so lookups never recurse per request.
    fn close(&mut self) {
        loop {
            let mut changed = false;
            let snapshot = self.implies.clone();
            for implied in self.implies.values_mut() {
                let mut add = Vec::new();
                for n in implied.iter() {
                    if let Some(more) = snapshot.get(n) {
                        add.extend(more.iter().filter(|m| !implied.contains(*m)).cloned());
                    }
                }
                if !add.is_empty() {
                    changed = true;
                    implied.extend(add);
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// Whether `granted` scopes satisfy `required`, literally or through the hierarchy.
    pub fn satisfies(&self, granted: &[String], required: &str) -> bool {
        granted.iter().any(|g| {
            g == required
                || self
                    .implies
                    .get(g)
                    .is_some_and(|implied| implied.contains(required))
        })
    }

    /// Whether `granted` satisfies every scope of `required`.
    pub fn satisfies_all(&self, granted: &[String], required: &ScopeSet) -> bool {
        required.iter().all(|r| self.satisfies(granted, r))
    }
}

impl std::str::FromStr for ScopeSet {
    type Err = BuildError;

    /// The same as [`ScopeSet::parse`].
    fn from_str(raw: &str) -> Result<Self, BuildError> {
        ScopeSet::parse(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_accepts_commas_and_spaces() {
        assert_eq!(split_list(" a, b  c,,d "), vec!["a", "b", "c", "d"]);
        assert!(split_list(" , ").is_empty());
    }

    #[test]
    fn scope_charset_is_rfc6750() {
        assert!(validate_scope("files:read").is_ok());
        for bad in ["", "a b", "a\"b", "a\\b", "a\u{7f}", "é", "a\r\nb"] {
            assert!(validate_scope(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn hierarchy_is_transitive_and_literal_still_counts() {
        let h = ScopeHierarchy::new().imply("b", ["c"]).imply("a", ["b"]);
        let g = vec!["a".to_string()];
        assert!(h.satisfies(&g, "a"));
        assert!(h.satisfies(&g, "b"));
        assert!(h.satisfies(&g, "c"));
        assert!(!h.satisfies(&["c".to_string()], "a"));
        let req = ScopeSet::parse("b c").unwrap();
        assert!(h.satisfies_all(&g, &req));
        assert!(!ScopeHierarchy::new().satisfies_all(&g, &req));
    }

    #[test]
    fn scope_set_dedups_and_keeps_order() {
        let s = ScopeSet::parse("b a b").unwrap();
        assert_eq!(s.to_header_value(), "b a");
    }
}
