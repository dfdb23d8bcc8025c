//! Saved searches: a viewer names the search a list page shows (its filters and sort) and
//! finds it again in any browser, after logging out and in. They are stored in the cluster by
//! the controller (viewers hold no write rights), in scangate's namespace: one ConfigMap per
//! user, named from a hash of the username ([`config_map_name`]), labelled [`COMPONENT`] and
//! annotated [`USER`] with the username it belongs to.
//!
//! What a viewer cannot do through it: write anything but their own ConfigMap (its name comes
//! from the authenticated username, never from the form), read another user's searches (a
//! ConfigMap whose [`USER`] annotation or labels are not the viewer's is refused, not shown or
//! overwritten), store anything but a canonical query of a list page (the query is parsed by
//! the page's filter and written back from it: unknown keys are dropped), or fill etcd: at most
//! [`MAX_SEARCHES`] searches of a name of at most [`MAX_NAME`] characters and a query of at most
//! [`MAX_QUERY`] bytes (about 26 KiB per user; only users the page lets in have one). The
//! decisions are pure; [`Store`] reads and writes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::{Client, Resource};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::model::{RunningFilter, ScanFilter};
use crate::runtime::reports::MANAGED_BY;

/// How many searches a user keeps at most.
pub const MAX_SEARCHES: usize = 20;
/// The longest name of a search, in characters.
pub const MAX_NAME: usize = 64;
/// The longest query of a search, in bytes.
pub const MAX_QUERY: usize = 1024;

/// The label value (`app.kubernetes.io/component`) of the saved searches' ConfigMaps.
pub const COMPONENT: &str = "saved-searches";
/// The annotation naming the user a ConfigMap of searches belongs to.
pub const USER: &str = "scangate.dev/user";
/// The ConfigMap's key holding the searches (a JSON array).
pub const KEY: &str = "searches.json";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("give the search a name")]
    NoName,
    #[error("a search's name has at most {MAX_NAME} characters; this one has {0}")]
    NameTooLong(usize),
    #[error("a search's name is printable text (no control characters)")]
    NameChars,
    #[error("a search's query has at most {MAX_QUERY} bytes; this one has {0}: narrow it")]
    QueryTooLong(usize),
    #[error(
        "you have {MAX_SEARCHES} saved searches, the most there may be: delete one before saving another"
    )]
    TooMany,
    #[error("there is no saved search {0:?} of {1}")]
    NotFound(String, &'static str),
    #[error("searches are saved for /scans and /running only, not {0:?}")]
    UnknownPage(String),
    #[error(
        "ConfigMap {namespace}/{name} is not {user}'s saved searches (its labels or its {USER} annotation say otherwise); an admin should look at it"
    )]
    NotYours {
        namespace: String,
        name: String,
        user: String,
    },
    #[error(
        "ConfigMap {namespace}/{name} holds no readable searches ({reason}); delete it to start afresh"
    )]
    Unreadable {
        namespace: String,
        name: String,
        reason: String,
    },
    #[error("the searches changed meanwhile (another tab?): reload the page and try again")]
    Conflict,
    #[error(
        "cannot {what} the saved searches in ConfigMap {namespace}/{name}: {source}; may the controller write ConfigMaps there (deploy/rbac's scangate-controller-saved-searches)?"
    )]
    Api {
        what: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The list page a search is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchPage {
    Scans,
    Running,
}

impl SearchPage {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            SearchPage::Scans => "scans",
            SearchPage::Running => "running",
        }
    }

    pub fn parse(value: &str) -> Result<SearchPage> {
        match value {
            "scans" => Ok(SearchPage::Scans),
            "running" => Ok(SearchPage::Running),
            other => Err(Error::UnknownPage(other.chars().take(32).collect())),
        }
    }

    /// The query as the page's filter writes it (without `?`): known keys only, in order.
    #[must_use]
    pub fn canonical(self, query: &str) -> String {
        let query = query.strip_prefix('?').unwrap_or(query);
        let written = match self {
            SearchPage::Scans => ScanFilter::from_query(query).0.to_query(),
            SearchPage::Running => RunningFilter::from_query(query).0.to_query(),
        };
        written.trim_start_matches('?').to_string()
    }
}

/// One saved search.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    pub name: String,
    pub page: SearchPage,
    /// The page's query string, canonical, without `?`.
    pub query: String,
}

impl Saved {
    /// A search to save: the name checked, the query made canonical and checked.
    pub fn new(name: &str, page: SearchPage, query: &str) -> Result<Saved> {
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::NoName);
        }
        let chars = name.chars().count();
        if chars > MAX_NAME {
            return Err(Error::NameTooLong(chars));
        }
        if name.chars().any(char::is_control) {
            return Err(Error::NameChars);
        }
        let query = page.canonical(query);
        if query.len() > MAX_QUERY {
            return Err(Error::QueryTooLong(query.len()));
        }
        Ok(Saved {
            name: name.to_string(),
            page,
            query,
        })
    }

    /// Where the search is applied.
    #[must_use]
    pub fn href(&self) -> String {
        if self.query.is_empty() {
            format!("/{}", self.page.as_str())
        } else {
            format!("/{}?{}", self.page.as_str(), self.query)
        }
    }
}

