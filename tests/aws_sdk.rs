//! The official AWS SDK for Rust (`aws-sdk-iam`, `aws-sdk-sts`) against a
//! real `fobsim serve` child process: a third real client of the AWS face
//! next to boto3 and the AWS CLI (tests/aws/e2e.py). Its own serializers,
//! SigV4 signer (session tokens included) and response parsers, over its
//! own HTTP client; enable, session, replay, deactivate with an MFA
//! session, late enable, resync.
//!
//! The server runs on a manual clock moved through its control socket; the
//! SDK signs with a time source that reads the same clock, and the codes
//! come from the seed file's secrets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_sdk_iam::config::{BehaviorVersion, Credentials, Region, SharedHttpClient};
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::operation::RequestId as _;
use aws_smithy_async::time::TimeSource;
use fobsim_clock::control::Request as ControlRequest;
use fobsim_clock::control::client::ControlClient;
use fobsim_core::{Algorithm, Totp};

/// Mid-2026, 5 s into a step.
const T0: u64 = 1_782_864_005;
const STEP: u64 = 30;
const ALICE: (&str, &str) = (
    "AKIAALICESDK00000001",
    "alice+Secret/SdkTest/Key/00000000000001",
);
/// (serial, the RFC 6238 SHA-1 secret as hex).
const FOB: (&str, &str) = ("GAHT95000001", "3132333435363738393031323334353637383930");
const POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/policies/manage-own-mfa.json"
);

