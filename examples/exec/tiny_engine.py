#!/usr/bin/env python3
"""tiny-mfa: a small hardware-MFA verification service, written for fobsim's
docs (docs/adapter-protocol.md). Standard library only. It stands for *your*
engine: fobsim judges it through examples/exec/adapter.py.

Rules (the AWS IAM hardware-MFA page, with the sync rule of
docs/engine-rules.md): enable and resync take two consecutive codes found
within +-1000 steps and pin the device's clock offset to an interval (the
second code's step, typed up to 60 s after it was shown); sign-in and session
checks accept a code whose step fits that interval (widened by 20 ppm drift,
at most one step), never a step at or below the last accepted one (replay),
and narrow the interval; a replay of the code just accepted is refused but
not counted; 5 counted failures in a row lock the device for 15 minutes; a
replay barrier left far ahead by a server clock that stepped back is healed
by a resync (the run it covered is quarantined); one device per user, one
user per device.

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

SYNC_WINDOW, MAX_DEVICES, LOCK_AFTER, LOCK_MS = 1000, 1, 5, 15 * 60 * 1000
MAX_DELAY_MS, DRIFT_PPM, WIDEN_CAP_STEPS = 60_000, 20, 1
HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}


class Refused(Exception):
    def __init__(self, status, code, message, kind=None):
        super().__init__(message)
        self.status, self.body = status, {"code": code, "kind": kind, "message": message}


def no_device(serial):
    return Refused(404, "NoSuchEntity", f"MFA Device with serial number {serial} does not exist.")


def invalid_pair():
    return Refused(403, "InvalidAuthenticationCode", "Authentication code for device is not valid.")


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
        return self.test_now_ms if self.test_now_ms is not None else time.time_ns() // 1_000_000  # not time.time(): a float loses the ms

    def reset(self, b):
        self.passwords = dict(b["users"], root=b["root_password"])
        self.tokens = {}
        for t in b["tokens"]:
            self.tokens[t["serial"]] = dict(key=bytes.fromhex(t["secret_hex"]), hash=HASHES[t["algorithm"]],
                                            digits=t["digits"], period=t["period"], owner=None, lo=0, hi=0,
                                            anchored=0, last=None, run_start=None, run_base=None,
                                            quarantine=None, failures=0, locked_until=None)

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

    @staticmethod
    def quarantined(tok, s):
        q = tok["quarantine"]
        return q is not None and q[0] <= s <= q[1]

    def sync(self, tok, b):  # two consecutive codes, nearest to now first; pin the offsets
        cur, last, now = self.step(tok), tok["last"], self.now_ms()
        ahead = last is not None and last > cur + SYNC_WINDOW  # a server clock stepped back
        if ahead and tok["run_start"] is None:
            raise invalid_pair()
        if ahead:  # heal: a pair below the current run and above its base; quarantine the run
            floor = tok["run_base"] + 1 if tok["run_base"] is not None else 0
            below = tok["run_start"]
            allowed = lambda s: floor <= s and s + 1 < below
        else:
            floor = last + 1 if last is not None else 0
            allowed = lambda s: floor <= s
        s1 = next((s for d in range(SYNC_WINDOW + 1) for s in ((cur - d, cur + d) if d else (cur,))
                   if s >= 0 and allowed(s) and not self.quarantined(tok, s) and not self.quarantined(tok, s + 1)
                   and self.code(tok, s) == b["code1"] and self.code(tok, s + 1) == b["code2"]), None)
        if s1 is None:
            raise invalid_pair()
        q = tok["quarantine"]
        if ahead:
            run = (tok["run_start"], last)
            q = run if q is None else (min(q[0], run[0]), max(q[1], run[1]))
            run_start, run_base = s1, tok["run_base"]
        elif last is None or s1 > last + SYNC_WINDOW or tok["run_start"] is None:
            run_start, run_base = s1, last
        else:
            run_start, run_base = tok["run_start"], tok["run_base"]
        lo = self.start_ms(tok, s1 + 1) - now  # the second code's evidence
        tok.update(lo=lo, hi=lo + tok["period"] * 1000 + MAX_DELAY_MS, anchored=now, last=s1 + 1,
                   run_start=run_start, run_base=run_base, quarantine=q if q and q[1] > s1 + 1 else None,
                   failures=0, locked_until=None)

    @staticmethod
    def start_ms(tok, step):
        return step * tok["period"] * 1000

    def sign_in(self, tok, code):  # True if accepted (the state learns), False if refused
        now, period_ms = self.now_ms(), tok["period"] * 1000
        g = min(max(now - tok["anchored"], 0) * DRIFT_PPM // 1_000_000, WIDEN_CAP_STEPS * period_ms)
        lo, hi = tok["lo"] - g, tok["hi"] + g  # the learned offsets, widened by the drift since
        # The steps whose evidence [start(s) - now, start(s) + P + D - now) meets [lo, hi).
        top = (now + hi - 1) // period_ms
        bottom = max((now + lo - period_ms - MAX_DELAY_MS) // period_ms + 1, 0)
        if tok["last"] is not None:
            bottom = max(bottom, tok["last"] + 1)
        barrier = used = taught = None
        for s in range(bottom, top + 1):
            if self.code(tok, s) != code:
                continue
            barrier = s  # every step showing the code goes under the barrier
            if self.quarantined(tok, s):
                continue
            used = s if used is None else used
            e_lo = max(self.start_ms(tok, s) - now, lo)
            e_hi = min(self.start_ms(tok, s) - now + period_ms + MAX_DELAY_MS, hi)
            taught = (e_lo, e_hi) if taught is None else (min(taught[0], e_lo), max(taught[1], e_hi))
        if used is None:
            return False
        last, q = tok["last"], tok["quarantine"]
        if last is None or used > last + SYNC_WINDOW:
            tok.update(run_start=used, run_base=last)
        tok.update(lo=taught[0], hi=taught[1], anchored=now, last=barrier, failures=0,
                   quarantine=q if q and q[1] > barrier else None)
        return True

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
        tok.update(owner=None, failures=0, locked_until=None)  # the barrier, run and quarantine stay

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
        if self.sign_in(tok, b["code"]):
            return
        if tok["last"] is not None and self.code(tok, tok["last"]) == b["code"]:
            raise Refused(403, "AccessDenied", MFA_FAILED)  # a replay of the code just accepted: not counted
        tok["failures"] += 1
        if tok["failures"] >= LOCK_AFTER:
            tok.update(failures=0, locked_until=now + LOCK_MS)
        raise Refused(403, "AccessDenied", MFA_FAILED)

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
