"""The fob panel's control API from a client nobody here wrote: Python's
requests presses fobs and reads their codes, pyotp checks each code
against the seed `fobsim emulate --export-seeds` wrote — and against
Python's own wall clock, since the emulator runs on the system clock.

Usage: check.py URL SEEDS.CSV   (run by tests/control_api_python.rs)
"""

import base64
import csv
import sys
import time
from datetime import datetime

import pyotp
import requests

url, seeds_path = sys.argv[1].rstrip("/"), sys.argv[2]
checks = 0
answers = []  # every body the API sent, to look for secrets in


def check(cond, what):
    global checks
    if not cond:
        sys.exit("FAILED: " + what)
    checks += 1


def call(method, path, **kw):
    r = requests.request(method, url + path, timeout=10, **kw)
    answers.append(r.text)
    return r


def t(iso):
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


with open(seeds_path) as f:
    rows = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
seeds = {r[0]: bytes.fromhex(r[1]) for r in rows}
check(len(seeds) == 3, "three seeds exported")
totps = {s: pyotp.TOTP(base64.b32encode(k).decode()) for s, k in seeds.items()}

fobs = call("GET", "/api/fobs").json()["fobs"]
check([f["serial"] for f in fobs] == sorted(seeds), "the fleet is the exported one")
check(all("code" not in f for f in fobs), "displays blank before any press")

# Press every fob: its code is the seed's code at its device time, and at
# Python's own clock (no drift, system clock).
for serial, totp in totps.items():
    r = call("POST", f"/api/fobs/{serial}/press", json={})
    check(r.status_code == 200, f"press {serial}: {r.status_code} {r.text}")
    shown = r.json()
    check(shown["serial"] == serial, "press answers its serial")
    code = shown["code"]
    check(isinstance(code, str) and len(code) == 6, f"a 6-digit code: {shown}")
    check(totp.verify(code, for_time=t(shown["device_time"])), f"{serial}: {code} is the seed's code")
    check(totp.verify(code, valid_window=1), f"{serial}: {code} verifies on Python's clock")
    check(t(shown["shown_until"]) > t(shown["now"]), "shown until later")
    others = [o for s, o in totps.items() if s != serial]
    check(not any(o.verify(code, for_time=t(shown["device_time"])) for o in others),
          "another fob's seed does not give the code")
    d = call("GET", f"/api/fobs/{serial}/display").json()
    check(d["code"] in (code, None) or totp.verify(d["code"], valid_window=1), "the display shows it")

# A fob 90 s (3 steps) fast shows a code of its own clock: the seed's code
# at its device time, not at Python's.
serial = sorted(seeds)[1]
r = call("POST", f"/api/fobs/{serial}/drift", json={"offset": "+90s"})
check(r.status_code == 200 and r.json()["fob"]["offset_ms"] == 90000, f"drift: {r.text}")
shown = call("POST", f"/api/fobs/{serial}/press", json={}).json()
dev, now = t(shown["device_time"]), t(shown["now"])
check(abs((dev - now).total_seconds() - 90) < 1, "device time is 90 s ahead")
check(totps[serial].verify(shown["code"], for_time=dev), "the drifted code is the seed's at device time")
check(shown["code"] == totps[serial].at(dev), "exactly")
check(shown["code"] != totps[serial].at(now), "and not the code of true time")

# The battery: dead = blank; a fresh one restarts the RTC at 2000-01-01.
serial = sorted(seeds)[2]
r = call("POST", f"/api/fobs/{serial}/battery/pull", json={})
check(r.json()["fob"]["battery"] == "dead", "battery pulled")
shown = call("POST", f"/api/fobs/{serial}/press", json={}).json()
check(shown["code"] is None and shown["device_time"] is None, "a dead fob shows nothing")
call("POST", f"/api/fobs/{serial}/battery/swap", json={})
shown = call("POST", f"/api/fobs/{serial}/press", json={}).json()
check(shown["device_time"].startswith("2000-01-01T00:00:0"), f"RTC reset: {shown}")
check(shown["code"] == totps[serial].at(t(shown["device_time"])), "code of the reset clock")

# Refusals: JSON errors with their status; the system clock stays put.
r = call("POST", "/api/fobs/GAHT99999999/press", json={})
check(r.status_code == 404 and r.json()["error"]["code"] == "no_such_fob", f"404: {r.text}")
r = call("POST", "/api/clock/advance", json={"by": 30})
check(r.status_code == 400 and r.json()["error"]["field"] == "by", f"400 names the field: {r.text}")
r = call("POST", "/api/clock/advance", data="by=30s")
check(r.status_code == 415, f"a form post is refused: {r.status_code}")
r = call("POST", "/api/clock/advance", json={"by": "30s"})
check(r.status_code == 409 and r.json()["error"]["code"] == "system_clock", f"409: {r.text}")
r = call("POST", "/api/fobs/GAHT00000001/press", json={}, headers={"Origin": "http://evil.example"})
check(r.status_code == 403, f"another origin is refused: {r.status_code}")

# No answer held a secret.
page = call("GET", "/").text
check("fob panel" in page, "the panel page")
text = "\n".join(answers).lower()
for serial, key in seeds.items():
    check(key.hex() not in text, f"{serial}: hex seed never sent")
    check(base64.b32encode(key).decode().lower()[:16] not in text, f"{serial}: base32 seed never sent")

print(f"ok {checks} checks")
