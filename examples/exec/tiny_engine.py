#!/usr/bin/env python3
"""tiny-mfa: a small hardware-MFA verification service, written for fobsim's
docs (docs/adapter-protocol.md). Standard library only. It stands for *your*
engine: fobsim judges it through examples/exec/adapter.py.

Rules (the AWS IAM hardware-MFA page): enable and resync take two
consecutive codes found within +-1000 steps and learn the device's offset;
sign-in and session checks accept +-1 step around (now + offset), never a
step at or below the last accepted one (replay), and relearn the offset;
5 failures in a row lock the device for 15 minutes; one device per user,
one user per device.

HTTP API (JSON bodies; errors are {"code", "kind", "message"} with the
HTTP status): POST /admin/reset, POST /mfa/enable, POST /mfa/resync,
POST /mfa/deactivate, GET /mfa/devices?user=, GET /mfa/state?serial=,
POST /login, POST /session, GET /health. With --test-clock, POST
/test/clock {"unix_ms": N} sets the clock (an injectable clock for tests);
otherwise the clock is the system's (libfaketime can move it).
"""
import argparse, datetime, hashlib, hmac, json, struct, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

AUTH_WINDOW, SYNC_WINDOW, MAX_DEVICES, LOCK_AFTER, LOCK_MS = 1, 1000, 1, 5, 15 * 60 * 1000
HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}


class Refused(Exception):
    def __init__(self, status, code, message, kind=None):
        super().__init__(message)
        self.status, self.body = status, {"code": code, "kind": kind, "message": message}


def no_device(serial):
    return Refused(404, "NoSuchEntity", f"MFA Device with serial number {serial} does not exist.")


MFA_FAILED = "MultiFactorAuthentication failed with invalid MFA one time pass code."
NOT_ASSOCIATED = ("MultiFactorAuthentication failed, unable to validate MFA code. Please verify "
                  "your MFA serial number is valid and associated with this user.")


def rfc3339(ms):
    t = datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


