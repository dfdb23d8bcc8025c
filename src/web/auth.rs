//! Who may see the results page: a bearer token checked with a TokenReview, then a
//! SubjectAccessReview asking whether its user may `list` ImageScans in every namespace. The
//! decisions are pure ([`authenticated`], [`authorize`]); the reviews are bounded in time, and a
//! review that fails or times out is an error (answered 503), never an allow. Sessions (after
//! `POST /login`) and bearer decisions are kept in memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{
    TokenReview, TokenReviewSpec, TokenReviewStatus, UserInfo,
};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec, SubjectAccessReviewStatus,
};
use kube::api::PostParams;
use kube::{Api, Client};
use sha2::{Digest, Sha256};

/// How long a session lives.
pub const SESSION_TTL: Duration = Duration::from_secs(3600);
/// How long a review may take.
pub const REVIEW_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the {review} did not answer within {REVIEW_TIMEOUT:?}; try again")]
    Timeout { review: &'static str },
    #[error(
        "the {review} failed: {source}; try again, or check the controller's RBAC (create tokenreviews and subjectaccessreviews)"
    )]
    Review {
        review: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("cannot draw a random session id")]
    Random,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a token may do here.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// The user may list ImageScans in every namespace.
    Allowed(UserInfo),
    /// No valid token.
    Unauthenticated,
    /// A valid token whose user may not (name, the authorizer's reason).
    Forbidden(String, String),
}

/// The user a TokenReview's status authenticated, if any.
pub fn authenticated(status: Option<&TokenReviewStatus>) -> Option<UserInfo> {
    let status = status?;
    if status.authenticated != Some(true) {
        return None;
    }
    status
        .user
        .clone()
        .filter(|u| u.username.as_deref().is_some_and(|n| !n.is_empty()))
}

/// The decision on an authenticated user from the SubjectAccessReview's status.
pub fn authorize(user: &UserInfo, status: Option<&SubjectAccessReviewStatus>) -> Decision {
    let name = user.username.clone().unwrap_or_default();
    match status {
        Some(s) if s.allowed && s.denied != Some(true) => Decision::Allowed(user.clone()),
        Some(s) => Decision::Forbidden(name, s.reason.clone().unwrap_or_default()),
        None => Decision::Forbidden(name, "no answer from the authorizer".into()),
    }
}

/// The SubjectAccessReview the page asks for a user: `list` ImageScans in every namespace.
pub fn access_review(user: &UserInfo) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: user.username.clone(),
            groups: user.groups.clone(),
            uid: user.uid.clone(),
            extra: user.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some(crate::api::GROUP.into()),
                resource: Some("imagescans".into()),
                verb: Some("list".into()),
                namespace: Some(String::new()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    }
}

/// Asks the API server about `token` (TokenReview, then SubjectAccessReview).
pub async fn review(client: &Client, token: &str) -> Result<Decision> {
    let tokens: Api<TokenReview> = Api::all(client.clone());
    let asked = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_string()),
            ..TokenReviewSpec::default()
        },
        ..TokenReview::default()
    };
    let answered = bounded("TokenReview", tokens.create(&PostParams::default(), &asked)).await?;
    let Some(user) = authenticated(answered.status.as_ref()) else {
        return Ok(Decision::Unauthenticated);
    };
    recheck(client, &user).await
}

/// Asks the API server whether an authenticated user (a session's) may still see the page.
pub async fn recheck(client: &Client, user: &UserInfo) -> Result<Decision> {
    let reviews: Api<SubjectAccessReview> = Api::all(client.clone());
    let answered = bounded(
        "SubjectAccessReview",
        reviews.create(&PostParams::default(), &access_review(user)),
    )
    .await?;
    Ok(authorize(user, answered.status.as_ref()))
}

async fn bounded<T>(
    review: &'static str,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T> {
    match tokio::time::timeout(REVIEW_TIMEOUT, call).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(source)) => Err(Error::Review { review, source }),
        Err(_) => Err(Error::Timeout { review }),
    }
}

