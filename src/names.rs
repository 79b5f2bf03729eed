//! The names of things on the wire: the seven transports and the three feeds. This is the one
//! place their spellings live in non-test Rust (URLs, flags, statistics keys, the load
//! tester's `--transport`); everything else uses these enums and their `Display`/`FromStr`.
//! A leaf module: it imports nothing of this crate.

use std::fmt;
use std::str::FromStr;

/// The seven ways of delivering a feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Transport {
    #[value(name = "poll")]
    Poll = 0,
    #[value(name = "longpoll")]
    LongPoll = 1,
    #[value(name = "iframe")]
    Iframe = 2,
    #[value(name = "fetch")]
    Fetch = 3,
    #[value(name = "sse")]
    Sse = 4,
    #[value(name = "ws")]
    Ws = 5,
    #[value(name = "webtransport")]
    WebTransport = 6,
}

impl Transport {
    /// In the order the pages and `loadtest compare` show them.
    /// The streamed responses go from the oldest to the standard one: the hidden iframe,
    /// `fetch()` streaming (a script reads the body as it arrives, as the iframe's document
    /// does), then Server-Sent Events (the same, with the browser doing the reading and the
    /// resume); then the two-way ones, the WebSocket on TCP and WebTransport on UDP (HTTP/3),
    /// the newest. The fallback order (`static/fallback.js`) is this list backwards, the
    /// iframe left out: WebTransport first, with a deadline, since UDP is blocked on many
    /// networks and an engine may lack it (WebKitGTK), so a page must be able to step down.
    pub const ALL: [Transport; 7] = [
        Transport::Poll,
        Transport::LongPoll,
        Transport::Iframe,
        Transport::Fetch,
        Transport::Sse,
        Transport::Ws,
        Transport::WebTransport,
    ];

    /// Every transport's name, in [`Transport::ALL`]'s order: for code that wants the names
    /// as strings (tests, the load tester), so none of them spells the list.
    pub const NAMES: [&'static str; Transport::ALL.len()] = {
        let mut out = [""; Transport::ALL.len()];
        let mut i = 0;
        while i < out.len() {
            out[i] = Transport::ALL[i].as_str();
            i += 1;
        }
        out
    };

    /// The transport's name in URLs (`/sse/clock`), flags and the statistics. `const`, so
    /// the load tester can build its `&'static str` list from it at compile time.
    pub const fn as_str(self) -> &'static str {
        match self {
            Transport::Poll => "poll",
            Transport::LongPoll => "longpoll",
            Transport::Iframe => "iframe",
            Transport::Fetch => "fetch",
            Transport::Sse => "sse",
            Transport::Ws => "ws",
            Transport::WebTransport => "webtransport",
        }
    }

    /// The transport's name as the pages write it at the start of a heading or a table cell.
    pub const fn title(self) -> &'static str {
        match self {
            Transport::Poll => "Short polling",
            Transport::LongPoll => "Long polling",
            Transport::Iframe => "Hidden iframe",
            Transport::Fetch => "Fetch streaming",
            Transport::Sse => "Server-Sent Events",
            Transport::Ws => "WebSocket",
            Transport::WebTransport => "WebTransport",
        }
    }

    /// The colour the pages draw the transport in (the dashboard's series and legend).
    pub const fn color(self) -> &'static str {
        match self {
            Transport::Poll => "#d1495b",
            Transport::LongPoll => "#edae49",
            Transport::Iframe => "#8a5cf6",
            Transport::Fetch => "#2e933c",
            Transport::Sse => "#00798c",
            Transport::Ws => "#30638e",
            Transport::WebTransport => "#6b4e16",
        }
    }

    /// Whether the page sends upstream on the transport's own connection (chat commands,
    /// strokes): a WebSocket's frames, a WebTransport bidirectional stream's lines. The others
    /// send with `POST /api/chat/messages` and `POST /api/draw`.
    pub const fn two_way(self) -> bool {
        match self {
            Transport::Poll
            | Transport::LongPoll
            | Transport::Iframe
            | Transport::Fetch
            | Transport::Sse => false,
            Transport::Ws | Transport::WebTransport => true,
        }
    }

    /// The transport's name inside a sentence: the title, lower-cased unless it is a proper
    /// name (Server-Sent Events, WebSocket).
    pub const fn name_in_sentence(self) -> &'static str {
        match self {
            Transport::Poll => "short polling",
            Transport::LongPoll => "long polling",
            Transport::Iframe => "hidden iframe",
            Transport::Fetch => "fetch streaming",
            Transport::Sse => "Server-Sent Events",
            Transport::Ws => "WebSocket",
            Transport::WebTransport => "WebTransport",
        }
    }
}

/// The feeds the server publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum FeedName {
    #[value(name = "clock")]
    Clock,
    #[value(name = "chat")]
    Chat,
    #[value(name = "draw")]
    Draw,
}

impl FeedName {
    pub const ALL: [FeedName; 3] = [FeedName::Clock, FeedName::Chat, FeedName::Draw];

    pub const fn as_str(self) -> &'static str {
        match self {
            FeedName::Clock => "clock",
            FeedName::Chat => "chat",
            FeedName::Draw => "draw",
        }
    }

    /// The feed named `name`, if there is one (what `FromStr` does, without an error value).
    pub fn parse(name: &str) -> Option<FeedName> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for FeedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is none of the known ones; its message lists them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {given:?}: use one of {known}")]
pub struct UnknownName {
    what: &'static str,
    given: String,
    known: String,
}

fn unknown<T: Copy>(
    what: &'static str,
    given: &str,
    all: &[T],
    name: fn(T) -> &'static str,
) -> UnknownName {
    UnknownName {
        what,
        given: given.to_string(),
        known: all.iter().map(|t| name(*t)).collect::<Vec<_>>().join(", "),
    }
}

impl FromStr for Transport {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, UnknownName> {
        Transport::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| unknown("transport", s, &Transport::ALL, Transport::as_str))
    }
}

impl FromStr for FeedName {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, UnknownName> {
        FeedName::parse(s).ok_or_else(|| unknown("feed", s, &FeedName::ALL, FeedName::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum as _;

    #[test]
    fn display_from_str_and_clap_agree_on_every_name() {
        for t in Transport::ALL {
            assert_eq!(t.to_string().parse::<Transport>(), Ok(t));
            let clap_name = t.to_possible_value().unwrap();
            assert_eq!(clap_name.get_name(), t.as_str());
        }
        for f in FeedName::ALL {
            assert_eq!(f.to_string().parse::<FeedName>(), Ok(f));
            assert_eq!(f.to_possible_value().unwrap().get_name(), f.as_str());
        }
        assert_eq!(Transport::value_variants(), &Transport::ALL);
    }

    #[test]
    fn an_unknown_name_says_what_it_is_and_lists_the_known_ones() {
        let err = "pigeon".parse::<Transport>().unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "unknown transport \"pigeon\": use one of {}",
                Transport::NAMES.join(", ")
            )
        );
        assert!("news".parse::<FeedName>().is_err());
    }
}
