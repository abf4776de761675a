//! The AWS Query server over loopback: real HTTP/1.1, SigV4-signed
//! requests (the crate's client), an in-memory engine and a clock the test
//! moves. Flows of the seed page, authentication failures, and abuse that
//! must get AWS-shaped errors while the server keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use fobsim_aws::Service;
use fobsim_aws::client::{Client, HttpResponse, SignedRequest, build_request};
use fobsim_aws::sigv4::Credentials;
use fobsim_aws::xml;
use fobsim_core::Principal;
use fobsim_core::{SimClock, Timestamp};
use fobsim_engine::api::bootstrap::Bootstrap;
use fobsim_engine::api::credentials::KeyRing;
use fobsim_engine::api::policy::Policy;
use fobsim_engine::api::server;
use fobsim_engine::api::service::{AwsService, ServiceConfig};
use fobsim_engine::testing::TestToken;
use fobsim_engine::{Engine, Profile, testing};

const SEED_POLICY: &str = include_str!("../../fixtures/policies/manage-own-mfa.json");
const ALICE_KEY: &str = "AKIAALICE0000000001";
const BOB_KEY: &str = "AKIABOB00000000001";
const ROOT_KEY: &str = "AKIAROOT0000000001";

fn creds(id: &str) -> Credentials {
    Credentials {
        access_key_id: id.to_string(),
        secret_access_key: format!("{id}-secret-key"),
        session_token: None,
    }
}

struct Server {
    addr: SocketAddr,
    clock: Arc<SimClock>,
    fobs: Vec<TestToken>,
    _stop: tokio::sync::oneshot::Sender<()>,
    _thread: std::thread::JoinHandle<()>,
}

impl Server {
    fn start(profile: Profile, nfobs: u64) -> Server {
        let t0 = testing::T0;
        let engine = Engine::in_memory(profile);
        let fobs: Vec<TestToken> = (0..nfobs).map(|i| testing::gaht_fob(i, t0)).collect();
        testing::create_account(&engine).unwrap();
        testing::import(&engine, &fobs).unwrap();
        let mut ring = KeyRing::new(&[9; 32], Some(7));
        ring.add_access_key(
            ALICE_KEY,
            &creds(ALICE_KEY).secret_access_key,
            Principal::user("alice"),
        )
        .unwrap();
        ring.add_access_key(
            BOB_KEY,
            &creds(BOB_KEY).secret_access_key,
            Principal::user("bob"),
        )
        .unwrap();
        ring.add_access_key(
            ROOT_KEY,
            &creds(ROOT_KEY).secret_access_key,
            Principal::Root,
        )
        .unwrap();
        let policy = Arc::new(Policy::parse(SEED_POLICY).unwrap());
        let policies = ["alice", "bob"]
            .into_iter()
            .map(|u| (u.to_string(), vec![Arc::clone(&policy)]))
            .collect();
        let clock = Arc::new(SimClock::new(t0));
        let now = Arc::clone(&clock) as Arc<dyn fobsim_core::Clock>;
        let svc = Arc::new(
            AwsService::new(
                Arc::new(engine),
                ring,
                policies,
                now,
                ServiceConfig::default(),
            )
            .unwrap(),
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (atx, arx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                atx.send(l.local_addr().unwrap()).unwrap();
                server::serve(l, svc, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
            });
        });
        Server {
            addr: arx.recv().unwrap(),
            clock,
            fobs,
            _stop: tx,
            _thread: thread,
        }
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn advance(&self, ms: u64) {
        self.clock.advance_millis(i64::try_from(ms).unwrap());
    }

    fn client(&self) -> Client {
        Client::new(&format!("http://{}", self.addr)).unwrap()
    }

    fn call(&self, service: Service, params: &[(&str, &str)], who: &Credentials) -> HttpResponse {
        self.client()
            .call(service, params, who, self.now())
            .unwrap()
    }

    fn iam(&self, params: &[(&str, &str)], who: &Credentials) -> HttpResponse {
        self.call(Service::Iam, params, who)
    }

    fn code(&mut self, fob: usize) -> String {
        let now = self.now();
        testing::press(&mut self.fobs[fob], now)
    }

    fn serial(&self, fob: usize) -> String {
        self.fobs[fob].serial().to_string()
    }

    /// Two consecutive codes, 30 s apart (the clock moves).
    fn two_codes(&mut self, fob: usize) -> (String, String) {
        let c1 = self.code(fob);
        self.advance(30_000);
        let c2 = self.code(fob);
        (c1, c2)
    }

