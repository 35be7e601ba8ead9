//! What every call is checked against before it reaches the coordinator:
//! field bounds, who may touch which source, reply sizes, and tonic's
//! decode errors as the caller's.

use c2wall_model::limits;
use prost::Message;
use tonic::{Request, Status};

use crate::origin::Origin;

/// Header naming the caller: set by the auth layer from its certificate or
/// token; without checks (no tokens, no client CA) whatever the caller sent.
pub const ACTOR_HEADER: &str = "x-c2wall-actor";
/// Header the auth layer sets to the caller's verified role.
pub const ROLE_HEADER: &str = "x-c2wall-role";

/// Refuses a reason (or why) over [`limits::REASON_BYTES`].
pub(super) fn check_reason(field: &str, reason: &str) -> Result<(), Status> {
    limits::text(field, reason, limits::REASON_BYTES).map_err(Status::from)
}

/// Replies that list stored rows (history, audit) stay under this many
/// bytes: a caller pages on with `before`. A row larger than this on its own
/// (stored before the API bounded its fields) has its long fields cut.
const REPLY_BYTES: usize = 1 << 20;

/// Keeps rows while the reply stays under [`REPLY_BYTES`] (at least one,
/// with fields cut to fit).
pub(super) fn page_by_bytes<T: Message>(rows: Vec<T>, cut: impl Fn(&mut T)) -> Vec<T> {
    let mut out = Vec::new();
    let mut bytes = 0;
    for mut r in rows {
        let mut n = r.encoded_len() + 8;
        if n > REPLY_BYTES / 2 {
            cut(&mut r);
            n = r.encoded_len() + 8;
        }
        if !out.is_empty() && bytes + n > REPLY_BYTES {
            break;
        }
        bytes += n;
        out.push(r);
    }
    out
}

/// Cuts a stored text to at most [`limits::REASON_BYTES`], saying so.
pub(super) fn cut_text(s: &mut String) {
    if s.len() > limits::REASON_BYTES {
        let total = s.len();
        let mut end = limits::REASON_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str(&format!("... (cut: {total} bytes stored)"));
    }
}

/// A page size as asked (0 = `default`), at most 10,000.
pub(super) fn page_limit(asked: u32, default: u32) -> u32 {
    match asked {
        0 => default,
        n => n.min(10_000),
    }
}

/// Who calls and from where, for the audit log.
pub(super) fn origin<T>(req: &Request<T>) -> Origin {
    Origin::new(
        actor(req),
        req.remote_addr().map(|a| a.to_string()).unwrap_or_default(),
    )
}

/// What a publisher may touch. An `operator:NAME` source belongs to NAME:
/// a publisher uses its own (`operator:<its name>`), and another's only when
/// its `[publishers]` entry names that source exactly (a wildcard such as
/// `operator:*` never reaches other operators' records). A publisher listed
/// in `[publishers]` is held to its sources; one not listed may use any
/// other source. A withdrawal of every source's record (no source named)
/// could reach another operator's, so a publisher names the source. Each
/// item is the field it comes from and its source (None: every source's).
/// Admins are not limited.
pub(super) fn check_sources<'a, T>(
    limits: &std::collections::HashMap<String, Vec<String>>,
    req: &Request<T>,
    sources: impl IntoIterator<Item = (String, Option<&'a str>)>,
) -> Result<(), Status> {
    let sources: Vec<(String, Option<&str>)> = sources.into_iter().collect();
    for (field, source) in &sources {
        if let Some(s) = source.filter(|s| s.starts_with(c2wall_model::UPSTREAM_SOURCE_PREFIX)) {
            return Err(Status::permission_denied(format!(
                "{field}: `{s}` is the records this coordinator takes from an upstream; only \
                 its follower writes them (to keep one of its entries out here, protect it)"
            )));
        }
    }
    let role = req
        .metadata()
        .get(ROLE_HEADER)
        .and_then(|v| v.to_str().ok());
    if role != Some("publisher") {
        return Ok(());
    }
    let who = actor(req);
    let allowed = limits.get(&who);
    let own = format!("operator:{who}");
    let ok = |s: &str| {
        if s == own || allowed.is_some_and(|a| a.iter().any(|a| a == s)) {
            return true;
        }
        if s.starts_with("operator:") {
            return false;
        }
        match allowed {
            None => true,
            Some(a) => a.iter().any(|a| match a.strip_suffix('*') {
                Some(prefix) => s.starts_with(prefix),
                None => s == a,
            }),
        }
    };
    let listing = || match allowed {
        Some(a) => format!("{own} and {}", a.join(", ")),
        None => format!("{own} and any source but another operator's"),
    };
    for (field, source) in sources {
        match source {
            Some(s) if ok(s) => {}
            Some(s) => {
                return Err(Status::permission_denied(format!(
                    "{field}: {who} may publish only under {}, not `{}`",
                    listing(),
                    limits::quote(s, 64)
                )))
            }
            None => {
                return Err(Status::permission_denied(format!(
                    "{field}: a publisher withdraws only records of sources it may use ({}): \
                     name the source",
                    listing()
                )))
            }
        }
    }
    Ok(())
}

/// tonic reports a request that is not the method's protobuf message as
/// INTERNAL; it is the caller's error.
fn is_decode_error(code: tonic::Code, message: &str) -> bool {
    code == tonic::Code::Internal && message.starts_with("failed to decode Protobuf message")
}

/// A stream's status with decode errors as INVALID_ARGUMENT.
pub(crate) fn decode_status(s: Status) -> Status {
    if is_decode_error(s.code(), s.message()) {
        Status::invalid_argument(s.message().to_string())
    } else {
        s
    }
}

/// The same for a finished unary response (its status is in the headers).
pub fn decode_errors_are_invalid<B>(mut resp: http::Response<B>) -> http::Response<B> {
    let h = resp.headers();
    let internal = h
        .get(Status::GRPC_STATUS)
        .is_some_and(|v| v.as_bytes() == b"13");
    let decode = h
        .get("grpc-message")
        .is_some_and(|v| v.as_bytes().starts_with(b"failed%20to%20decode%20Protobuf"));
    if internal && decode {
        resp.headers_mut().insert(
            Status::GRPC_STATUS,
            (tonic::Code::InvalidArgument as i32).into(),
        );
    }
    resp
}

pub(crate) fn actor<T>(req: &Request<T>) -> String {
    req.metadata()
        .get(ACTOR_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .unwrap_or("anonymous")
        .to_string()
}
