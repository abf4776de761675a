//! The SQLite store: persistence across reopen, secrets encrypted at rest,
//! key handling, schema migrations, batches.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test stops loudly

mod common;

use common::{at, step};
use fobsim_core::{Channel, Principal};
use fobsim_engine::store::OffsetWindow;
use fobsim_engine::{
    Engine, ErrorKind, KeySource, Profile, SqliteOptions, SqliteStore, StoreError, testing,
};

#[test]
fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e.db");
    let now = at(0);
    let c = step(now);
    let alice = Principal::user("alice");
    let serial;
    let code;
    {
        let (engine, fobs) =
            testing::sqlite_with_fobs(&db, 2, testing::T0, Profile::for_tests()).unwrap();
        let r = fobs[0].seed_record();
        let t = fobsim_core::Totp::new(r.algorithm, r.secret.expose(), 6, 30, 0).unwrap();
        code = move |s: u64| t.code_for_step(s).to_string();
        serial = fobs[0].serial().as_str().to_string();
        engine
            .enable_mfa_device(
                now,
                Channel::Console,
                &alice,
                &serial,
                &code(c - 1),
                &code(c),
            )
            .unwrap();
        engine
            .verify_session_mfa(now, &alice, &serial, &code(c + 1))
            .unwrap();
    }
    let engine = Engine::sqlite_with_options(
        &db,
        &KeySource::Bytes(testing::TEST_KEY),
        SqliteOptions {
            synchronous_full: true,
            ..SqliteOptions::default()
        },
        Profile::for_tests(),
    )
    .unwrap();
    let st = engine.token_state(&serial).unwrap();
    assert_eq!(
        (st.assigned_to, st.last_step, st.run_start),
        (Some(alice.clone()), Some(c + 1), Some(c - 1))
    );
    // 10 s into step c: code c says [-10 s, 80 s), code c + 1 [20 s, 110 s).
    assert_eq!(
        st.offsets,
        OffsetWindow {
            lo_ms: 20_000,
            hi_ms: 80_000,
            anchored_at: now
        }
    );
    assert_eq!(engine.list_mfa_devices(&alice).unwrap()[0].enable_date, now);
    // Replay barrier persisted; passwords persisted.
    assert!(
        engine
            .verify_session_mfa(now, &alice, &serial, &code(c + 1))
            .is_err()
    );
    engine
        .verify_session_mfa(now, &alice, &serial, &code(c + 2))
        .unwrap();
    // Three steps in one instant would be a fob racing ahead: the next
    // code comes a step later.
    engine
        .console_sign_in(at(1), &alice, testing::USER_PASSWORD, Some(&code(c + 3)))
        .unwrap();
}

#[test]
fn secrets_and_passwords_are_not_stored_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e.db");
    let (engine, fobs) =
        testing::sqlite_with_fobs(&db, 3, testing::T0, Profile::for_tests()).unwrap();
    drop(engine);
    let mut bytes = std::fs::read(&db).unwrap();
    if let Ok(wal) = std::fs::read(dir.path().join("e.db-wal")) {
        bytes.extend_from_slice(&wal);
    }
    let find = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    for f in &fobs {
        let r = f.seed_record();
        assert!(
            !find(r.secret.expose()),
            "raw secret of {} on disk",
            r.serial
        );
        assert!(!find(r.secret.to_hex().as_bytes()));
        assert!(!find(r.secret.to_base32().as_bytes()));
        assert!(find(r.serial.as_str().as_bytes()), "serials are plain");
    }
    assert!(!find(testing::USER_PASSWORD.as_bytes()));
    assert!(!find(testing::ROOT_PASSWORD.as_bytes()));
    assert!(find(b"$argon2id$"));
}

#[test]
fn a_wrong_key_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e.db");
    drop(testing::sqlite_with_fobs(&db, 1, testing::T0, Profile::for_tests()).unwrap());
    let e = Engine::sqlite(&db, &KeySource::Bytes([7; 32]), Profile::for_tests()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ServiceFailure);
    assert!(e.message.contains("wrong key"), "{}", e.message);
    let e =
        SqliteStore::open(&db, &KeySource::Bytes([7; 32]), SqliteOptions::default()).unwrap_err();
    assert!(matches!(e, StoreError::Decrypt { .. }));
}