    fn enable(&mut self, who: &Credentials, user: &str, fob: usize) -> HttpResponse {
        let (c1, c2) = self.two_codes(fob);
        let serial = self.serial(fob);
        self.iam(
            &[
                ("Action", "EnableMFADevice"),
                ("UserName", user),
                ("SerialNumber", &serial),
                ("AuthenticationCode1", &c1),
                ("AuthenticationCode2", &c2),
            ],
            who,
        )
    }

    fn session(
        &self,
        who: &Credentials,
        serial: Option<&str>,
        code: Option<&str>,
    ) -> Result<Credentials, HttpResponse> {
        let mut p = vec![("Action", "GetSessionToken")];
        if let Some(s) = serial {
            p.push(("SerialNumber", s));
        }
        if let Some(c) = code {
            p.push(("TokenCode", c));
        }
        let r = self.call(Service::Sts, &p, who);
        if r.status != 200 {
            return Err(r);
        }
        Ok(Credentials {
            access_key_id: r.text("AccessKeyId").unwrap(),
            secret_access_key: r.text("SecretAccessKey").unwrap(),
            session_token: r.text("SessionToken"),
        })
    }
}

fn assert_err(r: &HttpResponse, status: u16, code: &str) {
    assert_eq!(
        (r.status, r.code().as_deref()),
        (status, Some(code)),
        "{}",
        r.body
    );
    assert!(r.body.contains("<ErrorResponse"), "{}", r.body);
    assert!(
        r.text("RequestId").is_some_and(|id| id.len() == 36),
        "{}",
        r.body
    );
}

#[test]
fn enable_list_session_replay_and_deactivate_with_mfa() {
    let mut s = Server::start(Profile::for_tests(), 2);
    let alice = creds(ALICE_KEY);
    let r = s.enable(&alice, "alice", 0);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains(
            "<EnableMFADeviceResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">"
        )
    );
    let serial = s.serial(0);
    let r = s.iam(&[("Action", "ListMFADevices")], &alice);
    assert_eq!(r.status, 200);
    assert_eq!(xml::texts_of(&r.body, "SerialNumber"), vec![serial.clone()]);
    assert_eq!(
        r.text("EnableDate").as_deref(),
        Some("2026-01-01T00:00:30Z")
    );
    assert_eq!(r.text("IsTruncated").as_deref(), Some("false"));
    let r = s.iam(&[("Action", "GetUser")], &alice);
    assert_eq!(
        r.text("Arn").as_deref(),
        Some("arn:aws:iam::123456789012:user/alice")
    );

    // Without an MFA session, DeactivateMFADevice is denied by the policy.
    let deactivate = [
        ("Action", "DeactivateMFADevice"),
        ("UserName", "alice"),
        ("SerialNumber", serial.as_str()),
    ];
    let r = s.iam(&deactivate, &alice);
    assert_err(&r, 403, "AccessDenied");
    assert!(
        r.message().unwrap().contains("with an explicit deny"),
        "{}",
        r.body
    );
    let plain = s.session(&alice, None, None).unwrap();
    assert_err(&s.iam(&deactivate, &plain), 403, "AccessDenied");

    // An MFA session; the same code again is a replay.
    s.advance(30_000);
    let c = s.code(0);
    let mfa = s.session(&alice, Some(&serial), Some(&c)).unwrap();
    assert!(mfa.access_key_id.starts_with("ASIA"));
    let r = s.session(&alice, Some(&serial), Some(&c)).unwrap_err();
    assert_err(&r, 403, "AccessDenied");
    assert_eq!(
        r.message().as_deref(),
        Some("MultiFactorAuthentication failed with invalid MFA one time pass code.")
    );
    // Session credentials cannot get another session.
    assert_err(
        &s.session(&mfa, None, None).unwrap_err(),
        403,
        "AccessDenied",
    );

    // With the MFA session, deactivation is allowed.
    let r = s.iam(&deactivate, &mfa);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.iam(&[("Action", "ListMFADevices")], &alice);
    assert!(xml::texts_of(&r.body, "SerialNumber").is_empty());
    // The session expires (default 12 h for users).
    s.advance(12 * 3_600_000);
    assert_err(&s.iam(&[("Action", "GetUser")], &mfa), 403, "ExpiredToken");
}

