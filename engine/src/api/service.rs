//! One request in, one response out: authentication (SigV4 against the
//! key ring, at the engine's time), the Query action, the policy check,
//! the engine call, the XML answer. Sans-IO: [`AwsService::handle_at`]
//! takes the request's parts and `now`; the HTTP shell is [`super::server`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use data_encoding::BASE64URL_NOPAD;
use fobsim_core::Timestamp;

use super::credentials::{Caller, CallerKind, KeyRing};
use super::policy::{Decision, Policy, RequestContext, evaluate};
use crate::engine::Engine;
use crate::error::{EngineError, ErrorKind};
use fobsim_aws::query::{Action, Form, not_authorized, parse_action};
use fobsim_aws::sigv4::{self, RequestParts};
use fobsim_aws::{AwsError, Service, xml};
use fobsim_core::Clock;
use fobsim_core::{Channel, Principal};

/// Settings of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Accepted difference between a request's `X-Amz-Date` and the
    /// engine's clock (AWS: 5 minutes).
    pub max_skew_ms: u64,
    /// Largest request body accepted (the server answers 413 beyond).
    pub max_body: usize,
    /// Seed of request ids (deterministic transcripts in tests).
    pub request_id_seed: u64,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            max_skew_ms: sigv4::DEFAULT_MAX_SKEW_MS,
            max_body: 64 * 1024,
            request_id_seed: 0,
        }
    }
}

/// An HTTP response: status and XML body (`text/xml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// HTTP status.
    pub status: u16,
    /// The XML document.
    pub body: String,
    /// The request id (also in the body; sent as `x-amzn-RequestId`).
    pub request_id: String,
}

/// The IAM + STS service over an [`Engine`].
pub struct AwsService {
    engine: Arc<Engine>,
    keys: KeyRing,
    policies: HashMap<String, Vec<Arc<Policy>>>,
    account_id: String,
    clock: Arc<dyn Clock>,
    /// The clock a request's signing time is judged against, when it is
    /// not `clock` (see [`AwsService::with_signing_clock`]).
    signing_clock: Option<Arc<dyn Clock>>,
    config: ServiceConfig,
    counter: AtomicU64,
}

impl std::fmt::Debug for AwsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsService")
            .field("account_id", &self.account_id)
            .field("keys", &self.keys)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const ROOT_MAX_SESSION_S: u32 = 3_600;
const USER_DEFAULT_SESSION_S: u32 = 43_200;

impl AwsService {
    /// A service over `engine` (whose account must exist), accepting the
    /// keys of `keys`, with each user's attached `policies`, reading time
    /// from `clock`.
    ///
    /// # Errors
    /// [`ErrorKind::NoSuchEntity`] when the engine has no account,
    /// [`ErrorKind::ServiceFailure`] when the store cannot be read.
    pub fn new(
        engine: Arc<Engine>,
        keys: KeyRing,
        policies: HashMap<String, Vec<Arc<Policy>>>,
        clock: Arc<dyn Clock>,
        config: ServiceConfig,
    ) -> Result<Self, EngineError> {
        let account_id = engine
            .store()
            .account()?
            .ok_or_else(|| {
                EngineError::new(ErrorKind::NoSuchEntity, "The account has not been created.")
            })?
            .account_id;
        Ok(AwsService {
            engine,
            keys,
            policies,
            account_id,
            clock,
            signing_clock: None,
            config,
            counter: AtomicU64::new(0),
        })
    }