/// The list with `saved` added, or in place of the search of its page with its name.
pub fn save(mut list: Vec<Saved>, saved: Saved) -> Result<Vec<Saved>> {
    match list
        .iter()
        .position(|s| s.page == saved.page && s.name == saved.name)
    {
        Some(i) => list[i] = saved,
        None if list.len() >= MAX_SEARCHES => return Err(Error::TooMany),
        None => list.push(saved),
    }
    Ok(list)
}

/// The list without the search `name` of `page`.
pub fn delete(mut list: Vec<Saved>, page: SearchPage, name: &str) -> Result<Vec<Saved>> {
    let before = list.len();
    list.retain(|s| !(s.page == page && s.name == name.trim()));
    if list.len() == before {
        return Err(Error::NotFound(
            name.chars().take(MAX_NAME).collect(),
            page.as_str(),
        ));
    }
    Ok(list)
}

/// The name of a user's ConfigMap: `scangate-searches-` and 32 hex digits of the SHA-256 of
/// the username (a name any username maps to, which no other user's hits by chance).
#[must_use]
pub fn config_map_name(user: &str) -> String {
    let digest = Sha256::digest(user.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("scangate-searches-{hex}")
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
        (
            "app.kubernetes.io/component".to_string(),
            COMPONENT.to_string(),
        ),
    ])
}

/// The ConfigMap that stores `user`'s searches in `namespace`.
#[must_use]
pub fn config_map(namespace: &str, user: &str, list: &[Saved]) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(config_map_name(user));
    cm.metadata.namespace = Some(namespace.to_string());
    cm.metadata.labels = Some(labels());
    cm.metadata.annotations = Some(BTreeMap::from([(USER.to_string(), user.to_string())]));
    let json = serde_json::to_string(list).unwrap_or_else(|_| "[]".into());
    cm.data = Some(BTreeMap::from([(KEY.to_string(), json)]));
    cm
}

/// `user`'s searches from their ConfigMap: refused when it is not theirs or not readable.
pub fn read(cm: &ConfigMap, user: &str) -> Result<Vec<Saved>> {
    let meta = cm.meta();
    let namespace = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    let labelled = labels().iter().all(|(k, v)| {
        meta.labels
            .as_ref()
            .and_then(|l| l.get(k))
            .is_some_and(|x| x == v)
    });
    let owner = meta.annotations.as_ref().and_then(|a| a.get(USER));
    if !labelled || owner.map(String::as_str) != Some(user) || name != config_map_name(user) {
        return Err(Error::NotYours {
            namespace,
            name,
            user: user.to_string(),
        });
    }
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(KEY))
        .map_or("[]", String::as_str);
    let list: Vec<Saved> = serde_json::from_str(text).map_err(|e| Error::Unreadable {
        namespace: namespace.clone(),
        name: name.clone(),
        reason: e.to_string(),
    })?;
    // Stored by hand past the bounds: read as much as a save may write.
    Ok(list.into_iter().take(MAX_SEARCHES).collect())
}

/// Reads and writes the saved searches, with the controller's client, in one namespace.
#[derive(Clone)]
pub struct Store {
    pub client: Client,
    pub namespace: String,
}

