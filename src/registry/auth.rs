//! Registry credentials and challenges, pure: pull secrets in the `.dockerconfigjson` format,
//! `WWW-Authenticate` challenges (Basic, Bearer), and the token endpoint's answer.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use serde::Deserialize;

use super::{Error, Result};
use crate::image::canonical_registry;

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A pull secret's `.dockerconfigjson`: credentials by registry host, keys folded to the
/// registry's canonical spelling (`https://index.docker.io/v1/` is `docker.io`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DockerConfig {
    auths: BTreeMap<String, Credentials>,
}

#[derive(Deserialize)]
struct RawConfig {
    auths: BTreeMap<String, RawAuth>,
}

#[derive(Deserialize)]
struct RawAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

impl DockerConfig {
    /// Parses a `.dockerconfigjson` (the `kubernetes.io/dockerconfigjson` Secret's key).
    pub fn parse(json: &[u8]) -> Result<Self> {
        let raw: RawConfig = serde_json::from_slice(json).map_err(|e| Error::PullSecret {
            problem: format!("it is not a .dockerconfigjson ({{\"auths\": {{...}}}}): {e}"),
        })?;
        let mut auths = BTreeMap::new();
        for (key, entry) in raw.auths {
            let credentials = match (entry.username, entry.password, entry.auth) {
                (Some(username), Some(password), _) => Credentials { username, password },
                (_, _, Some(auth)) => decode_auth(&key, &auth)?,
                _ => {
                    return Err(Error::PullSecret {
                        problem: format!(
                            "the entry for {key:?} has neither `auth` nor `username` and \
                             `password`"
                        ),
                    });
                }
            };
            auths.insert(registry_of_key(&key), credentials);
        }
        Ok(DockerConfig { auths })
    }

    /// The credentials for a registry (canonical `host[:port]`, as [`crate::image::ImageRef`]
    /// gives it).
    pub fn credentials_for(&self, registry: &str) -> Option<&Credentials> {
        self.auths.get(registry)
    }
}

/// `auth` is base64 of `username:password`.
fn decode_auth(key: &str, auth: &str) -> Result<Credentials> {
    let problem = |what: &str| Error::PullSecret {
        problem: format!("the `auth` of {key:?} {what}"),
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| problem("is not base64"))?;
    let text = String::from_utf8(bytes).map_err(|_| problem("is not UTF-8 text"))?;
    let (username, password) = text
        .split_once(':')
        .ok_or_else(|| problem("is not base64 of `username:password`"))?;
    Ok(Credentials {
        username: username.to_string(),
        password: password.to_string(),
    })
}

/// The registry a `.dockerconfigjson` key names: keys may be URLs (`https://host/v1/`).
fn registry_of_key(key: &str) -> String {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest);
    canonical_registry(host)
}

/// How a registry asks to be authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP Basic with the pull secret's credentials (the distribution registry with htpasswd).
    Basic,
    /// A token from `realm`, asked for `service` and `scope`.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Challenge {
    /// Reads the `WWW-Authenticate` header values of a 401: Bearer when one is offered (it is
    /// what registries prefer), else Basic; `None` when neither is.
    pub fn from_headers<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
        let challenges: Vec<Challenge> = values.into_iter().filter_map(Self::parse).collect();
        challenges
            .iter()
            .find(|c| matches!(c, Challenge::Bearer { .. }))
            .or_else(|| challenges.first())
            .cloned()
    }

    /// Parses one challenge: `Bearer realm="https://auth",service="reg",scope="repository:a:pull"`
    /// or `Basic realm="..."`. A Bearer challenge without a realm is no challenge.
    pub fn parse(value: &str) -> Option<Challenge> {
        let value = value.trim();
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = parse_params(rest);
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        Some(Challenge::Bearer {
            realm: get("realm").filter(|r| !r.is_empty())?,
            service: get("service"),
            scope: get("scope"),
        })
    }
}

/// `key=value` pairs separated by commas; values are tokens or quoted strings (in which a comma
/// is text and `\"` a quote).
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ','))
            .collect::<String>()
            .trim()
            .to_string();
        if key.is_empty() {
            return params;
        }
        if chars.next_if_eq(&'=').is_none() {
            continue;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ','))
                .collect::<String>()
                .trim()
                .to_string();
        }
        params.push((key, value));
    }
}

/// The scope a pull asks a token for, when the challenge names none.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// The scope a push asks a token for: pushing needs pulling too.
pub fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

/// The token endpoint's answer: `token`, or OAuth2's `access_token`.
pub fn token_from_answer(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Answer {
        token: Option<String>,
        access_token: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(body).ok()?;
    answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn pull_secrets_by_registry_host() {
        let json = format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "{}"}},
                "Registry.Example:443": {{"username": "ci", "password": "p:w"}},
                "localhost:5000": {{"auth": "{}", "username": "u", "password": "x"}}
            }}}}"#,
            b64("hub:secret"),
            b64("ignored:ignored")
        );
        let config = DockerConfig::parse(json.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let hub = config
            .credentials_for("docker.io")
            .map(|c| c.username.as_str());
        assert_eq!(hub, Some("hub"));
        let example = config.credentials_for("registry.example");
        assert_eq!(example.map(|c| c.password.as_str()), Some("p:w"));
        // username/password win over auth when both are given.
        let local = config.credentials_for("localhost:5000");
        assert_eq!(local.map(|c| c.username.as_str()), Some("u"));
        assert_eq!(config.credentials_for("other.example"), None);
        // Debug never shows a password.
        assert!(!format!("{config:?}").contains("secret"));
    }

    #[test]
    fn bad_pull_secrets_say_what_is_wrong() {
        let cases = [
            ("[]", "is not a .dockerconfigjson"),
            (r#"{"auths": {"r.example": {}}}"#, "has neither `auth`"),
            (
                r#"{"auths": {"r.example": {"auth": "%%%"}}}"#,
                "is not base64",
            ),
        ];
        for (json, expected) in cases {
            let error = DockerConfig::parse(json.as_bytes())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains(expected), "{json}: {error}");
        }
        let no_colon = format!(
            r#"{{"auths": {{"r.example": {{"auth": "{}"}}}}}}"#,
            b64("x")
        );
        let error = DockerConfig::parse(no_colon.as_bytes())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("username:password"), "{error}");
    }

    #[test]
    fn challenges() {
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            Challenge::parse(r#"bearer realm=https://a.example/t, service = "s\"q""#),
            Some(Challenge::Bearer {
                realm: "https://a.example/t".into(),
                service: Some("s\"q".into()),
                scope: None,
            })
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="scangate""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Basic"), Some(Challenge::Basic));
        assert_eq!(Challenge::parse(r#"Bearer service="s""#), None);
        assert_eq!(Challenge::parse(r#"Negotiate abc"#), None);
        assert_eq!(
            Challenge::from_headers([r#"Basic realm="r""#, r#"Bearer realm="https://t""#]),
            Some(Challenge::Bearer {
                realm: "https://t".into(),
                service: None,
                scope: None,
            })
        );
        assert_eq!(Challenge::from_headers(["Digest x"]), None);
    }

    #[test]
    fn token_answers() {
        assert_eq!(token_from_answer(br#"{"token":"t1"}"#), Some("t1".into()));
        assert_eq!(
            token_from_answer(br#"{"access_token":"t2","expires_in":60}"#),
            Some("t2".into())
        );
        assert_eq!(token_from_answer(br#"{"token":""}"#), None);
        assert_eq!(token_from_answer(b"nope"), None);
        assert_eq!(pull_scope("team/app"), "repository:team/app:pull");
    }
}