#[test]
fn key_file_is_generated_on_first_use_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("engine.key");
    let db = dir.path().join("e.db");
    let src = KeySource::File(key.clone());
    {
        let engine = Engine::sqlite(&db, &src, Profile::for_tests()).unwrap();
        testing::create_account(&engine).unwrap();
        testing::import(&engine, &[testing::gaht_fob(0, testing::T0)]).unwrap();
    }
    let text = std::fs::read_to_string(&key).unwrap();
    assert_eq!(text.trim().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let engine = Engine::sqlite(&db, &src, Profile::for_tests()).unwrap();
    assert!(
        engine
            .token_state(testing::gaht_fob(0, testing::T0).serial().as_str())
            .is_some()
    );
    // Debug output names the file, never the key.
    assert!(!format!("{src:?}").contains(text.trim()));
    assert_eq!(
        format!("{:?}", KeySource::Bytes([1; 32])),
        "Bytes(<redacted>)"
    );
    // A corrupt key file is a clear error.
    std::fs::write(&key, "not hex").unwrap();
    let e = Engine::sqlite(&db, &src, Profile::for_tests()).unwrap_err();
    assert!(e.message.contains("not hex"), "{}", e.message);
}

#[test]
fn key_from_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e.db");
    let var = "FOBSIM_ENGINE_TEST_KEY_UNSET_VARIABLE";
    let e = Engine::sqlite(&db, &KeySource::Env(var.into()), Profile::for_tests()).unwrap_err();
    assert!(e.message.contains(var), "{}", e.message);
    // EnvOrFile falls back to the file when the variable is unset.
    let src = KeySource::EnvOrFile {
        var: var.into(),
        path: dir.path().join("k"),
    };
    Engine::sqlite(&db, &src, Profile::for_tests()).unwrap();
    assert!(dir.path().join("k").exists());
}

#[test]
fn schema_is_versioned_and_newer_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e.db");
    drop(
        SqliteStore::open(
            &db,
            &KeySource::Bytes(testing::TEST_KEY),
            SqliteOptions::default(),
        )
        .unwrap(),
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 2);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(conn);
    let e = SqliteStore::open(
        &db,
        &KeySource::Bytes(testing::TEST_KEY),
        SqliteOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(
        e,
        StoreError::SchemaTooNew {
            found: 99,
            supported: 2
        }
    ));
    // Reopening a current file is a no-op migration.
    let db2 = dir.path().join("f.db");
    for _ in 0..2 {
        let s = SqliteStore::open(
            &db2,
            &KeySource::Bytes(testing::TEST_KEY),
            SqliteOptions {
                synchronous_full: true,
                ..SqliteOptions::default()
            },
        )
        .unwrap();
        assert_eq!(s.integrity_check().unwrap(), "ok");
    }
}

#[test]
fn a_tampered_secret_is_a_service_failure_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e.db");
    let (engine, fobs) =
        testing::sqlite_with_fobs(&db, 1, testing::T0, Profile::for_tests()).unwrap();
    drop(engine);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute("UPDATE tokens SET secret = x'00112233'", [])
        .unwrap();
    drop(conn);
    let engine = Engine::sqlite(
        &db,
        &KeySource::Bytes(testing::TEST_KEY),
        Profile::for_tests(),
    )
    .unwrap();
    let serial = fobs[0].serial().as_str();
    let e = engine
        .enable_mfa_device(
            at(0),
            Channel::Console,
            &Principal::user("alice"),
            serial,
            "123456",
            "654321",
        )
        .unwrap_err();
    assert_eq!((e.kind, e.http_status()), (ErrorKind::ServiceFailure, 500));
    assert!(e.message.contains(serial));
}

#[test]
fn batch_commits_together_and_rolls_back_on_panic() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e.db");
    let (engine, _fobs) =
        testing::sqlite_with_fobs(&db, 0, testing::T0, Profile::for_tests()).unwrap();
    let n = engine
        .batch(|e| {
            (0..50)
                .filter(|i| e.create_user(&format!("b{i}"), "pw").is_ok())
                .count()
        })
        .unwrap();
    assert_eq!(n, 50);
    // Nested batches run inside the outer one.
    engine
        .batch(|e| e.batch(|e| e.create_user("nested", "pw")).unwrap())
        .unwrap()
        .unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        engine
            .batch(|e| {
                e.create_user("doomed", "pw").unwrap();
                panic!("mid-batch failure");
            })
            .unwrap();
    }));
    assert!(r.is_err());
    drop(engine);
    let engine = Engine::sqlite(
        &db,
        &KeySource::Bytes(testing::TEST_KEY),
        Profile::for_tests(),
    )
    .unwrap();
    assert!(engine.get_user(&Principal::user("b49")).is_ok());
    assert!(engine.get_user(&Principal::user("nested")).is_ok());
    assert_eq!(
        engine
            .get_user(&Principal::user("doomed"))
            .unwrap_err()
            .kind,
        ErrorKind::NoSuchEntity
    );
    // The store still works after the rolled-back batch.
    engine.create_user("after", "pw").unwrap();
    assert!(engine.store().user("after").unwrap().is_some());
}