impl Store {
    fn api(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn api_error(&self, what: &'static str, user: &str, source: kube::Error) -> Error {
        match source {
            kube::Error::Api(status) if status.code == 409 => Error::Conflict,
            source => Error::Api {
                what,
                namespace: self.namespace.clone(),
                name: config_map_name(user),
                source: Box::new(source),
            },
        }
    }

    /// `user`'s ConfigMap, if there is one.
    async fn get(&self, user: &str) -> Result<Option<ConfigMap>> {
        self.api()
            .get_opt(&config_map_name(user))
            .await
            .map_err(|e| self.api_error("read", user, e))
    }

    /// `user`'s searches (none without a ConfigMap).
    pub async fn list(&self, user: &str) -> Result<Vec<Saved>> {
        match self.get(user).await? {
            Some(cm) => read(&cm, user),
            None => Ok(vec![]),
        }
    }

    /// Changes `user`'s searches with `change`, on the version read (a concurrent write is a
    /// [`Error::Conflict`]); deletes the ConfigMap when no search is left.
    pub async fn update(
        &self,
        user: &str,
        change: impl FnOnce(Vec<Saved>) -> Result<Vec<Saved>>,
    ) -> Result<()> {
        let current = self.get(user).await?;
        let list = match &current {
            Some(cm) => read(cm, user)?,
            None => vec![],
        };
        let list = change(list)?;
        let api = self.api();
        let name = config_map_name(user);
        match current {
            Some(cm) if list.is_empty() => {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        resource_version: cm.metadata.resource_version.clone(),
                        uid: cm.metadata.uid.clone(),
                    }),
                    ..DeleteParams::default()
                };
                api.delete(&name, &params)
                    .await
                    .map(|_| ())
                    .map_err(|e| self.api_error("delete", user, e))
            }
            Some(cm) => {
                let mut next = config_map(&self.namespace, user, &list);
                next.metadata.resource_version = cm.metadata.resource_version;
                api.replace(&name, &PostParams::default(), &next)
                    .await
                    .map(|_| ())
                    .map_err(|e| self.api_error("write", user, e))
            }
            None if list.is_empty() => Ok(()),
            None => api
                .create(
                    &PostParams::default(),
                    &config_map(&self.namespace, user, &list),
                )
                .await
                .map(|_| ())
                .map_err(|e| self.api_error("create", user, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(name: &str, page: SearchPage, query: &str) -> Saved {
        Saved::new(name, page, query).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_search_is_its_pages_canonical_query_under_a_bounded_name() {
        let s = saved(
            "  failed in shop ",
            SearchPage::Scans,
            "?sort=-scanned_at&evil=1&namespace=shop&phase=Failed",
        );
        assert_eq!(s.name, "failed in shop");
        assert_eq!(s.query, "namespace=shop&phase=Failed&sort=-scanned_at");
        assert_eq!(
            s.href(),
            "/scans?namespace=shop&phase=Failed&sort=-scanned_at"
        );
        let r = saved(
            "past day",
            SearchPage::Running,
            "window=24h&verdict=fail&x=y",
        );
        assert_eq!(r.query, "verdict=fail&window=24h");
        assert_eq!(saved("all", SearchPage::Running, "").href(), "/running");
        assert!(matches!(
            Saved::new(" ", SearchPage::Scans, ""),
            Err(Error::NoName)
        ));
        assert!(Saved::new(&"é".repeat(MAX_NAME), SearchPage::Scans, "").is_ok());
        assert!(matches!(
            Saved::new(&"a".repeat(MAX_NAME + 1), SearchPage::Scans, ""),
            Err(Error::NameTooLong(65))
        ));
        assert!(matches!(
            Saved::new("a\nb", SearchPage::Scans, ""),
            Err(Error::NameChars)
        ));
        let long = format!("q={}", "x".repeat(MAX_QUERY));
        assert!(matches!(
            Saved::new("long", SearchPage::Scans, &long),
            Err(Error::QueryTooLong(_))
        ));
        assert!(matches!(
            SearchPage::parse("policyreports"),
            Err(Error::UnknownPage(_))
        ));
        assert_eq!(SearchPage::parse("running").ok(), Some(SearchPage::Running));
    }

    #[test]
    fn saving_adds_or_replaces_up_to_the_bound_and_deleting_removes()
    -> Result<(), Box<dyn std::error::Error>> {
        let mut list = vec![];
        for i in 0..MAX_SEARCHES {
            list = save(list, saved(&format!("s{i}"), SearchPage::Scans, ""))?;
        }
        assert!(matches!(
            save(list.clone(), saved("one more", SearchPage::Scans, "")),
            Err(Error::TooMany)
        ));
        // The same name again replaces it, at the bound too.
        let list = save(list, saved("s3", SearchPage::Scans, "phase=Failed"))?;
        assert_eq!(list.len(), MAX_SEARCHES);
        assert_eq!(list[3].query, "phase=Failed");
        let list = delete(list, SearchPage::Scans, "s3")?;
        assert_eq!(list.len(), MAX_SEARCHES - 1);
        assert!(matches!(
            delete(list.clone(), SearchPage::Running, "s4"),
            Err(Error::NotFound(..))
        ));
        // A name of each page is its own.
        let list = save(list, saved("s4", SearchPage::Running, "window=6h"))?;
        assert_eq!(list.len(), MAX_SEARCHES);
        Ok(())
    }

    #[test]
    fn a_users_configmap_is_named_from_a_hash_and_read_back_only_for_that_user()
    -> Result<(), Box<dyn std::error::Error>> {
        let alice = "system:serviceaccount:shop:alice";
        let name = config_map_name(alice);
        assert_eq!(name.len(), "scangate-searches-".len() + 32);
        assert_ne!(name, config_map_name("bob"));
        assert_eq!(name, config_map_name(alice));
        let list = vec![saved("mine", SearchPage::Scans, "phase=Failed")];
        let cm = config_map("scangate-system", alice, &list);
        assert_eq!(cm.metadata.name.as_deref(), Some(name.as_str()));
        assert_eq!(
            cm.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app.kubernetes.io/component")),
            Some(&COMPONENT.to_string())
        );
        assert_eq!(read(&cm, alice)?, list);
        // Bob reading Alice's ConfigMap (or one claiming to be his under her name) is refused.
        assert!(matches!(read(&cm, "bob"), Err(Error::NotYours { .. })));
        let mut claimed = cm.clone();
        claimed
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(USER.into(), "bob".into());
        assert!(matches!(read(&claimed, "bob"), Err(Error::NotYours { .. })));
        let mut unlabelled = cm.clone();
        unlabelled.metadata.labels = None;
        assert!(matches!(
            read(&unlabelled, alice),
            Err(Error::NotYours { .. })
        ));
        let mut broken = cm.clone();
        broken.data = Some(BTreeMap::from([(KEY.into(), "{".into())]));
        assert!(matches!(
            read(&broken, alice),
            Err(Error::Unreadable { .. })
        ));
        Ok(())
    }
}
