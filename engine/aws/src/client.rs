//! A small blocking HTTP client on `ureq` (keep-alive, plain HTTP, no
//! proxy: the endpoints are local), with AWS Query requests signed with
//! SigV4 at a caller-supplied time. For tests, benches and the harness's
//! adapters — real users have the AWS CLI and the SDKs.

use std::net::ToSocketAddrs as _;
use std::time::Duration;

use fobsim_core::Timestamp;

use crate::query::encode_form;
use crate::sigv4::{Credentials, RequestParts, SignError, sign};
use crate::{Service, xml};

/// Longest response body accepted.
const MAX_RESPONSE: u64 = 1 << 20;

/// How long connecting, sending, and each wait for the answer may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The `Content-Type` of Query requests.
const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// Why a call did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint is not `http://HOST:PORT[/]`.
    #[error("bad endpoint {0:?}: expected http://HOST:PORT")]
    BadEndpoint(String),
    /// Connecting, writing or reading failed, or the answer was not HTTP.
    #[error("HTTP client: {0}")]
    Http(#[from] ureq::Error),
    /// The request could not be signed.
    #[error(transparent)]
    Sign(#[from] SignError),
}

impl ClientError {
    /// True when the server closed the connection before it answered.
    #[must_use]
    pub fn closed_without_answer(&self) -> bool {
        use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, UnexpectedEof};
        matches!(self, ClientError::Http(ureq::Error::Io(e))
            if matches!(e.kind(), UnexpectedEof | ConnectionReset | ConnectionAborted))
    }
}

/// An HTTP response: status and body text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// HTTP status.
    pub status: u16,
    /// Body text.
    pub body: String,
}

impl HttpResponse {
    /// The `<Code>` of an AWS error response.
    #[must_use]
    pub fn code(&self) -> Option<String> {
        xml::text_of(&self.body, "Code")
    }

    /// The `<Message>` of an AWS error response.
    #[must_use]
    pub fn message(&self) -> Option<String> {
        xml::text_of(&self.body, "Message")
    }

    /// The first `<tag>` text.
    #[must_use]
    pub fn text(&self, tag: &str) -> Option<String> {
        xml::text_of(&self.body, tag)
    }
}

/// A signed Query request: `POST /` with a form body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// Every header: `host`, `content-type`, and the signature's.
    pub headers: Vec<(String, String)>,
    /// The form.
    pub body: String,
}

impl SignedRequest {
    /// Sign `params` (plus `Version`, unless given) for `service` at `now`.
    ///
    /// # Errors
    /// [`SignError`] when `host` or the session token is not a valid
    /// header value.
    pub fn new(
        host: &str,
        service: Service,
        params: &[(&str, &str)],
        creds: &Credentials,
        region: &str,
        now: Timestamp,
    ) -> Result<SignedRequest, SignError> {
        let mut all: Vec<(&str, &str)> = Vec::with_capacity(params.len() + 1);
        if !params.iter().any(|(k, _)| *k == "Version") {
            all.push(("Version", service.version()));
        }
        all.extend_from_slice(params);
        let body = encode_form(&all);
        let mut headers = vec![
            ("host".to_string(), host.to_string()),
            ("content-type".to_string(), FORM.to_string()),
        ];
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: body.as_bytes(),
        };
        let signed = sign(&parts, creds, region, service.signing_name(), now)?;
        headers.extend(signed);
        Ok(SignedRequest { headers, body })
    }

    /// The request as HTTP/1.1 bytes (with `Content-Length`).
    #[must_use]
    pub fn to_http1(&self) -> Vec<u8> {
        let mut req = String::with_capacity(512 + self.body.len());
        req.push_str("POST / HTTP/1.1\r\n");
        for (n, v) in &self.headers {
            req.push_str(n);
            req.push_str(": ");
            req.push_str(v);
            req.push_str("\r\n");
        }
        req.push_str("content-length: ");
        req.push_str(&self.body.len().to_string());
        req.push_str("\r\n\r\n");
        req.push_str(&self.body);
        req.into_bytes()
    }
}

/// Build a signed Query request (`POST /`, form body) as HTTP/1.1 bytes.
///
/// # Errors
/// As [`SignedRequest::new`].
pub fn build_request(
    host: &str,
    service: Service,
    params: &[(&str, &str)],
    creds: &Credentials,
    region: &str,
    now: Timestamp,
) -> Result<Vec<u8>, SignError> {
    SignedRequest::new(host, service, params, creds, region, now).map(|r| r.to_http1())
}

/// A client of one endpoint: keep-alive connections, signed Query calls.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    host: String,
    region: String,
}

impl Client {
    /// A client of `http://HOST:PORT` (region `us-east-1`).
    ///
    /// # Errors
    /// [`ClientError::BadEndpoint`] if it is not plain HTTP or does not resolve.
    pub fn new(endpoint: &str) -> Result<Client, ClientError> {
        let bad = || ClientError::BadEndpoint(endpoint.chars().take(100).collect());
        let rest = endpoint.strip_prefix("http://").ok_or_else(bad)?;
        let host = rest.split('/').next().unwrap_or("");
        host.to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(bad)?;
        let config = ureq::Agent::config_builder()
            // Answers are data (AWS errors are answers), and nothing is proxied.
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            .timeout_connect(Some(TIMEOUT))
            .timeout_send_request(Some(TIMEOUT))
            .timeout_send_body(Some(TIMEOUT))
            .timeout_recv_response(Some(TIMEOUT))
            .timeout_recv_body(Some(TIMEOUT))
            .build();
        Ok(Client {
            agent: config.into(),
            base: format!("http://{host}"),
            host: host.to_string(),
            region: "us-east-1".to_string(),
        })
    }

    /// The `Host` header value.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Send `method path` with `headers` (`Host` is added unless given) and
    /// `body` (with its `Content-Length`), and read the answer.
    ///
    /// # Errors
    /// [`ClientError::Http`] when no answer arrives, or a header is not
    /// one HTTP allows.
    pub fn send<V: AsRef<[u8]>>(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, V)],
        body: &[u8],
    ) -> Result<HttpResponse, ClientError> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            req = req.header("host", &self.host);
        }
        for (n, v) in headers {
            req = req.header(*n, v.as_ref());
        }
        let req = req
            .body(body)
            .map_err(|e| ClientError::Http(ureq::Error::from(e)))?;
        let mut resp = self.agent.run(req)?;
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()?;
        Ok(HttpResponse {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// Send a signed Query request.
    ///
    /// # Errors
    /// As [`Client::send`].
    pub fn send_signed(&self, request: &SignedRequest) -> Result<HttpResponse, ClientError> {
        let headers: Vec<(&str, &str)> = request
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        self.send("POST", "/", &headers, request.body.as_bytes())
    }

    /// Call an action signed with `creds` at time `now`.
    ///
    /// # Errors
    /// [`ClientError`] when no answer arrives (AWS errors are answers).
    pub fn call(
        &self,
        service: Service,
        params: &[(&str, &str)],
        creds: &Credentials,
        now: Timestamp,
    ) -> Result<HttpResponse, ClientError> {
        let req = SignedRequest::new(&self.host, service, params, creds, &self.region, now)?;
        self.send_signed(&req)
    }
}
