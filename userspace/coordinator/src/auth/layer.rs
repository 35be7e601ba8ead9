//! The tower layer that runs [`Tokens::check`] on every call.

use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use super::{Role, Tokens};
use crate::service::{ACTOR_HEADER, ROLE_HEADER};

/// Checks every call (None: no checks, every caller may call everything).
/// The identity it finds replaces any actor or role header the caller sent.
#[derive(Clone)]
pub struct AuthLayer(pub Option<Tokens>);

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = Authed<S>;
    fn layer(&self, inner: S) -> Authed<S> {
        Authed {
            inner,
            tokens: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authed<S> {
    inner: S,
    tokens: Option<Tokens>,
}

/// The first certificate the peer presented, verified by the TLS handshake.
fn peer_cert<B>(req: &http::Request<B>) -> Option<Vec<u8>> {
    let info = req.extensions().get::<TlsConnectInfo<TcpConnectInfo>>()?;
    let certs = info.peer_certs()?;
    certs.first().map(|c| c.as_ref().to_vec())
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Agent => "agent",
        Role::Downstream => "downstream",
        Role::Reader => "reader",
        Role::Publisher => "publisher",
        Role::Admin => "admin",
    }
}

impl<S, B> tower_service::Service<http::Request<B>> for Authed<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // Whatever the caller claims about itself is not believed.
        req.headers_mut().remove(ROLE_HEADER);
        if let Some(tokens) = &self.tokens {
            req.headers_mut().remove(ACTOR_HEADER);
            let method = req
                .uri()
                .path()
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string();
            let cert = peer_cert(&req);
            let auth = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            match tokens.check(cert.as_deref(), auth, &method) {
                Ok((name, role)) => {
                    if let Ok(v) = name.parse() {
                        req.headers_mut().insert(ACTOR_HEADER, v);
                    }
                    req.headers_mut()
                        .insert(ROLE_HEADER, http::HeaderValue::from_static(role_name(role)));
                }
                Err(status) => {
                    let resp = status.into_http();
                    return Box::pin(async move { Ok(resp) });
                }
            }
        }
        let call = self.inner.call(req);
        Box::pin(async move { call.await.map(crate::service::decode_errors_are_invalid) })
    }
}
