//! Property tests for every parser the server wrote itself: cursors (`after=` and
//! `Last-Event-ID`, one function), `rooms=`, diagnostic tags, nicks and duration flags.
//! Each takes arbitrary input: it must never panic, and what it accepts must satisfy the
//! contract (docs/API.md); a refusal is the contract's 400 with the documented code.

use std::time::Duration;

use proptest::prelude::*;
use pushpoll::chat::Nick;
use pushpoll::config::{MAX_DURATION, parse_duration};
use pushpoll::diag::parse_tag;
use pushpoll::error::ApiError;
use pushpoll::http::{MAX_ROOMS, MAX_ROOMS_PARAM_BYTES, parse_cursor, parse_rooms};

/// A valid room or nick: 1–24 letters, digits, `_`, `-` or `.` (Unicode letters included).
fn valid_name(s: &str) -> bool {
    (1..=24).contains(&s.chars().count())
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A refusal is a client error with the given code, never a 5xx.
fn refused_with(err: &ApiError, code: &str) {
    assert_eq!(err.status().as_u16(), 400, "{err:?}");
    assert_eq!(err.code(), code, "{err:?}");
}

/// Room names as clients write them: mostly valid, some Unicode, some too long or odd.
fn room_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z]{1,3}",
        1 => "[A-Za-z0-9_.\\-éß字]{1,24}",
        1 => "[ ]{0,2}[a-z]{1,4}[ ]{0,2}",
        1 => ".{0,30}",
    ]
}

