//! privacyIDEA's `/validate/check`, started by the matrix adapter's own
//! start-up ([`fobsim_engines::privacyidea::Server`], stock configuration,
//! gunicorn with 2 sync workers where the venv has it): one fresh token
//! and code per request, `concurrency` load threads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fobsim_core::{Algorithm, Totp};
use fobsim_engines::privacyidea::{ADMIN, ADMIN_PASSWORD, Http, Server, ServerOptions};
use serde_json::Value;

use super::HttpResult;
use crate::measure::cpu_seconds;
use crate::otp::secret;
use crate::{BenchError, Options, peer, setup};

/// A `ureq` agent for one load thread, answering every status as a
/// response and adding no `User-Agent` or `Accept` header (privacyIDEA
/// reads the user agent into its audit log: the requests stay what they
/// were). `timeout` bounds connecting and each read and write; there is
/// no timeout on resolving (the URLs name `127.0.0.1`): a resolve timeout
/// makes `ureq` spawn a thread per request.
fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .user_agent(ureq::config::AutoHeaderValue::None)
        .accept(ureq::config::AutoHeaderValue::None)
        .timeout_connect(Some(timeout))
        .timeout_per_read(Some(timeout))
        .timeout_per_write(Some(timeout))
        .max_idle_connections_per_host(1)
        .build()
        .into()
}

/// One request, `Connection: close` (a new TCP connection each, as the
/// sync workers serve them anyway); returns (status, JSON body or Null).
fn request(
    agent: &ureq::Agent,
    url: &str,
    auth: Option<&str>,
    form: &str,
) -> Result<(u16, Value), BenchError> {
    let mut r = agent
        .post(url)
        .header("connection", "close")
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    let mut answer = r
        .send(form.as_bytes())
        .map_err(|e| peer("privacyIDEA", e))?;
    let body = answer
        .body_mut()
        .read_to_vec()
        .map_err(|e| peer("privacyIDEA", e))?;
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok((answer.status().as_u16(), v))
}

pub(super) fn bench(opts: &Options) -> Result<HttpResult, BenchError> {
    let pi = Server::start(&ServerOptions::bench(opts.privacyidea_venv.clone(), 2))
        .map_err(|e| peer("privacyIDEA", e))?;
    let server = match pi.http() {
        Http::Gunicorn { .. } => pi.serving(),
        Http::DevServer => "pi-manage run (Flask dev server; gunicorn not in the venv)".to_string(),
    };
    let pid = pi.pid();
    let endpoint = pi.endpoint();
    let url = |path: &str| format!("{endpoint}{path}");
    let (auth, init, check) = (url("/auth"), url("/token/init"), url("/validate/check"));
    let admin = agent(Duration::from_secs(60));
    let (_, v) = request(
        &admin,
        &auth,
        None,
        &format!("username={ADMIN}&password={ADMIN_PASSWORD}"),
    )?;
    let jwt = v
        .pointer("/result/value/token")
        .and_then(Value::as_str)
        .ok_or_else(|| peer("privacyIDEA", format!("/auth gave no token: {v}")))?
        .to_string();
    // One token per request: a TOTP code is accepted once per step.
    let conns = opts.concurrency.max(1);
    // The first `warm` tokens warm the workers up (untimed).
    let warm = 2 * conns;
    let n = warm + if opts.quick { 24 } else { 240 };
    let key = secret(Algorithm::Sha1);
    let mut totps = Vec::with_capacity(n);
    for i in 0..n {
        let mut k = key.clone();
        k[0] = (i % 256) as u8;
        k[1] = (i / 256) as u8;
        let form = format!(
            "type=totp&serial=BENCH{i:05}&otpkey={}&genkey=0&otplen=6&hashlib=sha1&timeStep=30",
            hex::encode(&k)
        );
        let (status, v) = request(&admin, &init, Some(&jwt), &form)?;
        if status != 200 || v.pointer("/result/status") != Some(&Value::Bool(true)) {
            return Err(peer("privacyIDEA", format!("/token/init: {status} {v}")));
        }
        totps.push(Totp::new(Algorithm::Sha1, &k, 6, 30, 0).map_err(|e| setup("totp", e))?);
    }
    let code_now = |t: &Totp| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        t.code_for_step(now / 30).to_string()
    };
    for (i, t) in totps.iter().enumerate().take(warm) {
        let form = format!("serial=BENCH{i:05}&pass={}", code_now(t));
        request(&admin, &check, None, &form)?;
    }
    let next = AtomicU64::new(warm as u64);
    let deadline = Instant::now() + Duration::from_secs(if opts.quick { 20 } else { 60 });
    let start = Instant::now();
    let cpu0 = cpu_seconds(Some(pid));
    let out: Vec<(Vec<Duration>, u64)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..conns)
            .map(|_| {
                let (next, totps, code_now, check) = (&next, &totps, &code_now, &check);
                s.spawn(move || {
                    let agent = agent(Duration::from_secs(60));
                    let mut lat = Vec::new();
                    let mut errors = 0u64;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        if i >= totps.len() || Instant::now() > deadline {
                            break;
                        }
                        let code = code_now(&totps[i]);
                        let form = format!("serial=BENCH{i:05}&pass={code}");
                        let t = Instant::now();
                        let r = request(&agent, check, None, &form);
                        lat.push(t.elapsed());
                        match r {
                            Ok((200, v))
                                if v.pointer("/result/value") == Some(&Value::Bool(true)) => {}
                            _ => errors += 1,
                        }
                    }
                    (lat, errors)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let wall = start.elapsed();
    let cpu = match (cpu0, cpu_seconds(Some(pid))) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    drop(pi);
    let total = out.iter().map(|(l, _)| l.len()).sum::<usize>().max(1);
    let mut lat = Vec::new();
    let mut errors = 0;
    for (l, e) in out {
        lat.extend(l);
        errors += e;
    }
    if lat.is_empty() {
        return Err(peer("privacyIDEA", "no request completed"));
    }
    Ok(HttpResult {
        rate: lat.len() as f64 / wall.as_secs_f64(),
        lat,
        errors,
        users: n - warm,
        rounds: 1,
        server,
        cpu_ms: cpu.map(|c| c * 1e3 / total as f64),
        db_cpu_ms: None,
        db: None,
    })
}
