//! Our AWS Query server (`fobsim serve`'s `GetSessionToken` with MFA) over
//! loopback HTTP: the server on 2 tokio threads in this process, the load
//! from `concurrency` threads, each with its own keep-alive connection.
//! Requests are signed before the clock starts.

use std::time::{Duration, Instant};

use fobsim_aws::Service;
use fobsim_aws::query::encode_form;
use fobsim_aws::sigv4::{Credentials, RequestParts, sign};
use fobsim_core::Timestamp;
use fobsim_engine::api::server;
use fobsim_engine::{Engine, testing};

use super::{HttpResult, agent};
use crate::measure::cpu_seconds;
use crate::{BenchError, Options, setup};

const SEED_POLICY: &str = include_str!("../../../../fixtures/policies/manage-own-mfa.json");

const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// A signed Query request (`POST /`): its headers besides `Host` and its
/// form body.
struct Signed {
    headers: Vec<(String, String)>,
    body: String,
}

/// Sign `params` for `service` as the AWS SDKs do: `host` and
/// `content-type` signed, `x-amz-date` and `authorization` added.
fn signed(
    host: &str,
    service: Service,
    params: &[(&str, &str)],
    creds: &Credentials,
    now: Timestamp,
) -> Signed {
    let mut all = vec![("Version", service.version())];
    all.extend_from_slice(params);
    let body = encode_form(&all);
    let mut headers = vec![
        ("host".to_string(), host.to_string()),
        ("content-type".to_string(), CONTENT_TYPE.to_string()),
    ];
    let parts = RequestParts {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: body.as_bytes(),
    };
    let extra = sign(&parts, creds, "us-east-1", service.signing_name(), now);
    // ureq sends `Host` from the URL.
    headers.remove(0);
    headers.extend(extra);
    Signed { headers, body }
}

/// Send each request on one keep-alive connection (one agent); latencies
/// and non-200 answers.
fn connection(url: &str, reqs: &[Signed]) -> Result<(Vec<Duration>, u64), BenchError> {
    let agent = agent(Duration::from_secs(30));
    let mut lat = Vec::with_capacity(reqs.len());
    let mut errors = 0;
    for req in reqs {
        let t = Instant::now();
        let mut r = agent.post(url);
        for (name, value) in &req.headers {
            r = r.header(name, value);
        }
        let mut answer = r
            .send(req.body.as_bytes())
            .map_err(|e| setup("HTTP client", e))?;
        // Read to the end: the connection goes back to the agent only then.
        answer
            .body_mut()
            .read_to_vec()
            .map_err(|e| setup("HTTP client", e))?;
        lat.push(t.elapsed());
        if answer.status() != 200 {
            errors += 1;
        }
    }
    Ok((lat, errors))
}

pub(super) fn bench(opts: &Options, engine: Engine) -> Result<HttpResult, BenchError> {
    let users = if opts.quick { 200 } else { 2000 };
    let rounds = if opts.quick { 2 } else { 5 };
    let conns = opts.concurrency.max(1);
    let testing::EnrolledService {
        service,
        clock,
        mut fobs,
        after_enable: t2,
    } = testing::enrolled_service(engine, users, SEED_POLICY).map_err(|e| setup("users", e))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(server::serve(listener, service, async {
        let _ = stop_rx.await;
    }));
    let host = addr.to_string();
    let url = format!("http://{host}/");
    let mut lat = Vec::with_capacity(users * rounds);
    let mut errors = 0;
    let mut busy = Duration::ZERO;
    let mut cpu = Some(0.0);
    let result = (|| {
        for round in 0..rounds {
            let now = t2.add_millis(30_000 * (round as i64 + 1));
            clock.set(now);
            let mut per_conn: Vec<Vec<Signed>> = (0..conns).map(|_| Vec::new()).collect();
            for (i, fob) in fobs.iter_mut().enumerate() {
                let code = testing::press(fob, now);
                let serial = fob.serial().to_string();
                per_conn[i % conns].push(signed(
                    &host,
                    Service::Sts,
                    &[
                        ("Action", "GetSessionToken"),
                        ("SerialNumber", &serial),
                        ("TokenCode", &code),
                    ],
                    &testing::enrolled_credentials(i),
                    now,
                ));
            }
            let start = Instant::now();
            let cpu0 = cpu_seconds(None);
            let out: Vec<Result<(Vec<Duration>, u64), BenchError>> = std::thread::scope(|s| {
                let hs: Vec<_> = per_conn
                    .iter()
                    .map(|reqs| {
                        let url = &url;
                        s.spawn(move || connection(url, reqs))
                    })
                    .collect();
                hs.into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(setup("client", "thread panicked")))
                    })
                    .collect()
            });
            busy += start.elapsed();
            cpu = match (cpu, cpu0, cpu_seconds(None)) {
                (Some(c), Some(a), Some(b)) => Some(c + (b - a)),
                _ => None,
            };
            for o in out {
                let (l, e) = o?;
                lat.extend(l);
                errors += e;
            }
        }
        Ok::<(), BenchError>(())
    })();
    let _ = stop_tx.send(());
    rt.shutdown_timeout(Duration::from_secs(2));
    result?;
    Ok(HttpResult {
        rate: lat.len() as f64 / busy.as_secs_f64(),
        lat,
        errors,
        users,
        rounds,
        server: "fobsim".into(),
        cpu_ms: cpu.map(|c| c * 1e3 / (users * rounds).max(1) as f64),
    })
}
