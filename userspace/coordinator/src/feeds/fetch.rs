//! Downloads with conditional requests (ETag / Last-Modified), a timeout and
//! a size cap; files by path with the same cap (unchanged mtime = not
//! modified).

use std::time::{Duration, SystemTime};

use super::config::{Feed, Location};

/// What a previous pull said about the content, for conditional requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub mtime: Option<SystemTime>,
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
        Location::Url(u) => {
            let mut req = client.get(u).timeout(Duration::from_secs(feed.timeout));
            if let Some(e) = &prev.etag {
                req = req.header(reqwest::header::IF_NONE_MATCH, e);
            }
            if let Some(m) = &prev.last_modified {
                req = req.header(reqwest::header::IF_MODIFIED_SINCE, m);
            }
            let mut resp = req.send().await.map_err(|e| format!("{u}: {e}"))?;
            if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
                return Ok(Fetched::NotModified);
            }
            if !resp.status().is_success() {
                return Err(format!("{u}: HTTP {}", resp.status()));
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
                mtime: None,
            };
            if resp.content_length().is_some_and(|n| n > feed.max_bytes) {
                return Err(format!("{u}: larger than max_bytes {}", feed.max_bytes));
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{u}: {e}"))? {
                if body.len() as u64 + chunk.len() as u64 > feed.max_bytes {
                    return Err(format!("{u}: larger than max_bytes {}", feed.max_bytes));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Fetched::Body(body, validators))
        }
    }
}
