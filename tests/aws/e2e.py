#!/usr/bin/env python3
"""End-to-end checks of `fobsim serve` with real AWS clients (boto3 and the
AWS CLI), codes read over serial from a running `fobsim emulate`.

Both processes run on manual clocks that this script moves in lockstep
through their control sockets (`fobsim clock --control SOCKET advance 30s`).
Run through tests/aws/run.sh (it makes the venv and builds fobsim).
Prints one line per check and `N passed, N failed`; exits 1 on any failure.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import boto3
import botocore.config
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
POLICY = os.path.join(REPO, "fixtures", "policies", "manage-own-mfa.json")
STEP = 30

KEYS = {
    "root": ("AKIAE2EROOT000000001", "e2e+root/Secret/Key/00000000000000000001"),
    "alice": ("AKIAE2EALICE00000001", "e2e+alice/Secret/Key/0000000000000000001"),
    "bob": ("AKIAE2EBOB0000000001", "e2e+bob/Secret/Key/000000000000000000001"),
}

RESULTS = {"passed": 0, "failed": 0}


def check(name, cond, detail=""):
    if cond:
        RESULTS["passed"] += 1
        print(f"ok   {name}")
    else:
        RESULTS["failed"] += 1
        print(f"FAIL {name} {detail}")
    sys.stdout.flush()
    return cond


class World:
    """The emulator, the server, their clocks, and clients."""

    def __init__(self, fobsim, tmp):
        self.fobsim = fobsim
        self.tmp = tmp
        self.emu_ctl = os.path.join(tmp, "emu.ctl")
        self.srv_ctl = os.path.join(tmp, "srv.ctl")
        self.db = os.path.join(tmp, "fobsim.db")
        self.seeds = os.path.join(tmp, "seeds.csv")
        self.links = os.path.join(tmp, "fobs")
        # Start a few minutes before real time (clients sign with the system
        # clock; the server accepts --max-skew 30m), 5 s into a step.
        self.t = (int(time.time()) // STEP) * STEP - 600 + 5
        self.emu = None
        self.srv = None
        self.endpoint = None

    # -- processes -------------------------------------------------------
    def start_emulator(self):
        self.emu = subprocess.Popen(
            [self.fobsim, "emulate", "--count", "4", "--clock", "manual", "--control", self.emu_ctl,
             "--start", f"@{self.t}", "--export-seeds", self.seeds, "--link-dir", self.links, "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.emu.stdout.readline()
        info = json.loads(line)
        self.serials = [f["serial"] for f in info["fobs"]]

    def write_bootstrap(self):
        users = ""
        for u in ("alice", "bob"):
            kid, sec = KEYS[u]
            users += f"""
[[users]]
name = "{u}"
password = "{u}-Password-1"
policies = ["{POLICY}"]
access_keys = [{{ id = "{kid}", secret = "{sec}" }}]
"""
        kid, sec = KEYS["root"]
        self.bootstrap = os.path.join(self.tmp, "account.toml")
        with open(self.bootstrap, "w") as f:
            f.write(f"""seeds = ["{self.seeds}"]
