//! pov-sessions: from HTTP transactions to users, sessions, page views and
//! funnel steps.
//!
//! [`Tx::from_http`] reduces a transaction to what the user-level stages
//! need (reading identity and money from it once). A [`Sessionizer`] ties
//! each to a user by the `[users]` rules, keeps each user's activity as an
//! open session until the session timeout passes, and hands back closed
//! [`Session`]s cut into [`PageView`]s.
//!
//! Identity rules, in order: a configured session cookie; a configured
//! header; a session id in the query or path; for a request sent before the
//! user had a cookie, the cookie its response set (and then every request
//! on the same connection, and unclaimed ones from the same address and
//! User-Agent shortly before) — a new user unless the same connection, a
//! sign-in name or a persistent cookie (analytics or device id) ties it to
//! an earlier one; a sign-in name; a persistent cookie; and last, client
//! address + User-Agent. Failed connection attempts (refused, unanswered)
//! belong to the user whose next connection from the same address followed
//! them. Each closed session is judged by the `[robots]` rules
//! ([`robots`]).
#![forbid(unsafe_code)]

pub mod config;
pub mod identity;
pub mod remember;
pub mod robots;
pub mod sessionize;
pub mod tx;
pub mod values;
pub mod work;

pub use config::{PageRule, RevenueConfig, RobotsConfig, SessionsConfig, UsersConfig};
pub use identity::UserKey;
pub use robots::{Robot, RobotRules};
pub use sessionize::{
    BROWSER_RETRY, Built, Closing, ClosingPart, FINISH_CHUNK, FINISH_TXS, FailedConn, FailedConnKind, IdentityCaps,
    MAX_RECENT_PER_ADDRESS, MAX_REMEMBERED_CONNECTIONS, MAX_WAITING, PageRules, PageView, Session, SessionStats,
    Sessionizer, SessionizerConfig,
};
pub use tx::{ErrorBody, Evidence, ResourceClass, Tx};