/// Two engines (two connections, as two processes would have) on one file:
/// the sign-in state cache of one never hides the other's writes.
#[test]
fn two_engines_on_one_file_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e.db");
    let (a, fobs) = testing::sqlite_with_fobs(&db, 1, testing::T0, Profile::for_tests()).unwrap();
    let b = Engine::sqlite(
        &db,
        &KeySource::Bytes(testing::TEST_KEY),
        Profile::for_tests(),
    )
    .unwrap();
    let r = fobs[0].seed_record();
    let t = fobsim_core::Totp::new(r.algorithm, r.secret.expose(), 6, 30, 0).unwrap();
    let code = |s: u64| t.code_for_step(s).to_string();
    let serial = fobs[0].serial().as_str();
    let alice = Principal::user("alice");
    let now = at(0);
    let c = step(now);
    a.enable_mfa_device(
        now,
        Channel::Console,
        &alice,
        serial,
        &code(c - 1),
        &code(c),
    )
    .unwrap();
    // A caches the state with a sign-in.
    a.verify_session_mfa(now, &alice, serial, &code(c + 1))
        .unwrap();
    // B uses a code: A must not accept it again (replay across connections).
    b.verify_session_mfa(now, &alice, serial, &code(c + 2))
        .unwrap();
    assert!(
        a.verify_session_mfa(now, &alice, serial, &code(c + 2))
            .is_err()
    );
    // B resyncs to a device 7 steps ahead: A follows.
    let t1 = at(100);
    let c1 = step(t1);
    b.resync_mfa_device(t1, &alice, serial, &code(c1 + 6), &code(c1 + 7))
        .unwrap();
    a.verify_session_mfa(t1, &alice, serial, &code(c1 + 8))
        .unwrap();
    // B deactivates: A refuses the device.
    b.deactivate_mfa_device(t1, &alice, serial).unwrap();
    let e = a
        .verify_session_mfa(t1, &alice, serial, &code(c1 + 9))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AccessDenied);
    // B re-enables for bob; A sees bob's device, not alice's.
    let bob = Principal::user("bob");
    b.enable_mfa_device(
        t1,
        Channel::Console,
        &bob,
        serial,
        &code(c1 + 9),
        &code(c1 + 10),
    )
    .unwrap();
    assert!(
        a.verify_session_mfa(t1, &alice, serial, &code(c1 + 11))
            .is_err()
    );
    a.verify_session_mfa(t1, &bob, serial, &code(c1 + 11))
        .unwrap();
    // B's lock applies to A.
    let p = Profile {
        lockout_threshold: 2,
        ..Profile::for_tests()
    };
    let b2 = Engine::sqlite(&db, &KeySource::Bytes(testing::TEST_KEY), p).unwrap();
    assert!(
        b2.verify_session_mfa(t1, &bob, serial, &code(c1 + 500))
            .is_err()
    );
    assert!(
        b2.verify_session_mfa(t1, &bob, serial, &code(c1 + 500))
            .is_err()
    );
    let e = a
        .verify_session_mfa(t1, &bob, serial, &code(c1 + 12))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::DeviceLocked);
}

/// The schema of version 1 (learned offset as a point, in steps), as it
/// shipped: the fixture of the migration test.
const SCHEMA_V1: &str = "CREATE TABLE meta (k TEXT PRIMARY KEY, v BLOB NOT NULL);
     CREATE TABLE account (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        account_id TEXT NOT NULL,
        alias TEXT NOT NULL,
        root_email TEXT NOT NULL,
        root_phone TEXT NOT NULL,
        root_password_hash TEXT NOT NULL);
     CREATE TABLE users (
        name TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        password_hash TEXT NOT NULL) WITHOUT ROWID;
     CREATE TABLE tokens (
        serial TEXT PRIMARY KEY,
        algorithm TEXT NOT NULL,
        digits INTEGER NOT NULL,
        period INTEGER NOT NULL,
        t0 INTEGER NOT NULL,
        secret BLOB NOT NULL,
        owner TEXT,
        enable_date INTEGER,
        drift_offset INTEGER NOT NULL DEFAULT 0,
        last_step INTEGER,
        failures INTEGER NOT NULL DEFAULT 0,
        locked_until INTEGER,
        CHECK ((owner IS NULL) = (enable_date IS NULL))) WITHOUT ROWID;
     CREATE INDEX tokens_owner ON tokens(owner) WHERE owner IS NOT NULL;
     PRAGMA user_version = 1;";