    /// Judge requests' signing times (SigV4, `max_skew_ms`) against
    /// `clock` instead of the engine's clock, which still judges MFA codes,
    /// sessions and lockouts. For an engine on a manual clock set in the
    /// past or future, driven by clients that sign with the real time
    /// (the AWS CLI, boto3, the SDKs).
    #[must_use]
    pub fn with_signing_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.signing_clock = Some(clock);
        self
    }

    /// The engine.
    #[must_use]
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// The engine's time now.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn request_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let a = splitmix(self.config.request_id_seed ^ n.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let b = splitmix(a ^ n);
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    /// An error response for `service` (used by the HTTP shell too, e.g.
    /// for a body over the limit).
    #[must_use]
    pub fn error(&self, service: Service, err: &AwsError) -> HttpResponse {
        let request_id = self.request_id();
        HttpResponse {
            status: err.status,
            body: xml::error_response(service, err, &request_id),
            request_id,
        }
    }

    /// Handle a request at the engine's time now.
    #[must_use]
    pub fn handle(&self, parts: &RequestParts<'_>) -> HttpResponse {
        self.handle_at(self.clock.now(), parts)
    }

    /// Handle a request at `now`.
    #[must_use]
    pub fn handle_at(&self, now: Timestamp, parts: &RequestParts<'_>) -> HttpResponse {
        let request_id = self.request_id();
        let (service, result) = self.process(now, parts, &request_id);
        match result {
            Ok(body) => HttpResponse {
                status: 200,
                body,
                request_id,
            },
            Err(err) => HttpResponse {
                status: err.status,
                body: xml::error_response(service, &err, &request_id),
                request_id,
            },
        }
    }

    fn process(
        &self,
        now: Timestamp,
        parts: &RequestParts<'_>,
        rid: &str,
    ) -> (Service, Result<String, AwsError>) {
        let params: &[u8] = match parts.method {
            "POST" => parts.body,
            "GET" => parts.query.as_bytes(),
            other => {
                let e = AwsError::sender(
                    405,
                    "MethodNotAllowed",
                    format!(
                        "The HTTP method {} is not allowed: use POST.",
                        other.chars().take(16).collect::<String>()
                    ),
                );
                return (Service::Iam, Err(e));
            }
        };
        let Some(auth_value) = parts.header("authorization") else {
            // Say it in the namespace of the service the action belongs to.
            let service = match Form::parse(params)
                .ok()
                .as_ref()
                .and_then(|f| f.get("Action"))
            {
                Some("GetSessionToken" | "GetCallerIdentity") => Service::Sts,
                _ => Service::Iam,
            };
            return (service, Err(sigv4::missing_token()));
        };
        let auth = match sigv4::parse_authorization(auth_value) {
            Ok(a) => a,
            Err(e) => return (Service::Iam, Err(e)),
        };
        let Some(service) = Service::from_signing_name(auth.service) else {
            let e = AwsError::sender(
                403,
                "SignatureDoesNotMatch",
                "Credential should be scoped to correct service: 'iam' or 'sts'.",
            );
            return (Service::Iam, Err(e));
        };
        (
            service,
            self.authenticated(now, parts, &auth, service, params, rid),
        )
    }

    fn authenticated(
        &self,
        now: Timestamp,
        parts: &RequestParts<'_>,
        auth: &sigv4::Authorization<'_>,
        service: Service,
        params: &[u8],
        rid: &str,
    ) -> Result<String, AwsError> {
        let resolved = self.keys.resolve(
            auth.access_key_id,
            parts.header("x-amz-security-token"),
            now,
        )?;
        let signed_against = self.signing_clock.as_ref().map_or(now, |c| c.now());
        sigv4::verify(
            parts,
            auth,
            &resolved.secret,
            signed_against,
            self.config.max_skew_ms,
        )?;
        let form = Form::parse(params)?;
        let action = parse_action(service, &form)?;
        self.dispatch(now, &resolved.caller, &action, rid)
    }

    fn arn_of(&self, p: &Principal) -> String {
        match p {
            Principal::Root => format!("arn:aws:iam::{}:root", self.account_id),
            Principal::User(n) => format!("arn:aws:iam::{}:user/{n}", self.account_id),
        }
    }

    fn engine_error(e: EngineError) -> AwsError {
        if e.kind == ErrorKind::ServiceFailure {
            // The detail stays in the server's log (never a secret).
            eprintln!("fobsim serve: engine failure: {}", e.message);
        }
        e.into()
    }

    /// The policy check of an IAM action on `target` by `caller`.
    fn authorize(
        &self,
        caller: &Caller,
        action: &Action,
        target: &Principal,
    ) -> Result<(), AwsError> {
        let Principal::User(name) = &caller.principal else {
            // Policies do not apply to the root user.
            return Ok(());
        };
        let resource = self.arn_of(target);
        let ctx = RequestContext {
            action: &format!("iam:{}", action.name()),
            resource: &resource,
            username: Some(name),
            mfa_present: caller.mfa_present(),
        };
        let policies = self.policies.get(name).map_or(&[][..], Vec::as_slice);
        match evaluate(policies, &ctx) {
            Decision::Allow => Ok(()),
            d => Err(AwsError::access_denied(not_authorized(
                &self.arn_of(&caller.principal),
                action.name(),
                &resource,
                matches!(d, Decision::ExplicitDeny(_)),
            ))),
        }
    }

    fn dispatch(
        &self,
        now: Timestamp,
        caller: &Caller,
        action: &Action,
        rid: &str,
    ) -> Result<String, AwsError> {
        if action.service() == Service::Sts {
            return self.sts(now, caller, action, rid);
        }
        let target = match action.user_name() {
            Some(n) => Principal::user(n),
            None => caller.principal.clone(),
        };
        self.authorize(caller, action, &target)?;
        let e = &self.engine;
        match action {
            Action::GetUser { .. } => {
                let info = e.get_user(&target).map_err(Self::engine_error)?;
                let user = xml::User {
                    user_name: matches!(info.principal, Principal::User(_))
                        .then_some(info.user_name.as_str()),
                    user_id: &info.user_id,
                    arn: &info.arn,
                };
                Ok(xml::get_user(&user, rid))
            }
            Action::ListMfaDevices {
                marker, max_items, ..
            } => {
                let devices = e.list_mfa_devices(&target).map_err(Self::engine_error)?;
                let start = match marker {
                    None => 0,
                    Some(m) => {
                        let after = BASE64URL_NOPAD
                            .decode(m.as_bytes())
                            .ok()
                            .and_then(|b| String::from_utf8(b).ok())
                            .ok_or_else(|| AwsError::validation("Invalid Marker: use the Marker of a previous truncated response."))?;
                        devices.iter().take_while(|d| d.serial <= after).count()
                    }
                };
                let max = *max_items as usize;
                let page: Vec<_> = devices
                    .iter()
                    .skip(start)
                    .take(max)
                    .map(|d| xml::MfaDevice {
                        serial: &d.serial,
                        enable_date: d.enable_date,
                    })
                    .collect();
                let next = (start + page.len() < devices.len())
                    .then(|| {
                        page.last()
                            .map(|d| BASE64URL_NOPAD.encode(d.serial.as_bytes()))
                    })
                    .flatten();
                Ok(xml::list_mfa_devices(
                    &target.to_string(),
                    &page,
                    next.as_deref(),
                    rid,
                ))
            }
            Action::EnableMfaDevice {
                serial,
                code1,
                code2,
                ..
            } => {
                e.enable_mfa_device(now, Channel::Api, &target, serial, code1, code2)
                    .map_err(Self::engine_error)?;
                Ok(xml::empty_response(Service::Iam, action.name(), rid))
            }
            Action::ResyncMfaDevice {
                serial,
                code1,
                code2,
                ..
            } => {
                e.resync_mfa_device(now, &target, serial, code1, code2)
                    .map_err(Self::engine_error)?;
                Ok(xml::empty_response(Service::Iam, action.name(), rid))
            }
            Action::DeactivateMfaDevice { serial, .. } => {
                e.deactivate_mfa_device(now, &target, serial)
                    .map_err(Self::engine_error)?;
                Ok(xml::empty_response(Service::Iam, action.name(), rid))
            }
            Action::GetSessionToken { .. } | Action::GetCallerIdentity => Err(AwsError::internal()),
        }
    }

    fn sts(
        &self,
        now: Timestamp,
        caller: &Caller,
        action: &Action,
        rid: &str,
    ) -> Result<String, AwsError> {
        match action {
            Action::GetSessionToken {
                duration_seconds,
                serial,
                token_code,
            } => {
                if matches!(caller.kind, CallerKind::Session { .. }) {
                    return Err(AwsError::access_denied(
                        "Cannot call GetSessionToken with session credentials",
                    ));
                }
                let secs = match (&caller.principal, duration_seconds) {
                    // The root user's sessions last at most an hour.
                    (Principal::Root, d) => d.unwrap_or(ROOT_MAX_SESSION_S).min(ROOT_MAX_SESSION_S),
                    (_, d) => d.unwrap_or(USER_DEFAULT_SESSION_S),
                };
                let mfa = match (serial, token_code) {
                    (None, None) => false,
                    (Some(serial), Some(code)) => {
                        self.engine
                            .verify_session_mfa(now, &caller.principal, serial, code)
                            .map_err(Self::engine_error)?;
                        true
                    }
                    _ => {
                        return Err(AwsError::access_denied(
                            "MultiFactorAuthentication failed with invalid MFA one time pass code.",
                        ));
                    }
                };
                let creds =
                    self.keys
                        .issue_session(&caller.principal, mfa, now, u64::from(secs) * 1000);
                Ok(xml::get_session_token(&creds, rid))
            }
            Action::GetCallerIdentity => {
                let user_id = match &caller.principal {
                    Principal::Root => self.account_id.clone(),
                    p => self.engine.get_user(p).map_err(Self::engine_error)?.user_id,
                };
                Ok(xml::get_caller_identity(
                    &self.arn_of(&caller.principal),
                    &user_id,
                    &self.account_id,
                    rid,
                ))
            }
            _ => Err(AwsError::internal()),
        }
    }
}
