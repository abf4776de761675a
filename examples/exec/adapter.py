#!/usr/bin/env python3
"""fobsim's reference exec adapter (protocol 1, standard library only).

It puts tiny-mfa (examples/exec/tiny_engine.py, an HTTP service) behind the
JSON-lines protocol of docs/adapter-protocol.md:

    fobsim run --engine "exec:python3 examples/exec/adapter.py" --allow-na

fobsim writes one message per line on our stdin; we answer each with one
line on stdout: {"id": ID, "outcome": "ok" | "rejected" | "error",
"detail": ...}. stdout carries nothing else: logs go to stderr.

The engine: started here (any free port, its own stdout read by us) unless
--url names a running one. Its clock follows set_time through its test
clock (POST /test/clock) or, with --faketime-file, through libfaketime:
the file gets the scenario's time as an absolute timestamp, which
libfaketime keeps frozen until the next set_time.
"""
import argparse, datetime, http.client, json, os, subprocess, sys, time, urllib.parse

PROTOCOL = 1
ENGINE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny_engine.py")
# What tiny-mfa can express; fobsim reports the other scenarios as n/a.
CAPABILITIES = ["enable-two-codes", "resync", "deactivate", "list-devices",
                "console-sign-in", "session-mfa", "observe-lockout"]
LIBFAKETIME = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
               "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1"]


class EngineDown(Exception):
    """The engine cannot be reached: an `error` answer (never a verdict)."""


