#!/usr/bin/env python3
"""oathtool (OATH Toolkit) as an external fobsim exec adapter (protocol 1,
standard library only): the `oathtool` engine of `fobsim matrix`, re-done
outside fobsim. Its matrix column is the same as the built-in Rust
adapter's (harness/engines/src/oathtool.rs + shim.rs):

    fobsim matrix --engines "oathtool,exec:python3 examples/oathtool/adapter.py"

oathtool is a stateless validator: `oathtool --totp -d D -s Ps -w 1 -N @T
KEYHEX CODE` exits 0 when CODE is within +-1 step of T. It has no users, no
device registry, no two-code enable, so this adapter keeps the account
layer (as fobsim's shim does) and nothing more:

- enable (console): provision the user with the serial's vendor seed, then
  oathtool checks code 1, then code 2, at the enable time; both accepted:
  ok, else InvalidAuthenticationCode and the user's earlier token stays.
- sign-in: a wrong password is refused here (oathtool has no passwords);
  a user without a token signs in with the password; else oathtool checks
  the code against the user's token.
- session: oathtool checks the code against the key of the serial named.
- import: a time-based seed is kept for a later enable; an event-based one
  is refused (ValidationError, kind UnsupportedToken), as provisioning
  would refuse it.

set_time only records the time: oathtool is told it with -N @T.
"""
import json, shutil, subprocess, sys

PROTOCOL = 1
CAPABILITIES = ["enable-two-codes", "console-sign-in", "session-mfa", "import", "error-kinds"]
MODES = {"sha1": "--totp", "sha256": "--totp=SHA256", "sha512": "--totp=SHA512"}
DENIED = "MultiFactorAuthentication failed with invalid MFA one time pass code."


def refuse(code, status, kind, message):
    return "rejected", {"code": code, "status": status, "kind": kind, "message": message}


def unsupported():
    """A token oathtool cannot validate (event-based): what provisioning refuses."""
    return refuse("ValidationError", 400, "UnsupportedToken",
                  "the oathtool adapter validates time-based tokens only")


class Oathtool:
    def __init__(self, program):
        self.program = program
        self.now_ms, self.seeds, self.passwords, self.enabled = 0, {}, {}, {}

    def check(self, seed, code):
        """Whether oathtool accepts `code` for `seed` at the current time."""
        if seed["type"] != "totp":
            raise RuntimeError("event-based tokens are not validated here")
        out = subprocess.run([self.program, MODES[seed["algorithm"]], "-d", str(seed["digits"]),
                              "-s", f"{seed['period']}s", "-w", "1", "-N", f"@{self.now_ms // 1000}",
                              "--", seed["secret_hex"], code],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if out.returncode != 0:
            return False
        if not out.stdout.strip().isdigit():
            raise RuntimeError(f"unexpected output on success: {out.stdout.strip()[-80:]!r}")
        return True

    def enable(self, user, serial, code1, code2):
        seed = self.seeds.get(serial)
        if seed is None:
            return refuse("NoSuchEntity", 404, None, f"MFA Device with serial number {serial} does not exist.")
        if seed["type"] != "totp":
            return unsupported()
        if self.check(seed, code1) and self.check(seed, code2):
            self.enabled[user] = seed
            return "ok", None
        return refuse("InvalidAuthenticationCode", 403, None, "Authentication code for device is not valid.")

    def sign_in(self, user, password_ok, code):
        if not password_ok:
            return refuse("AccessDenied", 403, "WrongPassword",
                          "password refused (checked by the adapter: the engine has no passwords)")
        seed = self.enabled.get(user)
        if seed is None:
            return "ok", None
        return ("ok", None) if self.check(seed, code or "") else refuse("AccessDenied", 403, None, DENIED)

    def session(self, serial, code):
        seed = self.seeds.get(serial)
        if seed is None or not self.check(seed, code):
            return refuse("AccessDenied", 403, None, DENIED)
        return "ok", None

    def handle(self, m):
        op = m["op"]
        if op == "hello":
            return "ok", {"protocol": PROTOCOL, "engine": "oathtool", "capabilities": CAPABILITIES}
        if op == "set_time":
            self.now_ms = m["unix_ms"]
            return "ok", None
        if op == "reset":
            self.seeds = {s["serial"]: s for s in m["seeds"]}
            self.passwords = {u["name"]: u["password"] for u in m["users"]}
            self.enabled = {}
            return "ok", None
        if op == "enable" and m["channel"] == "console":
            return self.enable(m["who"], m["serial"], m["code1"], m["code2"])
        if op == "sign_in":
            return self.sign_in(m["who"], m["password_ok"], m["code"])
        if op == "session":
            return self.session(m["serial"], m["code"])
        if op == "import":
            seed = m["seed"]
            if seed["type"] != "totp":
                return unsupported()
            self.seeds[seed["serial"]] = seed
            return "ok", None
        return "error", f"capability for {op!r} not declared"


def main():
    program = shutil.which("oathtool")
    engine = Oathtool(program)
    for line in sys.stdin:
        if not line.strip():
            continue
        m = json.loads(line)
        if program is None:
            outcome, detail = "error", "program `oathtool` not found on PATH; install: apt-get install oathtool"
        else:
            try:
                outcome, detail = engine.handle(m)
            except (OSError, RuntimeError, KeyError) as e:
                outcome, detail = "error", f"oathtool: {e}"
        print(json.dumps({"id": m.get("id"), "outcome": outcome, "detail": detail}), flush=True)


if __name__ == "__main__":
    main()
