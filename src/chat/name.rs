//! Names in the chat: a nick or a room name is 1–24 letters (any script), digits, `_`, `-`
//! or `.`, parsed once into a type ([`Nick`], a room's `Arc<str>`) at the edge of the chat.

use std::sync::Arc;

use super::ChatError;

/// A nick or a room name: 1–24 characters of letters, digits, `_`, `-` and `.`.
fn valid_name(s: &str) -> bool {
    let n = s.chars().count();
    (1..=24).contains(&n)
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A valid nick (parse, don't validate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nick(String);

impl Nick {
    pub fn parse(s: &str) -> Result<Nick, ChatError> {
        if valid_name(s) {
            Ok(Nick(s.to_string()))
        } else {
            Err(ChatError::Invalid(
                "invalid_nick",
                format!("nick {s:?} must be 1–24 letters, digits, '_', '-' or '.'"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Nicks are unique regardless of case, so `Alice` cannot pass for `alice`.
    pub(super) fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A valid room name.
pub fn parse_room(s: &str) -> Result<Arc<str>, ChatError> {
    if valid_name(s) {
        Ok(Arc::from(s))
    } else {
        Err(ChatError::Invalid(
            "invalid_room",
            format!("room {s:?} must be 1–24 letters, digits, '_', '-' or '.'"),
        ))
    }
}

impl From<Nick> for String {
    fn from(nick: Nick) -> String {
        nick.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicks_follow_the_rules() {
        for ok in [
            "alice",
            "a",
            "Bob_2.0-x",
            "émile",
            "abcdefghijklmnopqrstuvwx",
        ] {
            assert!(Nick::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "a@b",
            "<img>",
            "abcdefghijklmnopqrstuvwxy",
            "x\u{2028}",
        ] {
            assert!(Nick::parse(bad).is_err(), "{bad:?}");
        }
    }
}