[account]
id = "210987654321"
alias = "fobsim-e2e"
root_email = "root@example.com"
root_phone = "+1 555 0100"
root_password = "root-Password-1"
access_keys = [{{ id = "{kid}", secret = "{sec}" }}]
{users}
[profile]
[profile.password_cost]
m_cost_kib = 8
t_cost = 1
p_cost = 1
""")

    def start_server(self):
        self.srv = subprocess.Popen(
            [self.fobsim, "serve", "--listen", "127.0.0.1:0", "--db", self.db, "--bootstrap", self.bootstrap,
             "--clock", "manual", "--control", self.srv_ctl, "--start", f"@{self.t}", "--max-skew", "30m"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.srv.stdout.readline()
        if not line:
            raise RuntimeError("fobsim serve did not start: " + self.srv.stderr.read())
        info = json.loads(line)
        self.endpoint = info["endpoint"]
        return info

    def kill9_server(self):
        self.srv.send_signal(signal.SIGKILL)
        self.srv.wait()

    def stop(self):
        for p in (self.srv, self.emu):
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()

    # -- time and codes --------------------------------------------------
    def advance(self, secs):
        self.t += secs
        for ctl in (self.emu_ctl, self.srv_ctl):
            subprocess.run([self.fobsim, "clock", "--control", ctl, "set", f"@{self.t}"],
                           check=True, stdout=subprocess.DEVNULL)

    def code(self, i):
        """Press fob i over its serial port and read the display."""
        out = subprocess.run([self.fobsim, "device", "press", "--json", os.path.join(self.links, self.serials[i])],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)["display"]

    def two_codes(self, i):
        c1 = self.code(i)
        self.advance(STEP)
        return c1, self.code(i)

    # -- clients ---------------------------------------------------------
    def boto(self, service, who=None, creds=None, validate=True):
        if creds is None:
            kid, sec = KEYS[who]
            creds = {"aws_access_key_id": kid, "aws_secret_access_key": sec}
        cfg = botocore.config.Config(retries={"total_max_attempts": 1}, parameter_validation=validate)
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1", config=cfg, **creds)

    def cli(self, who, *args, session=None):
        env = dict(os.environ)
        if session:
            env["AWS_ACCESS_KEY_ID"] = session["AccessKeyId"]
            env["AWS_SECRET_ACCESS_KEY"] = session["SecretAccessKey"]
            env["AWS_SESSION_TOKEN"] = session["SessionToken"]
        else:
            env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = KEYS[who]
            env.pop("AWS_SESSION_TOKEN", None)
        env["AWS_DEFAULT_REGION"] = "us-east-1"
        env["AWS_CONFIG_FILE"] = os.path.join(self.tmp, "no-aws-config")
        env["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(self.tmp, "no-aws-credentials")
        env["AWS_MAX_ATTEMPTS"] = "1"
        aws = os.path.join(os.path.dirname(sys.executable), "aws")
        p = subprocess.run([aws, "--endpoint-url", self.endpoint, "--output", "json", *args],
                           capture_output=True, text=True, env=env)
        out = json.loads(p.stdout) if p.returncode == 0 and p.stdout.strip() else None
        return p.returncode, out, p.stderr


def err_code(e):
    return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]


def expect_error(name, fn, code, status):
    try:
        fn()
    except ClientError as e:
        got = err_code(e)
        return check(name, got == (code, status), f"got {got}: {e}")
    return check(name, False, "no error")


def session_creds(r):
    c = r["Credentials"]
    return {"aws_access_key_id": c["AccessKeyId"], "aws_secret_access_key": c["SecretAccessKey"],
            "aws_session_token": c["SessionToken"]}


def boto3_flows(w):
    s = w.serials
    alice_iam = w.boto("iam", "alice")
    alice_sts = w.boto("sts", "alice")
    # Enable with two consecutive codes.
    c1, c2 = w.two_codes(0)
    r = alice_iam.enable_mfa_device(UserName="alice", SerialNumber=s[0], AuthenticationCode1=c1, AuthenticationCode2=c2)
    check("boto3: enable with two consecutive codes", r["ResponseMetadata"]["HTTPStatusCode"] == 200)
    devs = alice_iam.list_mfa_devices(UserName="alice")
    d = devs["MFADevices"]
    check("boto3: ListMFADevices shows serial and EnableDate",
          len(d) == 1 and d[0]["SerialNumber"] == s[0] and d[0]["EnableDate"].year >= 2026 and devs["IsTruncated"] is False,
          str(devs))
    # GetSessionToken with MFA; the same code again is a replay.
    w.advance(STEP)
    c = w.code(0)
    mfa = alice_sts.get_session_token(SerialNumber=s[0], TokenCode=c, DurationSeconds=3600)
    check("boto3: GetSessionToken with MFA", mfa["Credentials"]["AccessKeyId"].startswith("ASIA"))
    expect_error("boto3: replayed code -> AccessDenied 403",
                 lambda: alice_sts.get_session_token(SerialNumber=s[0], TokenCode=c), "AccessDenied", 403)
    # A second device for the same user.
    c1, c2 = w.two_codes(2)
    expect_error("boto3: a second device -> LimitExceeded 409",
                 lambda: alice_iam.enable_mfa_device(UserName="alice", SerialNumber=s[2], AuthenticationCode1=c1,
                                                     AuthenticationCode2=c2), "LimitExceeded", 409)
    # Another user enabling alice's device.
    bob_iam = w.boto("iam", "bob")
    expect_error("boto3: device in use -> EntityAlreadyExists 409",
                 lambda: bob_iam.enable_mfa_device(UserName="bob", SerialNumber=s[0], AuthenticationCode1=c1,
                                                   AuthenticationCode2=c2), "EntityAlreadyExists", 409)
    # The policy: deactivation needs an MFA session.
    expect_error("boto3: DeactivateMFADevice without MFA session -> AccessDenied",
                 lambda: alice_iam.deactivate_mfa_device(UserName="alice", SerialNumber=s[0]), "AccessDenied", 403)
    plain = alice_sts.get_session_token()
    expect_error("boto3: DeactivateMFADevice with a non-MFA session -> AccessDenied",
                 lambda: w.boto("iam", creds=session_creds(plain)).deactivate_mfa_device(UserName="alice", SerialNumber=s[0]),
                 "AccessDenied", 403)
    expect_error("boto3: another user's device -> AccessDenied (policy)",
                 lambda: alice_iam.list_mfa_devices(UserName="bob"), "AccessDenied", 403)
    mfa_iam = w.boto("iam", creds=session_creds(mfa))
    r = mfa_iam.deactivate_mfa_device(UserName="alice", SerialNumber=s[0])
    check("boto3: DeactivateMFADevice with an MFA session", r["ResponseMetadata"]["HTTPStatusCode"] == 200)
    check("boto3: no device after deactivation", alice_iam.list_mfa_devices()["MFADevices"] == [])
    # Late enable -> out of sync -> resync.
    c1, c2 = w.two_codes(0)
    w.advance(240)
    alice_iam.enable_mfa_device(UserName="alice", SerialNumber=s[0], AuthenticationCode1=c1, AuthenticationCode2=c2)
    check("boto3: late enable succeeds", len(alice_iam.list_mfa_devices()["MFADevices"]) == 1)
    w.advance(STEP)
    c = w.code(0)
    expect_error("boto3: after a late enable GetSessionToken -> AccessDenied",
                 lambda: alice_sts.get_session_token(SerialNumber=s[0], TokenCode=c), "AccessDenied", 403)
    c1, c2 = w.two_codes(0)
    r = alice_iam.resync_mfa_device(UserName="alice", SerialNumber=s[0], AuthenticationCode1=c1, AuthenticationCode2=c2)
    check("boto3: ResyncMFADevice", r["ResponseMetadata"]["HTTPStatusCode"] == 200)
    w.advance(STEP)
    c = w.code(0)
    r = alice_sts.get_session_token(SerialNumber=s[0], TokenCode=c)
    check("boto3: GetSessionToken after resync", r["Credentials"]["SessionToken"] != "")
    # Root: hardware MFA for root cannot be enabled through the API.
    root_iam = w.boto("iam", "root", validate=False)
    c1, c2 = w.two_codes(3)
    expect_error("boto3: root API enable for itself -> AccessDenied",
                 lambda: root_iam.enable_mfa_device(SerialNumber=s[3], AuthenticationCode1=c1, AuthenticationCode2=c2),
                 "AccessDenied", 403)
    ident = w.boto("sts", "bob").get_caller_identity()
    check("boto3: GetCallerIdentity", ident["Arn"] == "arn:aws:iam::210987654321:user/bob", str(ident))
    return r  # alice's last MFA session


def cli_flows(w):
    s = w.serials
    c1, c2 = w.two_codes(1)
    rc, out, err = w.cli("bob", "iam", "enable-mfa-device", "--user-name", "bob", "--serial-number", s[1],
                         "--authentication-code1", c1, "--authentication-code2", c2)
    check("cli: enable-mfa-device with two consecutive codes", rc == 0, err)
    rc, out, err = w.cli("bob", "iam", "list-mfa-devices", "--user-name", "bob")
    check("cli: list-mfa-devices shows serial and EnableDate",
          rc == 0 and out["MFADevices"][0]["SerialNumber"] == s[1] and out["MFADevices"][0]["EnableDate"].startswith("20"),
          f"{out} {err}")
    w.advance(STEP)
    c = w.code(1)
    rc, sess, err = w.cli("bob", "sts", "get-session-token", "--serial-number", s[1], "--token-code", c)
    check("cli: get-session-token with MFA", rc == 0 and sess["Credentials"]["AccessKeyId"].startswith("ASIA"), err)
    rc, _, err = w.cli("bob", "sts", "get-session-token", "--serial-number", s[1], "--token-code", c)
    check("cli: replayed code -> AccessDenied", rc != 0 and "(AccessDenied)" in err, err)
    c1, c2 = w.two_codes(2)
    rc, _, err = w.cli("bob", "iam", "enable-mfa-device", "--user-name", "bob", "--serial-number", s[2],
                       "--authentication-code1", c1, "--authentication-code2", c2)
    check("cli: a second device -> LimitExceeded", rc != 0 and "(LimitExceeded)" in err, err)
    rc, _, err = w.cli("alice", "iam", "enable-mfa-device", "--user-name", "alice", "--serial-number", s[1],
                       "--authentication-code1", c1, "--authentication-code2", c2)
    check("cli: device in use -> EntityAlreadyExists", rc != 0 and "(EntityAlreadyExists)" in err, err)
    rc, _, err = w.cli("bob", "iam", "deactivate-mfa-device", "--user-name", "bob", "--serial-number", s[1])
    check("cli: deactivate without MFA session -> AccessDenied", rc != 0 and "(AccessDenied)" in err, err)
    rc, _, err = w.cli("bob", "iam", "deactivate-mfa-device", "--user-name", "bob", "--serial-number", s[1],
                       session=sess["Credentials"])
    check("cli: deactivate with an MFA session", rc == 0, err)
    # Late enable, out of sync, resync.
    c1, c2 = w.two_codes(1)
    w.advance(300)
    rc, _, err = w.cli("bob", "iam", "enable-mfa-device", "--user-name", "bob", "--serial-number", s[1],
                       "--authentication-code1", c1, "--authentication-code2", c2)
    check("cli: late enable succeeds", rc == 0, err)
    w.advance(STEP)
    c = w.code(1)
    rc, _, err = w.cli("bob", "sts", "get-session-token", "--serial-number", s[1], "--token-code", c)
    check("cli: after a late enable get-session-token -> AccessDenied", rc != 0 and "(AccessDenied)" in err, err)
    c1, c2 = w.two_codes(1)
    rc, _, err = w.cli("bob", "iam", "resync-mfa-device", "--user-name", "bob", "--serial-number", s[1],
                       "--authentication-code1", c1, "--authentication-code2", c2)
    check("cli: resync-mfa-device", rc == 0, err)
    w.advance(STEP)
    c = w.code(1)
    rc, out, err = w.cli("bob", "sts", "get-session-token", "--serial-number", s[1], "--token-code", c)
    check("cli: get-session-token after resync", rc == 0, err)
    rc, out, err = w.cli("bob", "iam", "get-user")
    check("cli: get-user", rc == 0 and out["User"]["UserName"] == "bob", f"{out} {err}")


def signed_raw(w, body, who="alice", service="iam", content_type="application/x-www-form-urlencoded; charset=utf-8"):
    kid, sec = KEYS[who]
    req = AWSRequest(method="POST", url=w.endpoint + "/", data=body, headers={"Content-Type": content_type})
    SigV4Auth(Credentials(kid, sec), service, "us-east-1").add_auth(req)
    return raw(w, body, dict(req.headers.items()))


def raw(w, body, headers):
    r = urllib.request.Request(w.endpoint + "/", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def aws_error_shape(status, body):
    """(code, message) if body is a well-formed <ErrorResponse>."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
    if root.tag != ns + "ErrorResponse":
        return None
    e = root.find(ns + "Error")
    if e is None or e.find(ns + "Type") is None or root.find(ns + "RequestId") is None:
        return None
    return e.findtext(ns + "Code"), e.findtext(ns + "Message")