class Adapter:
    def __init__(self, args):
        self.args, self.proc, self.conn = args, None, None
        self.url = args.url or self.start_engine()

    def start_engine(self):
        env = dict(os.environ)
        cmd = [sys.executable, ENGINE, "--port", "0"]
        if self.args.faketime_file:
            lib = os.environ.get("FOBSIM_LIBFAKETIME") or next((p for p in LIBFAKETIME if os.path.isfile(p)), None)
            if lib is None:
                raise EngineDown("libfaketime.so.1 not found: apt-get install faketime")
            self.write_time(None)
            env.update(LD_PRELOAD=lib, FAKETIME_TIMESTAMP_FILE=self.args.faketime_file, TZ="UTC",
                       FAKETIME_NO_CACHE="1", FAKETIME_DONT_FAKE_MONOTONIC="1")
        else:
            cmd.append("--test-clock")
        # The engine's stdout must not reach ours (the protocol channel): we read its URL from it.
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if "http://" not in line:
            raise EngineDown(f"tiny-mfa did not start (it said {line!r})")
        return line[line.index("http://"):].strip()

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=5)

    def http(self, method, path, body=None):
        """(status, JSON body) from the engine, on one keep-alive connection."""
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    u = urllib.parse.urlparse(self.url)
                    self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
                data = json.dumps(body).encode() if body is not None else None
                self.conn.request(method, path, data, {"Content-Type": "application/json"})
                r = self.conn.getresponse()
                return r.status, json.loads(r.read() or b"{}")
            except (OSError, http.client.HTTPException) as e:
                self.conn = None
                if attempt == 2:
                    raise EngineDown(f"{self.url}{path}: {e}") from e

    def wait_healthy(self, seconds=30):
        until = time.monotonic() + seconds
        while True:
            try:
                if self.http("GET", "/health")[0] == 200:
                    return
            except EngineDown:
                if time.monotonic() > until:
                    raise
            time.sleep(0.1)

    def write_time(self, unix_ms):
        """libfaketime: the engine's clock stands at unix_ms (an absolute time
        is frozen; "+0" is the real clock). Replaced by a rename: never half a line."""
        if unix_ms is None:
            text = "+0\n"
        else:
            t = datetime.datetime.fromtimestamp(unix_ms // 1000, datetime.timezone.utc)
            text = t.strftime("%Y-%m-%d %H:%M:%S") + f".{unix_ms % 1000:03d}\n"
        tmp = self.args.faketime_file + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.args.faketime_file)

    def engine_answer(self, method, path, body=None, data=lambda b: None):
        """An engine call as (outcome, detail): 2xx is ok, an engine error is rejected."""
        status, b = self.http(method, path, body)
        if status == 200:
            return "ok", data(b)
        if status >= 500 or "code" not in b:
            raise EngineDown(f"{path}: HTTP {status} {b}")
        return "rejected", {"code": b["code"], "status": status, "kind": b.get("kind"), "message": b["message"]}

    def handle(self, m):
        op = m["op"]
        if op == "hello":
            if m.get("protocol") != PROTOCOL:
                return "error", f"this adapter speaks protocol {PROTOCOL}"
            self.wait_healthy()
            return "ok", {"protocol": PROTOCOL, "engine": "tiny-mfa", "capabilities": CAPABILITIES}
        if op == "set_time":
            if self.args.faketime_file:
                self.write_time(m["unix_ms"])
                return "ok", None
            return self.engine_answer("POST", "/test/clock", {"unix_ms": m["unix_ms"]})
        if op == "reset":
            if m["settings"]:  # we do not declare "settings": fobsim never sends any
                key = sorted(m["settings"])[0]
                return "rejected", {"setting": key, "message": "tiny-mfa has no settings"}
            tokens = [{k: s[k] for k in ("serial", "secret_hex", "algorithm", "digits", "period")}
                      for s in m["seeds"]]
            body = {"root_password": m["account"]["root_password"],
                    "users": {u["name"]: u["password"] for u in m["users"]}, "tokens": tokens}
            status, b = self.http("POST", "/admin/reset", body)
            return ("ok", None) if status == 200 else ("error", f"reset refused: HTTP {status} {b}")
        pair = lambda: {"user": m["who"], "serial": m["serial"], "code1": m["code1"], "code2": m["code2"]}
        if op == "enable" and m["channel"] == "console":
            return self.engine_answer("POST", "/mfa/enable", pair())
        if op == "resync":
            return self.engine_answer("POST", "/mfa/resync", pair())
        if op == "deactivate":
            return self.engine_answer("POST", "/mfa/deactivate", {"user": m["who"], "serial": m["serial"]})
        if op == "list_devices":
            q = urllib.parse.urlencode({"user": m["who"]})
            return self.engine_answer("GET", f"/mfa/devices?{q}", data=lambda b: {"devices": b["devices"]})
        if op == "sign_in":
            body = {"user": m["who"], "password": m["password"], "code": m["code"]}
            return self.engine_answer("POST", "/login", body)
        if op == "session":
            return self.engine_answer("POST", "/session", {"user": m["who"], "serial": m["serial"], "code": m["code"]})
        if op == "device_state":
            q = urllib.parse.urlencode({"serial": m["serial"]})
            return self.engine_answer("GET", f"/mfa/state?{q}", data=lambda b: b)
        return "error", f"operation {op!r} is not one this adapter declared"


def main():
    p = argparse.ArgumentParser(description="fobsim exec adapter for tiny-mfa")
    p.add_argument("--url", help="a running tiny-mfa (default: start one)")
    p.add_argument("--faketime-file", help="move the engine's clock with libfaketime through this file")
    args = p.parse_args()
    adapter = None
    try:
        for line in sys.stdin:  # ends when fobsim closes our stdin: then we stop too
            if not line.strip():
                continue
            m = json.loads(line)
            try:
                adapter = adapter or Adapter(args)
                outcome, detail = adapter.handle(m)
            except EngineDown as e:
                outcome, detail = "error", str(e)
            except (KeyError, TypeError, ValueError) as e:
                outcome, detail = "error", f"bad message or answer: {e!r}"
            print(json.dumps({"id": m.get("id"), "outcome": outcome, "detail": detail}), flush=True)
    finally:
        if adapter:
            adapter.stop()


if __name__ == "__main__":
    main()