class Engine:
    def __init__(self):
        self.test_now_ms, self.passwords, self.tokens = None, {}, {}

    def now_ms(self):
        return self.test_now_ms if self.test_now_ms is not None else int(time.time() * 1000)

    def reset(self, b):
        self.passwords = dict(b["users"], root=b["root_password"])
        self.tokens = {}
        for t in b["tokens"]:
            self.tokens[t["serial"]] = dict(key=bytes.fromhex(t["secret_hex"]), hash=HASHES[t["algorithm"]],
                                            digits=t["digits"], period=t["period"], owner=None, offset=0,
                                            last=None, failures=0, locked_until=None)

    @staticmethod
    def code(tok, step):  # RFC 4226 dynamic truncation
        mac = hmac.new(tok["key"], struct.pack(">Q", step), tok["hash"]).digest()
        o = mac[-1] & 15
        return str((int.from_bytes(mac[o:o + 4], "big") & 0x7FFFFFFF) % 10 ** tok["digits"]).zfill(tok["digits"])

    def step(self, tok):
        return self.now_ms() // 1000 // tok["period"]

    @staticmethod
    def check_code(code, field, digits=None):
        ok = code.isascii() and code.isdigit() and (len(code) == digits if digits else 6 <= len(code) <= 8)
        if not ok:
            want = digits or "6 to 8"
            raise Refused(400, "ValidationError", f"Value {json.dumps(code[:16], ensure_ascii=False)} at '{field}' failed to "
                                                  f"satisfy constraint: must be exactly {want} ASCII digits")

    def pair(self, b):  # the checked input of enable and resync, in AWS's order
        self.check_code(b["code1"], "authenticationCode1")
        self.check_code(b["code2"], "authenticationCode2")
        self.check_user(b["user"])
        tok = self.tokens.get(b["serial"])
        if tok is None:
            raise no_device(b["serial"])
        self.check_code(b["code1"], "authenticationCode1", tok["digits"])
        self.check_code(b["code2"], "authenticationCode2", tok["digits"])
        return tok

    def check_user(self, user):
        if user not in self.passwords:
            raise Refused(404, "NoSuchEntity", f"The user with name {user} cannot be found.")

    def sync(self, tok, b):  # two consecutive codes, nearest to now first; learn the offset
        cur, low = self.step(tok), (tok["last"] + 1 if tok["last"] is not None else 0)
        for s in (s for d in range(SYNC_WINDOW + 1) for s in ((cur - d, cur + d) if d else (cur,))):
            if s >= low and self.code(tok, s) == b["code1"] and self.code(tok, s + 1) == b["code2"]:
                tok.update(offset=s + 1 - cur, last=s + 1, failures=0, locked_until=None)
                return
        raise Refused(403, "InvalidAuthenticationCode", "Authentication code for device is not valid.")

    def enable(self, b):
        tok = self.pair(b)
        if tok["owner"] is not None:
            raise Refused(409, "EntityAlreadyExists", "MFA Device is already in use.")
        if len(self.devices(b["user"])) >= MAX_DEVICES:
            raise Refused(409, "LimitExceeded", f"Cannot exceed quota for MFADevicesPerUser: {MAX_DEVICES}")
        self.sync(tok, b)
        tok["owner"] = b["user"]

    def resync(self, b):
        tok = self.pair(b)
        if tok["owner"] != b["user"]:
            raise no_device(b["serial"])
        self.sync(tok, b)

    def deactivate(self, b):
        self.check_user(b["user"])
        tok = self.tokens.get(b["serial"])
        if tok is None or tok["owner"] != b["user"]:
            raise no_device(b["serial"])
        tok.update(owner=None, offset=0, failures=0, locked_until=None)

    def devices(self, user):
        return sorted(s for s, t in self.tokens.items() if t["owner"] == user)

    def session(self, b):
        self.check_code(b["code"], "tokenCode")
        tok = self.tokens.get(b["serial"])
        if tok is None:
            raise Refused(403, "AccessDenied", NOT_ASSOCIATED)
        self.check_code(b["code"], "tokenCode", tok["digits"])
        if tok["owner"] != b["user"]:
            raise Refused(403, "AccessDenied", NOT_ASSOCIATED)
        now = self.now_ms()
        if tok["locked_until"] is not None and tok["locked_until"] > now:
            raise Refused(403, "AccessDenied", "The MFA device is locked after too many failed attempts "
                                               f"until {rfc3339(tok['locked_until'])}.", "DeviceLocked")
        cur = self.step(tok)
        expected = cur + tok["offset"]
        fresh = [s for d in range(AUTH_WINDOW + 1) for s in ((expected + d, expected - d) if d else (expected,))
                 if s >= 0 and (tok["last"] is None or s > tok["last"])]
        hit = next((s for s in fresh if self.code(tok, s) == b["code"]), None)
        if hit is None:
            tok["failures"] += 1
            if tok["failures"] >= LOCK_AFTER:
                tok.update(failures=0, locked_until=now + LOCK_MS)
            raise Refused(403, "AccessDenied", MFA_FAILED)
        # The replay barrier: the highest step in the window showing the same code.
        same = [s for s in range(hit, expected + AUTH_WINDOW + 1) if self.code(tok, s) == b["code"]]
        tok.update(last=max(same), offset=hit - cur, failures=0)

    def login(self, b):
        if self.passwords.get(b["user"]) != b["password"]:
            raise Refused(403, "AccessDenied", "Your authentication information is incorrect. Please try again.")
        devices = self.devices(b["user"])
        if devices and b.get("code") is None:
            raise Refused(403, "AccessDenied", "An MFA code is required: this user has an MFA device.")
        last = None
        for serial in devices:
            try:
                return self.session(dict(b, serial=serial))
            except Refused as e:
                if e.body["code"] == "ValidationError":
                    raise
                last = e
        if last:
            raise last

    def list_devices(self, user):
        self.check_user(user)
        return {"devices": self.devices(user)}

    def state(self, serial):
        tok = self.tokens.get(serial)
        if tok is None:
            raise no_device(serial)
        locked = tok["locked_until"] is not None and self.now_ms() < tok["locked_until"]
        return {"locked": locked, "assigned_to": tok["owner"]}


def serve(port, test_clock):
    engine = Engine()
    posts = {"/admin/reset": engine.reset, "/mfa/enable": engine.enable, "/mfa/resync": engine.resync,
             "/mfa/deactivate": engine.deactivate, "/login": engine.login, "/session": engine.session}
    if test_clock:
        posts["/test/clock"] = lambda b: setattr(engine, "test_now_ms", b["unix_ms"])
    gets = {"/health": lambda q: {"ok": True}, "/mfa/devices": lambda q: engine.list_devices(q["user"][0]),
            "/mfa/state": lambda q: engine.state(q["serial"][0])}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: one connection per adapter
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def route(self, table, arg):
            url = urlparse(self.path)
            if url.path not in table:
                return self.answer(404, {"code": "NotFound", "kind": None, "message": url.path})
            try:
                self.answer(200, table[url.path](arg(url)) or {})
            except Refused as e:
                self.answer(e.status, e.body)
            except (KeyError, TypeError, ValueError) as e:
                self.answer(400, {"code": "ValidationError", "kind": None, "message": f"bad request: {e!r}"})

        def do_GET(self):
            self.route(gets, lambda url: parse_qs(url.query))

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.route(posts, lambda url: json.loads(body or b"{}"))

        def log_message(self, *args):  # quiet: stdout/stderr stay clean
            pass

    server = HTTPServer(("127.0.0.1", port), Handler)
    print(f"tiny-mfa listening on http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0, help="0: any free port (printed on stdout)")
    p.add_argument("--test-clock", action="store_true", help="enable POST /test/clock")
    a = p.parse_args()
    try:
        serve(a.port, a.test_clock)
    except KeyboardInterrupt:
        sys.exit(0)