def robustness(w):
    alice_iam = w.boto("iam", "alice")
    cases = [
        ("malformed form", b"Action=GetUser&Version=2010-05-08&UserName=%zz", 404, "MalformedQueryString"),
        ("non-UTF-8 form", b"Action=GetUser&Version=2010-05-08&UserName=%ff%fe", 404, "MalformedQueryString"),
        ("unknown action", b"Action=CreateUser&Version=2010-05-08&UserName=x", 400, "InvalidAction"),
        ("wrong version", b"Action=GetUser&Version=2099-01-01", 400, "InvalidAction"),
        ("missing action", b"Version=2010-05-08", 400, "MissingAction"),
        ("missing parameters", b"Action=EnableMFADevice&Version=2010-05-08&UserName=alice", 400, "ValidationError"),
        ("bad code pattern", b"Action=ResyncMFADevice&Version=2010-05-08&UserName=alice&SerialNumber=GAHT00000001"
                             b"&AuthenticationCode1=12a456&AuthenticationCode2=123456", 400, "ValidationError"),
        ("XML-unsafe input", b"Action=GetUser&Version=2010-05-08&UserName=%3C%2FMessage%3E%3Cx%3E%26%22%27%01", 400,
         "ValidationError"),
    ]
    for name, body, status, code in cases:
        st, text = signed_raw(w, body)
        shape = aws_error_shape(st, text)
        check(f"robustness: {name} -> {status} {code}", st == status and shape is not None and shape[0] == code,
              f"{st} {text[:300]}")
    st, text = signed_raw(w, b"Action=GetUser&Version=2010-05-08&UserName=%3C%2FMessage%3E%3Cx%3E")
    shape = aws_error_shape(st, text)
    check("robustness: XML-unsafe value comes back intact in the message",
          shape is not None and "</Message><x>" in shape[1], text[:300])
    big = b"Action=GetUser&Version=2010-05-08&Pad=" + b"a" * (1 << 20)
    st, text = raw(w, big, {"Content-Type": "application/x-www-form-urlencoded"})
    check("robustness: 1 MiB body -> 413 RequestEntityTooLarge",
          st == 413 and (aws_error_shape(st, text) or ("",))[0] == "RequestEntityTooLarge", f"{st} {text[:200]}")
    st, text = raw(w, b"Action=GetUser&Version=2010-05-08", {"Content-Type": "application/x-www-form-urlencoded"})
    check("robustness: unsigned -> 403 MissingAuthenticationToken",
          st == 403 and (aws_error_shape(st, text) or ("",))[0] == "MissingAuthenticationToken", text[:200])
    kid, _ = KEYS["alice"]
    bad = w.boto("iam", creds={"aws_access_key_id": kid, "aws_secret_access_key": "wrong" * 8})
    expect_error("robustness: wrong secret -> SignatureDoesNotMatch", lambda: bad.get_user(), "SignatureDoesNotMatch", 403)
    nokey = w.boto("iam", creds={"aws_access_key_id": "AKIANOSUCHKEY0000001", "aws_secret_access_key": "x" * 40})
    expect_error("robustness: unknown key -> InvalidClientTokenId", lambda: nokey.get_user(), "InvalidClientTokenId", 403)
    # Tampered: sign one body, send another.
    kid, sec = KEYS["alice"]
    req = AWSRequest(method="POST", url=w.endpoint + "/", data=b"Action=GetUser&Version=2010-05-08",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    SigV4Auth(Credentials(kid, sec), "iam", "us-east-1").add_auth(req)
    st, text = raw(w, b"Action=GetUser&Version=2010-05-08&UserName=bob", dict(req.headers.items()))
    check("robustness: tampered body -> SignatureDoesNotMatch",
          st == 403 and (aws_error_shape(st, text) or ("",))[0] == "SignatureDoesNotMatch", text[:200])
    # Garbage on a raw socket, then a half request.
    host, port = w.endpoint[len("http://"):].split(":")
    for junk in (b"\x16\x03\x01\x02\x00 not http\r\n\r\n", b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nshort"):
        with socket.create_connection((host, int(port)), timeout=5) as sk:
            sk.sendall(junk)
            sk.shutdown(socket.SHUT_WR)
            try:
                sk.recv(4096)
            except OSError:
                pass
    r = alice_iam.get_user()
    check("robustness: the server keeps serving", r["User"]["UserName"] == "alice")


def request_time_is_checked_against_the_engine_clock(w):
    alice_iam = w.boto("iam", "alice")
    w.advance(3 * 3600)  # the engine's clock is now hours ahead of the signer's
    try:
        alice_iam.get_user()
        check("sigv4: request time checked against the engine's clock", False, "accepted")
    except ClientError as e:
        code, status = err_code(e)
        check("sigv4: request time checked against the engine's clock",
              (code, status) == ("SignatureDoesNotMatch", 403) and "Signature expired" in e.response["Error"]["Message"],
              str(e))


def crash_and_restart(w, mfa_session):
    """kill -9 during a workload; restart on the same database."""
    s = w.serials
    alice_sts = w.boto("sts", "alice")
    w.advance(STEP)
    c = w.code(0)
    alice_sts.get_session_token(SerialNumber=s[0], TokenCode=c)
    stop = threading.Event()
    counts = {"ok": 0, "err": 0}

    def workload():
        iam = w.boto("iam", "alice")
        root = w.boto("iam", "root")
        while not stop.is_set():
            try:
                iam.list_mfa_devices()
                root.enable_mfa_device(UserName="bob", SerialNumber=s[3], AuthenticationCode1="000000",
                                       AuthenticationCode2="000000")
                counts["ok"] += 1
            except Exception:  # noqa: BLE001 - refusals and the dead server are expected
                counts["err"] += 1

    threads = [threading.Thread(target=workload) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    w.kill9_server()
    stop.set()
    for t in threads:
        t.join()
    check("crash: the workload ran before kill -9", counts["ok"] + counts["err"] > 0, str(counts))
    info = w.start_server()
    check("crash: restart on the same database creates nothing",
          (info["account_created"], info["users_created"], info["tokens_imported"]) == (False, 0, 0), str(info))
    alice_iam = w.boto("iam", "alice")
    alice_sts = w.boto("sts", "alice")
    d = alice_iam.list_mfa_devices()["MFADevices"]
    check("crash: assignment intact after restart", [x["SerialNumber"] for x in d] == [s[0]], str(d))
    d = w.boto("iam", "bob").list_mfa_devices()["MFADevices"]
    check("crash: bob's device intact after restart", [x["SerialNumber"] for x in d] == [s[1]], str(d))
    expect_error("crash: replay protection intact after restart",
                 lambda: alice_sts.get_session_token(SerialNumber=s[0], TokenCode=c), "AccessDenied", 403)
    w.advance(STEP)
    c = w.code(0)
    r = alice_sts.get_session_token(SerialNumber=s[0], TokenCode=c)
    check("crash: the next code works after restart", r["Credentials"]["AccessKeyId"].startswith("ASIA"))
    sess = w.boto("iam", creds=session_creds(mfa_session))
    check("crash: an MFA session issued before the crash still works", sess.get_user()["User"]["UserName"] == "alice")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fobsim", required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fobsim-aws-") as tmp:
        w = World(os.path.abspath(args.fobsim), tmp)
        try:
            w.start_emulator()
            w.write_bootstrap()
            w.start_server()
            check("setup: emulator and server running", w.endpoint is not None)
            mfa_session = None
            for name, fn in [("boto3", boto3_flows), ("cli", cli_flows), ("robustness", robustness)]:
                try:
                    if name == "boto3":
                        mfa_session = fn(w)
                    else:
                        fn(w)
                except Exception:  # noqa: BLE001
                    check(f"{name}: flow completed", False, traceback.format_exc())
            try:
                crash_and_restart(w, mfa_session)
            except Exception:  # noqa: BLE001
                check("crash: flow completed", False, traceback.format_exc())
            try:
                request_time_is_checked_against_the_engine_clock(w)
            except Exception:  # noqa: BLE001
                check("sigv4: flow completed", False, traceback.format_exc())
        except Exception:  # noqa: BLE001
            check("setup", False, traceback.format_exc())
        finally:
            w.stop()
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] or RESULTS["passed"] == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
