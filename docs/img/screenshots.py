"""Regenerate the README's screenshots: console-wizard.png, fob-panel.png.

Starts `fobsim up` (the first `fobsim` on PATH) on free ports with a manual
clock frozen at 2026-01-01T00:00:00Z, so every run draws the same codes
and times, and drives headless Chromium with Playwright:

- fob-panel.png: the fob panel, GAHT00000001 pressed with its button, its
  code on the display;
- console-wizard.png: the console's "Assign MFA device" wizard for the
  example user alice, mid-flow: the serial typed, MFA code 1 (read from the
  same fob's display over the control API) typed, code 2 still empty.

    target/peers/venv-client/bin/python docs/img/screenshots.py [OUT_DIR]

OUT_DIR defaults to this file's directory. Needs the client venv of
tests/matrix/setup.sh (requests, playwright) and Chromium at
/usr/bin/chromium (or $FOBSIM_CHROMIUM); it never downloads a browser.
tests/screenshots.rs runs this command as written and checks the images.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import requests
from playwright.sync_api import expect, sync_playwright

VIEWPORT = {"width": 1200, "height": 800}
START = "2026-01-01T00:00:00Z"
ACCOUNT, USER, PASSWORD = "fobsim-example", "alice", "alice-Password-1"
FOB = "GAHT00000001"
CHROMIUM = os.environ.get("FOBSIM_CHROMIUM") or "/usr/bin/chromium"


def start_up(workdir):
    """`fobsim up` on free ports; returns (process, its --json line)."""
    fobsim = shutil.which("fobsim")
    if fobsim is None:
        sys.exit("screenshots.py: no fobsim on PATH (cargo install --path . puts it there)")
    log = open(workdir / "up.log", "wb")
    proc = subprocess.Popen(
        [fobsim, "up", "--listen", "127.0.0.1:0", "--panel", "127.0.0.1:0",
         "--json", "--clock", "manual", "--start", START],
        stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
        # Its sandbox directory (database, bootstrap) goes in ours.
        env={**os.environ, "TMPDIR": str(workdir)},
    )
    line = proc.stdout.readline()
    if not line:
        proc.wait()
        sys.exit("screenshots.py: fobsim up exited early:\n"
                 + (workdir / "up.log").read_text(errors="replace"))
    return proc, json.loads(line)


def shoot_panel(browser, up, out):
    page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
    page.goto(up["panel"])
    card = page.locator(f"#fob-{FOB}")
    expect(card).to_be_visible()
    page.get_by_role("button", name=f"Press the button of {FOB}").click()
    lcd = card.locator(".lcd")
    expect(lcd).to_have_attribute("data-code", re.compile(r"^\d{6}$"))
    # The press animation (150 ms) is over: the button is drawn at rest.
    expect(card.locator(".press")).not_to_have_class(re.compile("pressed"))
    code = lcd.get_attribute("data-code")
    page.screenshot(path=str(out / "fob-panel.png"), animations="disabled")
    page.close()
    return code


def shoot_wizard(browser, up, code1, out):
    page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
    page.goto(up["console"])
    page.fill("#account", ACCOUNT)
    page.fill("#username", USER)
    page.fill("#password", PASSWORD)
    page.click("#signin")
    page.click("#nav-security-credentials")
    page.click("#assign-mfa")
    page.click("#mfa-type-continue")
    page.fill("#serial", FOB)
    page.fill("#code1", code1)
    page.focus("#code2")
    expect(page.locator("#assign-mfa")).to_be_visible()
    page.screenshot(path=str(out / "console-wizard.png"), animations="disabled")
    page.close()


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fobsim-shots-") as tmp:
        proc, up = start_up(Path(tmp))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                try:
                    code = shoot_panel(browser, up, out)
                    # The code on the display, as a test would read it.
                    shown = requests.get(f"{up['control_api']}/fobs/{FOB}/display").json()
                    assert shown["code"] == code, (shown, code)
                    shoot_wizard(browser, up, code, out)
                finally:
                    browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    for name in ("fob-panel.png", "console-wizard.png"):
        print(out / name)


if __name__ == "__main__":
    main()