/// A session after `POST /login`: the user, and the token they logged in with, kept in memory
/// so the page's actions are made with the user's own rights.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub user: UserInfo,
    pub token: String,
    /// The value the session's forms must carry (a random one per session).
    pub csrf: String,
    pub expires: Instant,
    /// When the user's rights were last confirmed.
    pub checked: Instant,
}

/// A live session's user, token and CSRF value, and whether its rights are due to be asked
/// again.
#[derive(Clone, Debug, PartialEq)]
pub struct Live {
    pub user: UserInfo,
    pub token: String,
    pub csrf: String,
    pub recheck: bool,
}

/// Whether a session or cached decision that expires at `expires` is still good at `now`.
pub fn live(expires: Instant, now: Instant) -> bool {
    now < expires
}

/// The sessions and the bearer decisions, in memory.
pub struct Sessions {
    sessions: Mutex<HashMap<String, Session>>,
    bearer: Mutex<HashMap<[u8; 32], (Decision, Instant)>>,
    /// How long a bearer token's decision is kept, and how often a session's rights are asked
    /// again (`--results-access-recheck`): a revoked viewer loses the page within this, not
    /// at the session's end.
    recheck: Duration,
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// 32 random bytes, in hex.
fn random_hex() -> Result<String> {
    let mut bytes = [0u8; 32];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| Error::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Sessions {
    /// No session yet; rights are asked again every `recheck`.
    pub fn new(recheck: Duration) -> Self {
        Sessions {
            sessions: Mutex::default(),
            bearer: Mutex::default(),
            recheck,
        }
    }

    /// Starts a session for `user`, who logged in with `token`: its random id.
    pub fn start(&self, user: UserInfo, token: String, now: Instant) -> Result<String> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.retain(|_, s| live(s.expires, now));
            sessions.insert(
                id.clone(),
                Session {
                    user,
                    token,
                    csrf,
                    expires: now + SESSION_TTL,
                    checked: now,
                },
            );
        }
        Ok(id)
    }

    /// The user of a live session; its rights are due again `recheck` after they were
    /// last confirmed.
    pub fn user(&self, id: &str, now: Instant) -> Option<Live> {
        let mut sessions = self.sessions.lock().ok()?;
        match sessions.get(id) {
            Some(s) if live(s.expires, now) => Some(Live {
                user: s.user.clone(),
                token: s.token.clone(),
                csrf: s.csrf.clone(),
                recheck: !live(s.checked + self.recheck, now),
            }),
            Some(_) => {
                sessions.remove(id);
                None
            }
            None => None,
        }
    }

    /// The session's rights were confirmed at `now`.
    pub fn confirmed(&self, id: &str, now: Instant) {
        if let Ok(mut sessions) = self.sessions.lock()
            && let Some(s) = sessions.get_mut(id)
        {
            s.checked = now;
        }
    }

