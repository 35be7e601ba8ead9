//! Downloads with conditional requests (ETag / Last-Modified), a timeout and
//! a size cap; files by path with the same cap (unchanged mtime = not
//! modified).

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

use serde_json::{json, Value};

use super::config::{Auth, Feed, Location};

/// Adds the feed's credentials, read from their files now (so a rotated
/// secret is used at the next pull); errors name the file, never the secret.
fn authorize(req: reqwest::RequestBuilder, auth: &Auth) -> Result<reqwest::RequestBuilder, String> {
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("reading {}: {e}", p.display()))
    };
    Ok(match auth {
        Auth::None => req,
        Auth::Basic {
            username,
            password_file,
        } => req.basic_auth(username, Some(read(password_file)?)),
        Auth::Bearer { token_file } => req.bearer_auth(read(token_file)?),
        Auth::Header { name, value_file } => {
            let mut v = reqwest::header::HeaderValue::from_str(&read(value_file)?)
                .map_err(|_| format!("{}: not a valid header value", value_file.display()))?;
            v.set_sensitive(true);
            req.header(name.as_str(), v)
        }
    })
}

/// A transport error without the URL (which may carry credentials).
fn failed(feed: &Feed, e: reqwest::Error) -> String {
    format!("{}: {}", feed.location, e.without_url())
}

/// A STIX timestamp as a time (RFC 3339, any fraction of a second): as text,
/// `...05Z` would sort after `...05.250Z`.
fn stix_time(v: &Value) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(v.get("modified")?.as_str()?.trim_end_matches('Z')).ok()
}

/// What a previous pull said about the content, for conditional requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub mtime: Option<SystemTime>,
    pub taxii: Option<TaxiiState>,
}

/// A TAXII collection as polled so far: `added_after` for the next poll and
/// the latest version of every object (TAXII sends only what was added since,
/// but an import replaces the feed's whole set).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaxiiState {
    pub added_after: Option<String>,
    pub objects: BTreeMap<String, Value>,
}

/// Pages followed in one poll before giving up (a server looping on `next`).
const MAX_PAGES: usize = 10_000;

async fn body_capped(mut resp: reqwest::Response, max: u64, what: &str) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > max) {
        return Err(format!("{what}: larger than max_bytes {max}"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{what}: {e}"))? {
        if body.len() as u64 + chunk.len() as u64 > max {
            return Err(format!("{what}: larger than max_bytes {max}"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// One TAXII 2.1 poll: `added_after` the last poll, following `more` /
/// `next` to the end; the collection's objects so far as one bundle.
async fn taxii(
    client: &reqwest::Client,
    feed: &Feed,
    url: &str,
    prev: &Validators,
) -> Result<Fetched, String> {
    let shown = feed.location.to_string();
    let mut st = prev.taxii.clone().unwrap_or_default();
    let (mut next, mut fresh, mut last_added) = (None::<String>, 0usize, None);
    for page in 0.. {
        if page == MAX_PAGES {
            return Err(format!("{shown}: more than {MAX_PAGES} pages in one poll"));
        }
        let mut q: Vec<(&str, String)> = vec![("limit", feed.page_size.to_string())];
        if let Some(a) = &st.added_after {
            q.push(("added_after", a.clone()));
        }
        if let Some(n) = &next {
            q.push(("next", n.clone()));
        }
        let req = client
            .get(url)
            .query(&q)
            .header(
                reqwest::header::ACCEPT,
                "application/taxii+json;version=2.1",
            )
            .timeout(Duration::from_secs(feed.timeout));
        let resp = authorize(req, &feed.auth)?
            .send()
            .await
            .map_err(|e| failed(feed, e))?;
        if !resp.status().is_success() {
            return Err(format!("{shown}: HTTP {}", resp.status()));
        }
        if let Some(v) = resp.headers().get("x-taxii-date-added-last") {
            last_added = v.to_str().ok().map(String::from);
        }
        let body = body_capped(resp, feed.max_bytes, &shown).await?;
        let env: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("{shown}: not a TAXII envelope: {e}"))?;
        for o in env
            .get("objects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(id) = o.get("id").and_then(Value::as_str) else {
                continue;
            };
            // The newest version wins, compared as times.
            if st
                .objects
                .get(id)
                .is_none_or(|old| stix_time(old) <= stix_time(o))
            {
                st.objects.insert(id.to_string(), o.clone());
                fresh += 1;
            }
        }
        match (
            env.get("more").and_then(Value::as_bool).unwrap_or(false),
            env.get("next").and_then(Value::as_str),
        ) {
            (true, Some(n)) => next = Some(n.to_string()),
            _ => break,
        }
    }
    if fresh == 0 && prev.taxii.is_some() {
        return Ok(Fetched::NotModified);
    }
    if last_added.is_some() {
        st.added_after = last_added;
    }
    let objects: Vec<&Value> = st.objects.values().collect();
    let bundle = serde_json::to_vec(
        &json!({"type": "bundle", "id": "bundle--taxii-poll", "objects": objects}),
    )
    .map_err(|e| e.to_string())?;
    Ok(Fetched::Body(
        bundle,
        Validators {
            taxii: Some(st),
            ..Default::default()
        },
    ))
}

#[derive(Debug)]
pub enum Fetched {
    NotModified,
    Body(Vec<u8>, Validators),
}

pub async fn fetch(
    client: &reqwest::Client,
    feed: &Feed,
    prev: &Validators,
) -> Result<Fetched, String> {
    match &feed.location {
        Location::Path(p) => {
            let meta = tokio::fs::metadata(p)
                .await
                .map_err(|e| format!("{}: {e}", p.display()))?;
            let mtime = meta.modified().ok();
            if mtime.is_some() && mtime == prev.mtime {
                return Ok(Fetched::NotModified);
            }
            if meta.len() > feed.max_bytes {
                return Err(format!(
                    "{}: {} bytes, more than max_bytes {}",
                    p.display(),
                    meta.len(),
                    feed.max_bytes
                ));
            }
            let body = tokio::fs::read(p)
                .await
                .map_err(|e| format!("{}: {e}", p.display()))?;
            Ok(Fetched::Body(
                body,
                Validators {
                    mtime,
                    ..Default::default()
                },
            ))
        }
        Location::Taxii(u) => taxii(client, feed, u, prev).await,
        Location::Url(u) => {
            let shown = feed.location.to_string();
            let mut req = authorize(
                client.get(u).timeout(Duration::from_secs(feed.timeout)),
                &feed.auth,
            )?;
            if let Some(e) = &prev.etag {
                req = req.header(reqwest::header::IF_NONE_MATCH, e);
            }
            if let Some(m) = &prev.last_modified {
                req = req.header(reqwest::header::IF_MODIFIED_SINCE, m);
            }
            let resp = req.send().await.map_err(|e| failed(feed, e))?;
            if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
                return Ok(Fetched::NotModified);
            }
            if !resp.status().is_success() {
                return Err(format!("{shown}: HTTP {}", resp.status()));
            }
            let header = |h| {
                resp.headers()
                    .get(h)
                    .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                    .map(String::from)
            };
            let validators = Validators {
                etag: header(reqwest::header::ETAG),
                last_modified: header(reqwest::header::LAST_MODIFIED),
                ..Default::default()
            };
            let body = body_capped(resp, feed.max_bytes, &shown).await?;
            Ok(Fetched::Body(body, validators))
        }
    }
}
