//! The DR REST API rate limiter of VR and SRM 8.8+, as the VR 8.8 administration guide
//! documents it ("DR REST API Rate Limiter"): three tiers checked in order, client IP (100
//! requests), service (1000) and session (50, keyed by `x-dr-session`), each a fixed window of
//! 60 s. A request over any quota is answered at once with 429 and a `ResponseError`.
//!
//! Where the guide is silent, the simulator takes the reading that is harder on a client:
//!
//! - A request refused by a later tier has already used its place in the earlier ones (each
//!   tier counts the requests it let through).
//! - Refused requests do not count against a quota, but a key that keeps sending over its quota
//!   (`ban.after` refusals in one window) is refused everything for `ban.windows` more windows:
//!   VMware's own samples warn that polling too fast earns "a temporary ban".
//! - No `Retry-After` unless asked for: the guide documents none.
//! - Windows are aligned to the simulator's start, shifted by `offset`, so tests can put a
//!   boundary anywhere relative to a client's first request.
//! - `POST /session` carries no session yet: only the IP and service tiers count it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use axum::http::StatusCode;
use serde::Serialize;
use tokio::time::Instant;

use super::error::ApiError;
use crate::vr::Limits;

/// The limiter's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub per_ip: u32,
    pub per_service: u32,
    pub per_session: u32,
    pub window: Duration,
    /// Send `Retry-After` (seconds to the window's end) with a 429.
    pub retry_after: bool,
    pub ban: Option<Ban>,
    /// How far into its first window the simulator starts.
    pub offset: Duration,
}

/// A temporary ban for a key that keeps sending over its quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    /// Refusals of one key within one window that earn the ban.
    pub after: u32,
    /// Windows the ban lasts after the one it was earned in.
    pub windows: u32,
}

impl RateLimits {
    /// The defaults of VR 8.8+.
    pub const APPLIANCE: RateLimits = RateLimits {
        per_ip: 100,
        per_service: 1000,
        per_session: 50,
        window: Duration::from_secs(60),
        retry_after: false,
        ban: None,
        offset: Duration::ZERO,
    };

    /// The appliance's quotas over a shorter window: a test keeps the proportions, not the
    /// minutes.
    pub fn scaled(window: Duration) -> RateLimits {
        RateLimits {
            window,
            ..RateLimits::APPLIANCE
        }
    }

    /// What a client of this appliance must keep to.
    pub fn client_limits(&self) -> Limits {
        Limits {
            per_session: self.per_session,
            per_ip: self.per_ip,
            window: self.window,
        }
    }
}

/// The three tiers, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    Ip,
    Service,
    Session,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Ip => "ip",
            Tier::Service => "service",
            Tier::Session => "session",
        }
    }

    fn described(self) -> &'static str {
        match self {
            Tier::Ip => "client IP address",
            Tier::Service => "service",
            Tier::Session => "session",
        }
    }
}

/// What the limiter did, per tier; part of `/__sim/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LimiterStats {
    /// 429s per tier (`ip`, `service`, `session`), bans included.
    pub refused: BTreeMap<String, u64>,
    /// Refusals because the key was banned, and bans handed out.
    pub refused_banned: u64,
    pub bans: u64,
    /// The most requests one key of a tier had admitted in one of the limiter's windows.
    pub peak_in_window: BTreeMap<String, u32>,
    /// The most requests one key of a tier had admitted within any `window`-long interval,
    /// wherever it starts: a client that keeps to its quota whatever the alignment keeps this
    /// at or under the quota.
    pub peak_in_any_window: BTreeMap<String, u32>,
}

#[derive(Debug)]
struct KeyState {
    window: u64,
    admitted: u32,
    refused: u32,
    banned_until: Option<u64>,
    /// Admission instants within the last window, for the sliding peak.
    recent: VecDeque<Instant>,
}