    pub fn end(&self, id: &str) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.remove(id);
        }
    }

    /// The decision on a bearer token made less than `recheck` ago.
    pub fn cached(&self, token: &str, now: Instant) -> Option<Decision> {
        let bearer = self.bearer.lock().ok()?;
        bearer
            .get(&token_hash(token))
            .filter(|(_, at)| live(*at + self.recheck, now))
            .map(|(d, _)| d.clone())
    }

    pub fn remember(&self, token: &str, decision: Decision, now: Instant) {
        if let Ok(mut bearer) = self.bearer.lock() {
            bearer.retain(|_, (_, at)| live(*at + self.recheck, now));
            bearer.insert(token_hash(token), (decision, now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserInfo {
        UserInfo {
            username: Some(name.into()),
            groups: Some(vec!["g".into()]),
            ..UserInfo::default()
        }
    }

    #[test]
    fn a_token_must_be_authenticated_and_allowed() {
        let review = |authenticated: Option<bool>, name: Option<&str>| TokenReviewStatus {
            authenticated,
            user: name.map(user),
            ..TokenReviewStatus::default()
        };
        assert_eq!(authenticated(None), None);
        assert_eq!(authenticated(Some(&review(None, Some("a")))), None);
        assert_eq!(authenticated(Some(&review(Some(false), Some("a")))), None);
        assert_eq!(authenticated(Some(&review(Some(true), None))), None);
        assert_eq!(authenticated(Some(&review(Some(true), Some("")))), None);
        let alice = authenticated(Some(&review(Some(true), Some("alice"))))
            .unwrap_or_else(|| panic!("not authenticated"));
        let sar = |allowed: bool, denied: Option<bool>| SubjectAccessReviewStatus {
            allowed,
            denied,
            reason: Some("r".into()),
            ..SubjectAccessReviewStatus::default()
        };
        assert_eq!(
            authorize(&alice, Some(&sar(true, None))),
            Decision::Allowed(alice.clone())
        );
        assert_eq!(
            authorize(&alice, Some(&sar(false, None))),
            Decision::Forbidden("alice".into(), "r".into())
        );
        assert!(matches!(
            authorize(&alice, Some(&sar(true, Some(true)))),
            Decision::Forbidden(..)
        ));
        assert!(matches!(authorize(&alice, None), Decision::Forbidden(..)));
        let asked = access_review(&alice).spec;
        let attrs = asked.resource_attributes.unwrap_or_default();
        assert_eq!(asked.groups, Some(vec!["g".to_string()]));
        assert_eq!(
            (
                attrs.verb.as_deref(),
                attrs.resource.as_deref(),
                attrs.namespace.as_deref()
            ),
            (Some("list"), Some("imagescans"), Some(""))
        );
        assert_eq!(attrs.group.as_deref(), Some("scanning.scangate.dev"));
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn sessions_expire_after_an_hour_end_on_logout_and_are_rechecked_each_minute() {
        let sessions = Sessions::new(MINUTE);
        let t0 = Instant::now();
        let id = sessions
            .start(user("alice"), "alice-token".into(), t0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(id.len(), 64);
        let other = sessions
            .start(user("bob"), "bob-token".into(), t0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(id, other);
        let alice = sessions.user(&id, t0).unwrap_or_else(|| panic!("live"));
        let bob = sessions.user(&other, t0).unwrap_or_else(|| panic!("live"));
        assert_eq!(alice.token, "alice-token");
        assert_eq!(alice.csrf.len(), 64);
        assert_ne!(alice.csrf, bob.csrf);
        assert_ne!(alice.csrf, id);
        let live = |at: Duration| sessions.user(&id, t0 + at).map(|l| l.recheck);
        assert_eq!(live(Duration::from_secs(59)), Some(false));
        // A minute on, the user's rights are asked again; confirmed, they hold another minute.
        assert_eq!(live(MINUTE), Some(true));
        sessions.confirmed(&id, t0 + MINUTE);
        assert_eq!(live(MINUTE + Duration::from_secs(59)), Some(false));
        assert_eq!(
            sessions
                .user(&id, t0 + Duration::from_secs(3599))
                .map(|l| l.user.username),
            Some(Some("alice".into()))
        );
        assert_eq!(live(SESSION_TTL), None);
        assert_eq!(sessions.user("nope", t0), None);
        sessions.end(&other);
        assert_eq!(sessions.user(&other, t0), None);
    }

    #[test]
    fn bearer_decisions_are_kept_a_minute() {
        let sessions = Sessions::new(MINUTE);
        let t0 = Instant::now();
        sessions.remember("tok", Decision::Unauthenticated, t0);
        assert_eq!(
            sessions.cached("tok", t0 + Duration::from_secs(59)),
            Some(Decision::Unauthenticated)
        );
        assert_eq!(sessions.cached("tok", t0 + MINUTE), None);
        assert_eq!(sessions.cached("other", t0), None);
    }
}
