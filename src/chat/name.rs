//! Names in the chat: a nick or a room name is 1–24 letters (any script), digits, `_`, `-`
//! or `.`, parsed once into a type ([`Nick`], a room's `Arc<str>`) at the edge of the chat.

use std::sync::Arc;

use super::ChatError;

/// How many characters a nick or a room name has.
pub const NAME_CHARS: std::ops::RangeInclusive<usize> = 1..=24;

/// A nick or a room name: 1–24 characters of letters, digits, `_`, `-` and `.`.
fn valid_name(s: &str) -> bool {
    let n = s.chars().count();
    NAME_CHARS.contains(&n)
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

    /// The keys under which this nick is held: two nicks with a key in common cannot both
    /// be online (see [`look_alike_keys`]).
    pub fn keys(&self) -> Vec<String> {
        look_alike_keys(&self.0)
    }
}

/// Keys that make look-alike nicks collide: `Alice` cannot pass for `alice` (case), nor
/// `аlice` with a Cyrillic `а`, `a1ice` with a digit or `ａｌｉｃｅ` in full width (the
/// confusables skeleton of Unicode UTS #39 §4, which maps each character to the prototype
/// it can be mistaken for). The skeleton is case-sensitive by design (it maps `I` to `l`),
/// so there are two keys, one made from the lowercased nick and one from the nick as typed,
/// each lowercased after: `ALICE` meets `alice` on the first, `AIice` (capital i) on the
/// second. One key or two, never empty for a valid nick.
pub fn look_alike_keys(nick: &str) -> Vec<String> {
    use unicode_security::confusable_detection::skeleton;
    let folded: String = skeleton(&nick.to_lowercase())
        .collect::<String>()
        .to_lowercase();
    let typed: String = skeleton(nick).collect::<String>().to_lowercase();
    if typed == folded {
        vec![folded]
    } else {
        vec![folded, typed]
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

    fn collide(a: &str, b: &str) -> bool {
        let b = look_alike_keys(b);
        look_alike_keys(a).iter().any(|k| b.contains(k))
    }

    #[test]
    fn look_alike_nicks_collide_and_different_ones_do_not() {
        for (a, b) in [
            ("alice", "Alice"),
            ("alice", "ALICE"),
            ("alice", "\u{430}lice"), // Cyrillic а
            ("alice", "AIice"),       // capital i for l
            ("alice", "a1ice"),
            ("alice", "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}"), // full width
            ("bob", "B0B"),
            ("paypal", "\u{440}\u{430}\u{443}\u{440}\u{430}l"), // Cyrillic р а у р а
            ("emile", "ernile"),                                // rn for m
            ("émile", "e\u{301}mile"),                          // é composed and decomposed
        ] {
            assert!(collide(a, b), "{a:?} and {b:?} should collide");
            assert!(collide(b, a), "{b:?} and {a:?} should collide");
        }
        for (a, b) in [
            ("alice", "alicia"),
            ("bob", "rob"),
            ("émile", "emile"),
            ("x_y", "x-y"),
        ] {
            assert!(!collide(a, b), "{a:?} and {b:?} should not collide");
        }
    }

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