/// `fobsim serve` on loopback, killed on drop.
struct Server {
    child: Child,
    endpoint: String,
    control: ControlClient,
    /// The server's (and the SDK's) time, UNIX seconds.
    now: Arc<AtomicU64>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(dir: &Path) -> Server {
        std::fs::write(
            dir.join("seeds.csv"),
            format!(
                "serial,seed,type,digits,step\n{},{},TOTP,6,30\n",
                FOB.0, FOB.1
            ),
        )
        .unwrap();
        let boot = dir.join("bootstrap.toml");
        std::fs::write(
            &boot,
            format!(
                r#"seeds = ["seeds.csv"]
[account]
id = "210987654321"
alias = "fobsim-sdk"
root_email = "root@example.com"
root_phone = "+1 555 0100"
root_password = "root-Password-1"
access_keys = []

[[users]]
name = "alice"
password = "alice-Password-1"
policies = ["{POLICY}"]
access_keys = [{{ id = "{}", secret = "{}" }}]

[profile]
[profile.password_cost]
m_cost_kib = 8
t_cost = 1
p_cost = 1
"#,
                ALICE.0, ALICE.1
            ),
        )
        .unwrap();
        let socket = dir.join("clock.sock");
        let mut child = Command::new(env!("CARGO_BIN_EXE_fobsim"))
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1", "--db"])
            .arg(dir.join("iam.db"))
            .arg("--bootstrap")
            .arg(&boot)
            .args([
                "--clock",
                "manual",
                "--start",
                &format!("@{T0}"),
                "--control",
            ])
            .arg(&socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("fobsim serve starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let control = ControlClient::connect(&socket, Duration::from_secs(10)).unwrap();
        Server {
            child,
            endpoint: v["endpoint"].as_str().unwrap().to_string(),
            control,
            now: Arc::new(AtomicU64::new(T0)),
        }
    }

    fn advance(&mut self, secs: u64) {
        let t = self.now.fetch_add(secs, Ordering::SeqCst) + secs;
        self.control
            .request(&ControlRequest::Set {
                time: format!("@{t}"),
            })
            .unwrap();
    }

    /// The code the fob shows now.
    fn code(&self) -> String {
        let secret = hex::decode(FOB.1).unwrap();
        let totp = Totp::new(Algorithm::Sha1, &secret, 6, 30, 0).unwrap();
        totp.code_at(self.now.load(Ordering::SeqCst))
            .unwrap()
            .to_string()
    }

    /// Two consecutive codes; the clock moves one step.
    fn two_codes(&mut self) -> (String, String) {
        let c1 = self.code();
        self.advance(STEP);
        (c1, self.code())
    }

    fn clients(&self, creds: Credentials) -> (aws_sdk_iam::Client, aws_sdk_sts::Client) {
        let http: SharedHttpClient = aws_smithy_http_client::Builder::new().build_http();
        let clock = Clock(Arc::clone(&self.now));
        let iam = aws_sdk_iam::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(creds.clone())
            .http_client(http.clone())
            .time_source(clock.clone())
            .retry_config(aws_sdk_iam::config::retry::RetryConfig::disabled())
            .build();
        let sts = aws_sdk_sts::Config::builder()
            .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_sdk_sts::config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .http_client(http)
            .time_source(clock)
            .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
            .build();
        (
            aws_sdk_iam::Client::from_conf(iam),
            aws_sdk_sts::Client::from_conf(sts),
        )
    }
}

/// The SDK's clock: the server's.
#[derive(Debug, Clone)]
struct Clock(Arc<AtomicU64>);

impl TimeSource for Clock {
    fn now(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(self.0.load(Ordering::SeqCst))
    }
}

fn alice() -> Credentials {
    Credentials::new(ALICE.0, ALICE.1, None, None, "fobsim-test")
}

/// (AWS error code, HTTP status) of a refused call.
fn refusal<E: ProvideErrorMetadata>(e: &SdkError<E>) -> (Option<&str>, Option<u16>) {
    (e.code(), e.raw_response().map(|r| r.status().as_u16()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_sdk_enables_signs_in_replays_and_resyncs() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path());
    let (iam, sts) = s.clients(alice());

    // Enable with two consecutive codes; the device is listed.
    let (c1, c2) = s.two_codes();
    let r = iam
        .enable_mfa_device()
        .user_name("alice")
        .serial_number(FOB.0)
        .authentication_code1(&c1)
        .authentication_code2(&c2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.request_id().map(str::len), Some(36));
    let list = iam.list_mfa_devices().send().await.unwrap();
    let devices = list.mfa_devices();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].serial_number(), FOB.0);
    assert_eq!(devices[0].user_name(), "alice");
    assert_eq!(
        devices[0].enable_date().secs(),
        i64::try_from(s.now.load(Ordering::SeqCst)).unwrap()
    );
    assert!(!list.is_truncated());

    // A session with MFA; the same code again is a replay.
    s.advance(STEP);
    let code = s.code();
    let mfa = sts
        .get_session_token()
        .serial_number(FOB.0)
        .token_code(&code)
        .duration_seconds(3600)
        .send()
        .await
        .unwrap();
    let session = mfa.credentials().unwrap();
    assert!(session.access_key_id().starts_with("ASIA"));
    let replay = sts
        .get_session_token()
        .serial_number(FOB.0)
        .token_code(&code)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&replay),
        (Some("AccessDenied"), Some(403)),
        "{replay:?}"
    );

    // The session signs (with its token): the policy lets an MFA session
    // deactivate the device, and alice's long-term key cannot.
    let denied = iam
        .deactivate_mfa_device()
        .user_name("alice")
        .serial_number(FOB.0)
        .send()
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Some("AccessDenied"), "{denied:?}");
    let (mfa_iam, mfa_sts) = s.clients(Credentials::new(
        session.access_key_id(),
        session.secret_access_key(),
        Some(session.session_token().to_string()),
        None,
        "fobsim-test-session",
    ));
    let me = mfa_sts.get_caller_identity().send().await.unwrap();
    assert_eq!(me.arn(), Some("arn:aws:iam::210987654321:user/alice"));
    mfa_iam
        .deactivate_mfa_device()
        .user_name("alice")
        .serial_number(FOB.0)
        .send()
        .await
        .unwrap();
    let list = iam.list_mfa_devices().send().await.unwrap();
    assert!(list.mfa_devices().is_empty());

    // Codes submitted ten minutes late: the device is enabled but out of
    // sync (sessions are denied) until a resync.
    s.advance(STEP);
    let (c1, c2) = s.two_codes();
    s.advance(600);
    iam.enable_mfa_device()
        .user_name("alice")
        .serial_number(FOB.0)
        .authentication_code1(&c1)
        .authentication_code2(&c2)
        .send()
        .await
        .unwrap();
    s.advance(STEP);
    let late = sts
        .get_session_token()
        .serial_number(FOB.0)
        .token_code(s.code())
        .send()
        .await
        .unwrap_err();
    assert_eq!(late.code(), Some("AccessDenied"), "{late:?}");
    let (c1, c2) = s.two_codes();
    iam.resync_mfa_device()
        .user_name("alice")
        .serial_number(FOB.0)
        .authentication_code1(&c1)
        .authentication_code2(&c2)
        .send()
        .await
        .unwrap();
    s.advance(STEP);
    let r = sts
        .get_session_token()
        .serial_number(FOB.0)
        .token_code(s.code())
        .send()
        .await
        .unwrap();
    assert!(!r.credentials().unwrap().session_token().is_empty());

    // A wrong secret is refused with AWS's code.
    let (wrong, _) = s.clients(Credentials::new(ALICE.0, "wrong", None, None, "x"));
    let e = wrong.get_user().send().await.unwrap_err();
    assert_eq!(e.code(), Some("SignatureDoesNotMatch"), "{e:?}");
}