#[derive(Debug)]
pub(crate) struct Limiter {
    limits: RateLimits,
    epoch: Instant,
    keys: HashMap<(Tier, String), KeyState>,
    pub stats: LimiterStats,
}

impl Limiter {
    pub fn new(limits: RateLimits) -> Limiter {
        Limiter {
            limits,
            epoch: Instant::now(),
            keys: HashMap::new(),
            stats: LimiterStats::default(),
        }
    }

    fn window_of(&self, now: Instant) -> u64 {
        let since = now.duration_since(self.epoch) + self.limits.offset;
        (since.as_nanos() / self.limits.window.as_nanos().max(1)) as u64
    }

    /// Admits a request or says which tier refuses it.
    pub fn check(&mut self, now: Instant, ip: &str, session: Option<&str>) -> Result<(), ApiError> {
        let tiers = [
            (Tier::Ip, Some(ip), self.limits.per_ip),
            (Tier::Service, Some("vr"), self.limits.per_service),
            (Tier::Session, session, self.limits.per_session),
        ];
        for (tier, key, quota) in tiers {
            let Some(key) = key else { continue };
            self.pass(now, tier, key, quota)?;
        }
        Ok(())
    }

    fn pass(&mut self, now: Instant, tier: Tier, key: &str, quota: u32) -> Result<(), ApiError> {
        let window = self.window_of(now);
        let span = self.limits.window;
        let state = self
            .keys
            .entry((tier, key.to_string()))
            .or_insert_with(|| KeyState {
                window,
                admitted: 0,
                refused: 0,
                banned_until: None,
                recent: VecDeque::new(),
            });
        if state.window != window {
            state.window = window;
            state.admitted = 0;
            state.refused = 0;
        }
        let banned = state.banned_until.is_some_and(|until| window <= until);
        if banned || state.admitted >= quota {
            state.refused += 1;
            let earned_ban = self
                .limits
                .ban
                .filter(|ban| !banned && state.refused >= ban.after);
            if let Some(ban) = earned_ban {
                state.banned_until = Some(window + u64::from(ban.windows));
            }
            return Err(self.refuse(now, tier, quota, banned, earned_ban.is_some()));
        }
        state.admitted += 1;
        while state
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= span)
        {
            state.recent.pop_front();
        }
        state.recent.push_back(now);
        let (admitted, recent) = (state.admitted, state.recent.len() as u32);
        let name = tier.as_str().to_string();
        let peak = self.stats.peak_in_window.entry(name.clone()).or_default();
        *peak = (*peak).max(admitted);
        let sliding = self.stats.peak_in_any_window.entry(name).or_default();
        *sliding = (*sliding).max(recent);
        Ok(())
    }

    /// The 429 for a request over `tier`'s quota (or from a banned key), counted.
    fn refuse(
        &mut self,
        now: Instant,
        tier: Tier,
        quota: u32,
        banned: bool,
        ban: bool,
    ) -> ApiError {
        *self
            .stats
            .refused
            .entry(tier.as_str().to_string())
            .or_default() += 1;
        self.stats.refused_banned += u64::from(banned);
        self.stats.bans += u64::from(ban);
        let span = self.limits.window;
        let message = if banned {
            format!(
                "Too many requests: the {} is temporarily banned for exceeding its rate limit",
                tier.described()
            )
        } else {
            format!(
                "Too many requests: the rate limit of the {} ({quota} requests per {} seconds) is exceeded",
                tier.described(),
                span.as_secs_f64()
            )
        };
        let error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS", message);
        if !self.limits.retry_after {
            return error;
        }
        let into_window = (now.duration_since(self.epoch) + self.limits.offset).as_secs_f64()
            % span.as_secs_f64();
        error.with_retry_after((span.as_secs_f64() - into_window).ceil() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(60);

    fn limiter(limits: RateLimits) -> (Limiter, Instant) {
        let l = Limiter::new(limits);
        let epoch = l.epoch;
        (l, epoch)
    }

    fn small() -> RateLimits {
        RateLimits {
            per_ip: 10,
            per_service: 15,
            per_session: 5,
            ..RateLimits::APPLIANCE
        }
    }

    fn refused_by(r: Result<(), ApiError>) -> Option<String> {
        r.err().map(|e| {
            assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
            assert!(e.retry_after.is_none(), "no Retry-After unless asked for");
            e.message
        })
    }

    #[tokio::test(start_paused = true)]
    async fn each_tier_refuses_over_its_own_quota_in_order() {
        let (mut l, t) = limiter(small());
        for _ in 0..5 {
            assert!(l.check(t, "10.0.0.1", Some("s1")).is_ok());
        }
        let why = refused_by(l.check(t, "10.0.0.1", Some("s1"))).unwrap();
        assert!(why.contains("session"), "{why}");
        // Another session from the same address: the IP tier still has room for 4 (it counted
        // the refused request too), then refuses.
        for _ in 0..4 {
            assert!(l.check(t, "10.0.0.1", Some("s2")).is_ok());
        }
        let why = refused_by(l.check(t, "10.0.0.1", Some("s3"))).unwrap();
        assert!(why.contains("client IP"), "{why}");
        // Another address: the service tier (15) has 5 left.
        for _ in 0..5 {
            assert!(l.check(t, "10.0.0.2", None).is_ok());
        }
        let why = refused_by(l.check(t, "10.0.0.2", None)).unwrap();
        assert!(why.contains("service"), "{why}");
        assert_eq!(l.stats.refused["session"], 1);
        assert_eq!(l.stats.refused["ip"], 1);
        assert_eq!(l.stats.refused["service"], 1);
        assert_eq!(l.stats.peak_in_window["session"], 5);
    }

    #[tokio::test(start_paused = true)]
    async fn windows_are_fixed_and_shift_with_the_offset() {
        let (mut l, t) = limiter(RateLimits {
            offset: Duration::from_secs(50),
            ..small()
        });
        // 10 s before the first boundary: five now, five more right after it.
        for _ in 0..5 {
            assert!(l.check(t, "ip", Some("s")).is_ok());
        }
        assert!(l
            .check(t + Duration::from_secs(9), "ip", Some("s"))
            .is_err());
        for _ in 0..5 {
            assert!(l
                .check(t + Duration::from_secs(10), "ip", Some("s"))
                .is_ok());
        }
        // Ten within 10 s: the fixed windows allowed it, the sliding peak shows it.
        assert_eq!(l.stats.peak_in_window["session"], 5);
        assert_eq!(l.stats.peak_in_any_window["session"], 10);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_tells_the_windows_end_when_asked_for() {
        let (mut l, t) = limiter(RateLimits {
            retry_after: true,
            ..small()
        });
        for _ in 0..5 {
            l.check(t, "ip", Some("s")).unwrap();
        }
        let e = l
            .check(t + Duration::from_secs(20), "ip", Some("s"))
            .unwrap_err();
        assert_eq!(e.retry_after, Some(40));
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_that_keeps_sending_over_its_quota_is_banned() {
        let (mut l, t) = limiter(RateLimits {
            ban: Some(Ban {
                after: 3,
                windows: 2,
            }),
            ..small()
        });
        for _ in 0..5 {
            l.check(t, "ip", Some("s")).unwrap();
        }
        for _ in 0..3 {
            assert!(l.check(t, "ip", Some("s")).is_err());
        }
        assert_eq!(l.stats.bans, 1);
        // Banned for the two windows after this one, admitted in the third.
        assert!(l.check(t + W, "ip", Some("s")).is_err());
        assert!(l.check(t + 2 * W, "ip", Some("s")).is_err());
        assert!(l.check(t + 3 * W, "ip", Some("s")).is_ok());
        assert_eq!(l.stats.refused_banned, 2);
        // Another session from the same address was never banned.
        assert!(l.check(t + W, "ip", Some("other")).is_ok());
    }
}