#[test]
fn late_enable_then_resync() {
    let mut s = Server::start(Profile::for_tests(), 1);
    let alice = creds(ALICE_KEY);
    let serial = s.serial(0);
    let (c1, c2) = s.two_codes(0);
    // The user waits four minutes before submitting.
    s.advance(240_000);
    let r = s.iam(
        &[
            ("Action", "EnableMFADevice"),
            ("UserName", "alice"),
            ("SerialNumber", &serial),
            ("AuthenticationCode1", &c1),
            ("AuthenticationCode2", &c2),
        ],
        &alice,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    s.advance(30_000);
    let c = s.code(0);
    assert_err(
        &s.session(&alice, Some(&serial), Some(&c)).unwrap_err(),
        403,
        "AccessDenied",
    );
    s.advance(30_000);
    let (r1, r2) = s.two_codes(0);
    let r = s.iam(
        &[
            ("Action", "ResyncMFADevice"),
            ("UserName", "alice"),
            ("SerialNumber", &serial),
            ("AuthenticationCode1", &r1),
            ("AuthenticationCode2", &r2),
        ],
        &alice,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    s.advance(30_000);
    let c = s.code(0);
    assert!(s.session(&alice, Some(&serial), Some(&c)).is_ok());
}

#[test]
fn assignment_rules_and_authorization() {
    let mut s = Server::start(Profile::for_tests(), 3);
    let (alice, bob, root) = (creds(ALICE_KEY), creds(BOB_KEY), creds(ROOT_KEY));
    assert_eq!(s.enable(&alice, "alice", 0).status, 200);
    // Device in use: 409 EntityAlreadyExists.
    let r = s.enable(&bob, "bob", 0);
    assert_err(&r, 409, "EntityAlreadyExists");
    assert_eq!(
        r.message().as_deref(),
        Some("MFA Device is already in use.")
    );
    // A second device: 409 LimitExceeded.
    assert_err(&s.enable(&alice, "alice", 1), 409, "LimitExceeded");
    // Alice acting on bob: no policy allows it.
    let r = s.enable(&alice, "bob", 1);
    assert_err(&r, 403, "AccessDenied");
    assert!(
        r.message()
            .unwrap()
            .contains("because no identity-based policy allows the iam:EnableMFADevice action")
    );
    // Swapped codes: 403 InvalidAuthenticationCode.
    let (c1, c2) = s.two_codes(1);
    let serial1 = s.serial(1);
    let r = s.iam(
        &[
            ("Action", "EnableMFADevice"),
            ("UserName", "bob"),
            ("SerialNumber", &serial1),
            ("AuthenticationCode1", &c2),
            ("AuthenticationCode2", &c1),
        ],
        &root,
    );
    assert_err(&r, 403, "InvalidAuthenticationCode");
    // A user that does not exist.
    let (c1, c2) = s.two_codes(2);
    let serial2 = s.serial(2);
    let r = s.iam(
        &[
            ("Action", "EnableMFADevice"),
            ("UserName", "nobody"),
            ("SerialNumber", &serial2),
            ("AuthenticationCode1", &c1),
            ("AuthenticationCode2", &c2),
        ],
        &root,
    );
    assert_err(&r, 404, "NoSuchEntity");
    // Root may manage a user's device (policies do not apply to root).
    assert_eq!(s.enable(&root, "bob", 2).status, 200);
    // Unknown serial: 404; wrong codes: 403 InvalidAuthenticationCode.
    let r = s.iam(
        &[
            ("Action", "DeactivateMFADevice"),
            ("UserName", "bob"),
            ("SerialNumber", "GAHT99999999"),
        ],
        &root,
    );
    assert_err(&r, 404, "NoSuchEntity");
    let r = s.iam(
        &[
            ("Action", "EnableMFADevice"),
            ("UserName", "alice"),
            ("SerialNumber", "GAHT99999999"),
            ("AuthenticationCode1", "123456"),
            ("AuthenticationCode2", "654321"),
        ],
        &root,
    );
    assert_err(&r, 404, "NoSuchEntity");

    let r = s.iam(&[("Action", "GetUser")], &root);
    assert_eq!(
        r.text("Arn").as_deref(),
        Some("arn:aws:iam::123456789012:root")
    );
    let r = s.call(Service::Sts, &[("Action", "GetCallerIdentity")], &bob);
    assert_eq!(r.text("Account").as_deref(), Some("123456789012"));
}

#[test]
fn root_api_enable_is_refused() {
    let mut s = Server::start(Profile::for_tests(), 1);
    let root = creds(ROOT_KEY);
    let (c1, c2) = s.two_codes(0);
    let serial = s.serial(0);
    // Without UserName, the caller (root) is the target: the seed allows
    // the console only.
    let r = s.iam(
        &[
            ("Action", "EnableMFADevice"),
            ("SerialNumber", &serial),
            ("AuthenticationCode1", &c1),
            ("AuthenticationCode2", &c2),
        ],
        &root,
    );
    assert_err(&r, 403, "AccessDenied");
    assert!(
        r.message().unwrap().contains("Management Console only"),
        "{}",
        r.body
    );
    let devices = s.iam(&[("Action", "ListMFADevices")], &root);
    assert_eq!(devices.status, 200);
    assert!(xml::texts_of(&devices.body, "SerialNumber").is_empty());
    // The same codes still enable the device for a user (nothing consumed).
    let r = s.iam(
        &[
            ("Action", "EnableMFADevice"),
            ("UserName", "alice"),
            ("SerialNumber", &serial),
            ("AuthenticationCode1", &c1),
            ("AuthenticationCode2", &c2),
        ],
        &root,
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn authentication_failures_have_aws_codes() {
    let mut s = Server::start(Profile::for_tests(), 1);
    let alice = creds(ALICE_KEY);
    let get_user = [("Action", "GetUser")];
    // Wrong secret, unknown key.
    let wrong = Credentials {
        secret_access_key: "not-the-secret-key".into(),
        ..alice.clone()
    };
    assert_err(&s.iam(&get_user, &wrong), 403, "SignatureDoesNotMatch");
    assert_err(
        &s.iam(&get_user, &creds("AKIANOBODY00000001")),
        403,
        "InvalidClientTokenId",
    );
    // Expired and future request times, against the engine's clock.
    let c = s.client();
    let r = c
        .call(
            Service::Iam,
            &get_user,
            &alice,
            s.now().add_millis(-301_000),
        )
        .unwrap();
    assert_err(&r, 403, "SignatureDoesNotMatch");
    assert!(
        r.message()
            .unwrap()
            .starts_with("Signature expired: 20251231T235459Z is now earlier than"),
        "{}",
        r.body
    );
    let r = c
        .call(Service::Iam, &get_user, &alice, s.now().add_millis(301_000))
        .unwrap();
    assert!(
        r.message()
            .unwrap()
            .starts_with("Signature not yet current"),
        "{}",
        r.body
    );
    // Moving the engine's clock makes an old signing time fine again.
    s.advance(3_600_000);
    let r = c
        .call(
            Service::Iam,
            &get_user,
            &alice,
            testing::T0.add_millis(3_600_000),
        )
        .unwrap();
    assert_eq!(r.status, 200);
    // Tampered body (signature over the original).
    let mut req = SignedRequest::new(
        &s.addr.to_string(),
        Service::Iam,
        &[("Action", "GetUser"), ("UserName", "alice")],
        &alice,
        "us-east-1",
        s.now(),
    )
    .unwrap();
    req.body.pop();
    req.body.push('x');
    let r = c.send_signed(&req).unwrap();
    assert_err(&r, 403, "SignatureDoesNotMatch");
    // Unsigned, and a session token that does not open.
    let r = c
        .send(
            "POST",
            "/",
            &[("Host", "x")],
            b"Action=GetSessionToken&Version=2011-06-15",
        )
        .unwrap();
    assert_err(&r, 403, "MissingAuthenticationToken");
    assert!(r.body.contains("https://sts.amazonaws.com/doc/2011-06-15/"));
    let fake = Credentials {
        access_key_id: "ASIAFAKE0000000001".into(),
        secret_access_key: "x".repeat(20),
        session_token: Some("AAAA".into()),
    };
    assert_err(&s.iam(&get_user, &fake), 403, "InvalidClientTokenId");
    let r = s.code(0);
    assert_eq!(r.len(), 6);
}

/// What no well-behaved client sends (a chunked body, header bytes that
/// are not text): written by hand, with `Connection: close`, so the answer
/// is everything up to the close.
fn raw(s: &Server, head: &[u8], body: &[u8]) -> HttpResponse {
    let stream = TcpStream::connect(s.addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut bytes = head.to_vec();
    bytes.extend_from_slice(b"Connection: close\r\n\r\n");
    bytes.extend_from_slice(body);
    // A server that answers before reading everything may reset: ignore.
    let _ = w.write_all(&bytes);
    let mut answer = Vec::new();
    let _ = (&stream).read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    HttpResponse {
        status: head[9..12].parse().unwrap(),
        body: body.to_string(),
    }
}

/// `body` as alice signs it for `service`.
fn signed_body(s: &Server, body: &[u8], service: &str) -> HttpResponse {
    use fobsim_aws::sigv4::sign;
    let alice = creds(ALICE_KEY);
    let headers = vec![("host".to_string(), s.addr.to_string())];
    let parts = fobsim_aws::sigv4::RequestParts {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body,
    };
    let mut all = headers.clone();
    all.extend(sign(&parts, &alice, "us-east-1", service, s.now()).unwrap());
    let all: Vec<(&str, &str)> = all.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    s.client().send("POST", "/", &all, body).unwrap()
}

#[test]
fn abuse_gets_aws_errors_and_the_server_keeps_serving() {
    let s = Server::start(Profile::for_tests(), 1);
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            b"Action=GetUser&Version=2010-05-08&UserName=%zz".to_vec(),
            404,
            "MalformedQueryString",
        ),
        (
            b"Action=GetUser&Version=2010-05-08&UserName=%ff".to_vec(),
            404,
            "MalformedQueryString",
        ),
        (
            b"Action=GetUser&Action=GetUser&Version=2010-05-08".to_vec(),
            404,
            "MalformedQueryString",
        ),
        (
            b"Action=CreateUser&Version=2010-05-08".to_vec(),
            400,
            "InvalidAction",
        ),
        (b"Version=2010-05-08".to_vec(), 400, "MissingAction"),
        (b"Action=GetUser".to_vec(), 400, "MissingParameter"),
        (
            b"Action=EnableMFADevice&Version=2010-05-08".to_vec(),
            400,
            "ValidationError",
        ),
        (
            b"Action=GetUser&Version=2010-05-08&UserName=%3Cscript%3E%26%22%27%00".to_vec(),
            400,
            "ValidationError",
        ),
        (
            b"\x00\x01\x02\xff garbage".to_vec(),
            404,
            "MalformedQueryString",
        ),
        (b"\x00\x01\x02 garbage".to_vec(), 400, "MissingAction"),
    ];
    for (body, status, code) in &cases {
        let r = signed_body(&s, body, "iam");
        assert_err(&r, *status, code);
    }
    // The XML-unsafe value comes back escaped, and the document stays
    // well-formed (no raw `<` inside the message).
    let r = signed_body(
        &s,
        b"Action=GetUser&Version=2010-05-08&UserName=%3Cscript%3E",
        "iam",
    );
    assert!(r.body.contains("&lt;script&gt;"), "{}", r.body);
    assert_eq!(r.message().unwrap().matches('<').count(), 1);
    // An STS action signed for IAM is not an IAM operation.
    let r = signed_body(&s, b"Action=GetSessionToken&Version=2011-06-15", "iam");
    assert_err(&r, 400, "InvalidAction");
    let r = signed_body(&s, b"Action=GetUser&Version=2010-05-08", "s3");
    assert_err(&r, 403, "SignatureDoesNotMatch");
    // 1 MiB bodies: declared, and streamed without a length (chunked).
    let big = vec![b'a'; 1 << 20];
    let r = s
        .client()
        .send("POST", "/", &[("Host", "x")], &big)
        .unwrap();
    assert_err(&r, 413, "RequestEntityTooLarge");
    let mut chunked = Vec::new();
    for chunk in big.chunks(64 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = raw(
        &s,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n",
        &chunked,
    );
    assert_err(&r, 413, "RequestEntityTooLarge");
    // Other methods, garbage authorization.
    let r = s
        .client()
        .send("DELETE", "/", &[("Host", "x")], b"")
        .unwrap();
    assert_err(&r, 405, "MethodNotAllowed");
    let r = raw(
        &s,
        b"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: AWS4-HMAC-SHA256 \xff\xfe\r\nContent-Length: 0\r\n",
        b"",
    );
    assert_err(&r, 400, "IncompleteSignature");
    // Not HTTP at all: the connection is dropped, nothing else.
    {
        let mut t = TcpStream::connect(s.addr).unwrap();
        let _ = t.write_all(b"\x16\x03\x01 not http\r\n\r\n");
    }
    // Still serving.
    let r = s.iam(&[("Action", "GetUser")], &creds(ALICE_KEY));
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn list_mfa_devices_pages_with_marker() {
    let profile = Profile {
        max_devices_per_user: 8,
        ..Profile::for_tests()
    };
    let mut s = Server::start(profile, 3);
    let root = creds(ROOT_KEY);
    for i in 0..3 {
        assert_eq!(s.enable(&root, "alice", i).status, 200);
    }
    let r = s.iam(
        &[
            ("Action", "ListMFADevices"),
            ("UserName", "alice"),
            ("MaxItems", "2"),
        ],
        &root,
    );
    assert_eq!(r.text("IsTruncated").as_deref(), Some("true"), "{}", r.body);
    assert_eq!(
        xml::texts_of(&r.body, "SerialNumber"),
        vec![s.serial(0), s.serial(1)]
    );
    let marker = r.text("Marker").unwrap();
    let r = s.iam(
        &[
            ("Action", "ListMFADevices"),
            ("UserName", "alice"),
            ("MaxItems", "2"),
            ("Marker", &marker),
        ],
        &root,
    );
    assert_eq!(r.text("IsTruncated").as_deref(), Some("false"));
    assert_eq!(xml::texts_of(&r.body, "SerialNumber"), vec![s.serial(2)]);
    assert_eq!(r.text("Marker"), None);
    let r = s.iam(
        &[
            ("Action", "ListMFADevices"),
            ("UserName", "alice"),
            ("Marker", "!!"),
        ],
        &root,
    );
    assert_err(&r, 400, "ValidationError");
    let r = s.iam(
        &[
            ("Action", "ListMFADevices"),
            ("UserName", "alice"),
            ("MaxItems", "0"),
        ],
        &root,
    );
    assert_err(&r, 400, "ValidationError");
}

#[test]
fn the_example_bootstrap_serves_its_keys() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/bootstrap");
    let b = Bootstrap::load(&dir.join("example.toml")).unwrap();
    let engine = Engine::in_memory(b.profile.clone());
    b.apply(&engine).unwrap();
    let ring = b.key_ring(&[3; 32], Some(1)).unwrap();
    let svc = AwsService::new(
        Arc::new(engine),
        ring,
        b.policies().unwrap(),
        Arc::new(SimClock::new(testing::T0)),
        ServiceConfig::default(),
    )
    .unwrap();
    let alice = Credentials {
        access_key_id: "AKIAALICEEXAMPLE0001".into(),
        secret_access_key: "alice+Secret/Example/Key/000000000000001".into(),
        session_token: None,
    };
    // Through the sans-IO service: parse the raw request back into parts.
    let req = build_request(
        "127.0.0.1:1",
        Service::Iam,
        &[("Action", "GetUser")],
        &alice,
        "us-east-1",
        testing::T0,
    )
    .unwrap();
    let text = String::from_utf8(req).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| {
            l.split_once(": ")
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect();
    let parts = fobsim_aws::sigv4::RequestParts {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: body.as_bytes(),
    };
    let r = svc.handle(&parts);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("<UserName>alice</UserName>"));
}

#[test]
fn concurrent_replays_over_http_accept_exactly_one() {
    // Replays count as failures: without lockout, each round starts clean.
    let profile = Profile {
        lockout_threshold: 0,
        ..Profile::for_tests()
    };
    let mut s = Server::start(profile, 1);
    let alice = creds(ALICE_KEY);
    assert_eq!(s.enable(&alice, "alice", 0).status, 200);
    let serial = s.serial(0);
    for round in 0..5 {
        s.advance(30_000);
        let code = s.code(0);
        let req = SignedRequest::new(
            &s.addr.to_string(),
            Service::Sts,
            &[
                ("Action", "GetSessionToken"),
                ("SerialNumber", &serial),
                ("TokenCode", &code),
            ],
            &alice,
            "us-east-1",
            s.now(),
        )
        .unwrap();
        let endpoint = format!("http://{}", s.addr);
        let oks: usize = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let (req, endpoint) = (req.clone(), endpoint.clone());
                    sc.spawn(move || {
                        let r = Client::new(&endpoint).unwrap().send_signed(&req).unwrap();
                        if r.status != 200 {
                            assert_err(&r, 403, "AccessDenied");
                        }
                        usize::from(r.status == 200)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(oks, 1, "round {round}: one code, one session");
    }
}