proptest! {
    // --- cursors: `after=ID` and the SSE `Last-Event-ID` header share `parse_cursor` ---

    #[test]
    fn a_cursor_never_panics_and_accepts_only_a_whole_number(raw in ".{0,40}") {
        for source in ["after", "Last-Event-ID"] {
            match parse_cursor(source, &raw) {
                Ok(n) => {
                    // What is accepted is a (trimmed, optionally `+`-signed) decimal of n.
                    let digits = raw.trim().strip_prefix('+').unwrap_or(raw.trim());
                    prop_assert!(!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
                    prop_assert_eq!(digits.parse::<u128>().ok(), Some(u128::from(n)));
                }
                Err(err) => refused_with(&err, "bad_cursor"),
            }
        }
    }

    #[test]
    fn every_event_id_round_trips_as_a_cursor(n in any::<u64>(), pad in "[ \t]{0,3}") {
        prop_assert_eq!(parse_cursor("after", &format!("{pad}{n}{pad}")).ok(), Some(n));
        prop_assert_eq!(parse_cursor("Last-Event-ID", &n.to_string()).ok(), Some(n));
    }

    #[test]
    fn a_cursor_past_u64_or_negative_is_refused(n in any::<u64>(), extra in 1u64..10) {
        let over = u128::from(u64::MAX) + u128::from(n % 1000) + 1;
        refused_with(&parse_cursor("after", &over.to_string()).unwrap_err(), "bad_cursor");
        refused_with(&parse_cursor("after", &format!("-{extra}")).unwrap_err(), "bad_cursor");
    }

    // --- rooms= ---

    #[test]
    fn rooms_never_panics_and_what_it_accepts_is_bounded(raw in ".{0,200}") {
        match parse_rooms(&raw) {
            Ok(rooms) => {
                prop_assert!((1..=MAX_ROOMS).contains(&rooms.len()));
                for (i, room) in rooms.iter().enumerate() {
                    prop_assert!(valid_name(room), "{:?}", room);
                    prop_assert!(!rooms[..i].contains(room), "repeat {:?}", room);
                }
            }
            Err(err) => refused_with(&err, "invalid_room"),
        }
    }

    #[test]
    fn rooms_keeps_first_occurrences_and_refuses_a_seventeenth(
        names in proptest::collection::vec(room_name(), 1..40)
    ) {
        let raw = names.join(",");
        // A generated name may itself hold a comma: the model splits the joined text too.
        let mut distinct: Vec<&str> = Vec::new();
        for n in raw.split(',').map(str::trim) {
            if !distinct.contains(&n) {
                distinct.push(n);
            }
        }
        let acceptable = raw.len() <= MAX_ROOMS_PARAM_BYTES
            && distinct.len() <= MAX_ROOMS
            && distinct.iter().all(|n| valid_name(n));
        prop_assert_eq!(parse_rooms(&raw).is_ok(), acceptable, "{:?}", raw);
        match parse_rooms(&raw) {
            Ok(rooms) => {
                let got: Vec<&str> = rooms.iter().map(|r| &**r).collect();
                prop_assert_eq!(got, distinct);
            }
            Err(err) => {
                refused_with(&err, "invalid_room");
            }
        }
    }

    #[test]
    fn rooms_repeats_are_folded_within_the_byte_bound(name in "[a-z]{1,8}", times in 1usize..300) {
        let raw = vec![name.as_str(); times].join(",");
        match parse_rooms(&raw) {
            Ok(rooms) => {
                prop_assert_eq!(rooms.len(), 1);
                prop_assert_eq!(&*rooms[0], name.as_str());
            }
            Err(err) => {
                refused_with(&err, "invalid_room");
                prop_assert!(raw.len() > MAX_ROOMS_PARAM_BYTES);
            }
        }
    }

    // --- diagnostic tags (the rules are tightening to >=128-bit tags; these hold for both) ---

    #[test]
    fn a_tag_never_panics_and_accepted_tags_are_short_safe_words(raw in ".{0,80}") {
        match parse_tag(&raw) {
            Ok(tag) => {
                prop_assert!((1..=64).contains(&tag.len()));
                prop_assert!(tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            }
            Err(err) => refused_with(&err, "invalid_tag"),
        }
    }

    #[test]
    fn a_tag_with_any_other_character_is_refused(
        head in "[A-Za-z0-9_-]{0,20}",
        bad in "[^A-Za-z0-9_-]",
        tail in "[A-Za-z0-9_-]{0,20}",
    ) {
        let raw = format!("{head}{bad}{tail}");
        refused_with(&parse_tag(&raw).unwrap_err(), "invalid_tag");
        refused_with(&parse_tag(&"a".repeat(65)).unwrap_err(), "invalid_tag");
    }

    // --- nicks ---

    #[test]
    fn a_nick_never_panics_and_round_trips(raw in ".{0,40}") {
        match Nick::parse(&raw) {
            Ok(nick) => {
                prop_assert_eq!(nick.as_str(), raw.as_str());
                prop_assert!(valid_name(nick.as_str()));
            }
            Err(err) => {
                refused_with(&err.into(), "invalid_nick");
                prop_assert!(!valid_name(&raw));
            }
        }
    }

    // --- duration flags ---

    #[test]
    fn a_duration_never_panics_and_stays_within_the_bound(raw in "[0-9 ]{0,25}[a-z ]{0,3}") {
        if let Ok(d) = parse_duration(&raw) {
            prop_assert!(!d.is_zero() && d <= MAX_DURATION);
        }
    }

    #[test]
    fn a_duration_in_ms_round_trips(ms in 1u64..=(366 * 86_400_000)) {
        prop_assert_eq!(parse_duration(&format!("{ms}ms")), Ok(Duration::from_millis(ms)));
        prop_assert_eq!(parse_duration(&format!(" {ms}ms ")), Ok(Duration::from_millis(ms)));
    }

    #[test]
    fn a_duration_past_the_bound_is_an_error_not_a_panic(n in any::<u64>(), unit in "(ms|s|m|h|)") {
        let millis_per_unit: u128 = match unit.as_str() {
            "ms" => 1,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => 1000,
        };
        let total = u128::from(n) * millis_per_unit;
        let result = parse_duration(&format!("{n}{unit}"));
        if n == 0 || total > MAX_DURATION.as_millis() {
            prop_assert!(result.is_err(), "{n}{unit}: {result:?}");
        } else {
            prop_assert_eq!(result, Ok(Duration::from_millis(total as u64)));
        }
    }
}
