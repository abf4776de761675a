#!/usr/bin/env python3
"""Adapters that break, for harness/engines/tests/exec_adapters.rs.

usage: bad_adapter.py MODE PIDFILE

Every instance appends its PID and the PID of a child it leaves running in
its process group (`sleep 600`) to PIDFILE, so the test can check that
fobsim left nothing behind. It declares enable-two-codes, console-sign-in
and resync, answers hello/set_time/reset properly, and then:

  silent        never answers the first operation (sleeps)
  exits         exits with status 3 on the first operation
  garbage       prints a line that is not a protocol answer
  liar          answers `error` to resync (a capability it declares);
                `ok` to everything else
  hello-garbage prints garbage instead of answering hello
  slow          asks for a 60 s timeout and sleeps on the first operation
                (for the interrupt test of tests/exec_cli.rs)
"""
import json, subprocess, sys, time

mode, pidfile = sys.argv[1], sys.argv[2]
child = subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
with open(pidfile, "a") as f:
    f.write(f"{__import__('os').getpid()} {child.pid}\n")


def say(m, outcome, detail=None):
    print(json.dumps({"id": m["id"], "outcome": outcome, "detail": detail}), flush=True)


for line in sys.stdin:
    m = json.loads(line)
    op = m["op"]
    if op == "hello":
        if mode == "hello-garbage":
            print("Welcome to the engine!", flush=True)
            continue
        timeout = 60000 if mode == "slow" else 400
        say(m, "ok", {"protocol": 1, "engine": f"bad-{mode}", "timeout_ms": timeout,
                      "capabilities": ["enable-two-codes", "console-sign-in", "resync"]})
    elif op in ("set_time", "reset"):
        say(m, "ok")
    elif mode in ("silent", "slow"):
        time.sleep(600)
    elif mode == "exits":
        sys.exit(3)
    elif mode == "garbage":
        print("Traceback (most recent call last): KeyError 'who'", flush=True)
    elif mode == "liar" and op == "resync":
        say(m, "error", "resync is not implemented yet")
    else:
        say(m, "ok")
