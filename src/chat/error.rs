//! The chat's own errors: what a chat operation can refuse, in the chat's terms. Each
//! refusal's message is written here, once; the HTTP edge maps each to a status and a code
//! (`impl From<ChatError> for ApiError` and `ApiError::status`/`code`, in `crate::error`), and
//! the WebSocket edge sends that code and message as an `error` event.

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// A field that breaks a rule; the code names the rule (`invalid_nick`, `invalid_room`,
    /// `invalid_text`).
    #[error("{1}")]
    Invalid(&'static str, String),
    /// No live session (never signed in, logged out, or idled out).
    #[error("sign in first: POST /api/session {{\"nick\":\"…\"}}")]
    SignedOut,
    #[error(
        "the nick {0:?} is taken by someone online, or looks like one that is (case, or look-alike letters: Unicode UTS #39)"
    )]
    NickTaken(String),
    #[error("nobody called {0:?} is online")]
    UnknownUser(String),
    /// A budget ran out: `what` names it ("messages and renames").
    #[error("{}", too_many(.what, *.retry_after))]
    RateLimited {
        what: &'static str,
        retry_after: u64,
    },
    #[error("the server holds its limit of {0} chat sessions; try again later")]
    TooManySessions(u64),
    /// A command whose fields do not fit together (`room` and `to` both given).
    #[error("{0}")]
    BadCommand(String),
    /// The engine is unreachable or too slow (`503` with `Retry-After`). Refused at once,
    /// nothing was stored; timed out, the command may still run when the engine resumes.
    /// `store` is what the engine calls itself ([`crate::chat::Engine::store`]).
    #[error("the chat's store ({store}) is unavailable; retry in {retry_after} s")]
    Unavailable {
        store: &'static str,
        retry_after: u64,
    },
    /// The store failed or its task panicked. Its message is the cause, for the logs; a
    /// client is told only the edge's `internal error`.
    #[error(transparent)]
    Internal(anyhow::Error),
}

/// What a client is told when a budget ran out: the chat's budgets ([`ChatError::RateLimited`])
/// and the edge's own (logins per address, strokes) say it in these words.
pub fn too_many(what: &str, retry_after: u64) -> String {
    format!("too many {what}; retry in {retry_after} s")
}
