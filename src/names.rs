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

    /// The colour the transport is drawn in, on the pages (the dashboard's series and legend,
    /// through facts.js) and in the load tester's charts ([`Transport::rgb`]). The palette is
    /// Okabe and Ito's (Color Universal Design, 2008), made for slides that colour-blind
    /// readers can follow, without its yellow, which a projector washes out on white; the
    /// test below holds every colour to that (WebTransport, the seventh, takes its black).
    pub const fn color(self) -> &'static str {
        match self {
            Transport::Poll => "#d55e00",
            Transport::LongPoll => "#e69f00",
            Transport::Iframe => "#cc79a7",
            Transport::Fetch => "#009e73",
            Transport::Sse => "#56b4e9",
            Transport::Ws => "#0072b2",
            Transport::WebTransport => "#000000",
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

    /// [`Transport::color`] as red, green and blue, for drawing outside a page (the load
    /// tester's charts). Every colour is checked to be `#rrggbb` when the crate compiles.
    pub const fn rgb(self) -> [u8; 3] {
        let hex = self.color().as_bytes();
        assert!(
            hex.len() == 7 && hex[0] == b'#',
            "a transport colour is #rrggbb"
        );
        [hex_byte(hex, 1), hex_byte(hex, 3), hex_byte(hex, 5)]
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

// Every transport's colour is `#rrggbb`: a typo fails the build, not a chart.
const _: () = {
    let mut i = 0;
    while i < Transport::ALL.len() {
        let _ = Transport::ALL[i].rgb();
        i += 1;
    }
};

/// The byte written as two hex digits at `hex[i..i + 2]`.
const fn hex_byte(hex: &[u8], i: usize) -> u8 {
    const fn digit(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("a transport colour is #rrggbb"),
        }
    }
    digit(hex[i]) * 16 + digit(hex[i + 1])
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

    /// The colours stay apart for readers with each kind of colour blindness and on a
    /// projector. Each pair is at least 15 apart in CIELAB (ΔE*ab; about 2.3 is just
    /// noticeable, so 15 keeps thin lines and small legend swatches apart) in normal vision
    /// and in protanopia, deuteranopia and tritanopia, simulated at full severity with the
    /// matrices of Machado, Oliveira and Fernandes (2009) on linear RGB. No colour is paler
    /// than 2.2:1 against the white the pages and charts are drawn on (WCAG's contrast
    /// ratio), so none fades out on a projector.
    #[test]
    fn the_transport_colours_stay_apart_for_colour_blind_readers_and_on_a_projector() {
        const VISIONS: [(&str, [[f64; 3]; 3]); 4] = [
            (
                "normal",
                [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            ),
            (
                "protanopia",
                [
                    [0.152286, 1.052583, -0.204868],
                    [0.114503, 0.786281, 0.099216],
                    [-0.003882, -0.048116, 1.051998],
                ],
            ),
            (
                "deuteranopia",
                [
                    [0.367322, 0.860646, -0.227968],
                    [0.280085, 0.672501, 0.047413],
                    [-0.011820, 0.042940, 0.968881],
                ],
            ),
            (
                "tritanopia",
                [
                    [1.255528, -0.076749, -0.178779],
                    [-0.078411, 0.930809, 0.147602],
                    [0.004733, 0.691367, 0.303900],
                ],
            ),
        ];
        let linear = |t: Transport| {
            t.rgb().map(|c| {
                let c = f64::from(c) / 255.0;
                if c <= 0.04045 {
                    c / 12.92
                } else {
                    ((c + 0.055) / 1.055).powf(2.4)
                }
            })
        };
        // Linear sRGB to CIELAB, white point D65.
        let lab = |[r, g, b]: [f64; 3]| {
            let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
            let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
            let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
            let f = |t: f64| {
                if t > 0.008856 {
                    t.cbrt()
                } else {
                    7.787 * t + 16.0 / 116.0
                }
            };
            let (fx, fy, fz) = (f(x), f(y), f(z));
            [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
        };
        let mut close = Vec::new();
        for (vision, m) in VISIONS {
            let seen = |t: Transport| {
                let c = linear(t);
                lab(m.map(|row| (row[0] * c[0] + row[1] * c[1] + row[2] * c[2]).clamp(0.0, 1.0)))
            };
            for (i, a) in Transport::ALL.iter().enumerate() {
                for b in &Transport::ALL[i + 1..] {
                    let (p, q) = (seen(*a), seen(*b));
                    let delta = p
                        .iter()
                        .zip(&q)
                        .map(|(u, v)| (u - v).powi(2))
                        .sum::<f64>()
                        .sqrt();
                    if delta < 15.0 {
                        close.push(format!("{a} and {b} in {vision}: ΔE {delta:.1}"));
                    }
                }
            }
        }
        for t in Transport::ALL {
            let [r, g, b] = linear(t);
            let contrast = 1.05 / (0.2126 * r + 0.7152 * g + 0.0722 * b + 0.05);
            if contrast < 2.2 {
                close.push(format!("{t} ({}) on white: {contrast:.1}:1", t.color()));
            }
        }
        assert!(close.is_empty(), "colours too close:\n{}", close.join("\n"));
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