/// A database written by version 1 (a point offset of 3 steps, a replay
/// barrier) opens under version 2: the offset becomes the interval of
/// offsets within one step of it, anchored at the enable date; the barrier
/// stays; the token keeps working for the fob it learned.
#[test]
fn a_version_1_database_migrates() {
    let dir = tempfile::tempdir().unwrap();
    // A current file provides the sealed secret and the key check.
    let current = dir.path().join("current.db");
    let (engine, fobs) =
        testing::sqlite_with_fobs(&current, 2, testing::T0, Profile::for_tests()).unwrap();
    drop(engine);
    let old = dir.path().join("v1.db");
    let now = at(0);
    let c = step(now);
    let serial = fobs[0].serial().as_str();
    {
        let conn = rusqlite::Connection::open(&old).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute("ATTACH DATABASE ?1 AS cur", [current.to_str().unwrap()])
            .unwrap();
        conn.execute_batch(
            "INSERT INTO meta SELECT * FROM cur.meta;
             INSERT INTO account SELECT * FROM cur.account;
             INSERT INTO users SELECT * FROM cur.users;
             INSERT INTO tokens (serial, algorithm, digits, period, t0, secret)
                SELECT serial, algorithm, digits, period, t0, secret FROM cur.tokens;
             DETACH DATABASE cur;",
        )
        .unwrap();
        let n = conn
            .execute(
                "UPDATE tokens SET owner = 'alice', enable_date = ?1, drift_offset = 3, \
                 last_step = ?2, failures = 2 WHERE serial = ?3",
                rusqlite::params![
                    i64::try_from(now.as_millis()).unwrap(),
                    i64::try_from(c + 3).unwrap(),
                    serial
                ],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    let engine = Engine::sqlite(
        &old,
        &KeySource::Bytes(testing::TEST_KEY),
        Profile::for_tests(),
    )
    .unwrap();
    let st = engine.token_state(serial).unwrap();
    assert_eq!(st.assigned_to, Some(Principal::user("alice")));
    assert_eq!(
        st.offsets,
        OffsetWindow {
            lo_ms: 60_000,
            hi_ms: 120_000,
            anchored_at: now
        }
    );
    assert_eq!(
        (st.last_step, st.run_start, st.run_base, st.quarantine),
        (Some(c + 3), Some(c + 3), Some(c + 3), None)
    );
    assert_eq!(st.consecutive_failures, 2);
    let other = engine.token_state(fobs[1].serial().as_str()).unwrap();
    assert_eq!(
        (other.offsets, other.last_step, other.run_start),
        (OffsetWindow::default(), None, None)
    );
    // The fob runs 3 steps ahead: its next code signs in, the barrier holds.
    let r = fobs[0].seed_record();
    let t = fobsim_core::Totp::new(r.algorithm, r.secret.expose(), 6, 30, 0).unwrap();
    let code = |s: u64| t.code_for_step(s).to_string();
    let alice = Principal::user("alice");
    let later = at(1);
    assert!(
        engine
            .verify_session_mfa(later, &alice, serial, &code(c + 3))
            .is_err()
    );
    engine
        .verify_session_mfa(later, &alice, serial, &code(c + 4))
        .unwrap();
    drop(engine);
    let conn = rusqlite::Connection::open(&old).unwrap();
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 2);
    let cols: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('tokens')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!cols.iter().any(|c| c == "drift_offset"), "{cols:?}");
    assert_eq!(
        conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
            .unwrap(),
        "ok"
    );
}

#[cfg(unix)]
fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn a_key_file_others_may_read_is_refused_as_ssh_refuses_a_key() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("engine.key");
    let db = dir.path().join("e.db");
    let src = KeySource::File(key.clone());
    drop(Engine::sqlite(&db, &src, Profile::for_tests()).unwrap());
    for bad in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(bad)).unwrap();
        let e = Engine::sqlite(&db, &src, Profile::for_tests()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ServiceFailure);
        assert!(
            e.message
                .contains(&format!("permissions {bad:04o} are too open"))
                && e.message.contains("chmod 600"),
            "{}",
            e.message
        );
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    drop(Engine::sqlite(&db, &src, Profile::for_tests()).unwrap());
}

#[cfg(unix)]
#[test]
fn the_database_and_its_wal_and_shm_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e.db");
    let wal = dir.path().join("e.db-wal");
    let shm = dir.path().join("e.db-shm");
    {
        let (engine, _) =
            testing::sqlite_with_fobs(&db, 1, testing::T0, Profile::for_tests()).unwrap();
        testing::create_account(&engine).ok();
        assert!(wal.exists() && shm.exists());
        assert_eq!((mode(&db), mode(&wal), mode(&shm)), (0o600, 0o600, 0o600));
    }
    // Made by an older build (or by hand) for everyone to read: tightened.
    for p in [&db, &wal, &shm] {
        if p.exists() {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let engine = Engine::sqlite(
        &db,
        &KeySource::Bytes(testing::TEST_KEY),
        Profile::for_tests(),
    )
    .unwrap();
    for p in [&db, &wal, &shm] {
        if p.exists() {
            assert_eq!(mode(p), 0o600, "{}", p.display());
        }
    }
    drop(engine);
}
