// fobsim fob panel: polls GET /api/fobs, draws each fob, sends the
// control API's JSON requests. Every POST carries Content-Type:
// application/json (the server's CSRF defence). Data goes into the page
// as text only (textContent), never as markup.
"use strict";

const POLL_MS = 500;
const $ = (sel, root = document) => root.querySelector(sel);
const cards = new Map(); // serial -> {root, parts}
let state = null;
let statusTimer = null;

function say(text, info) {
  const s = $("#status");
  s.textContent = text;
  s.className = info ? "status info" : "status";
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => { s.textContent = ""; }, 4000);
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (method !== "GET") {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body || {});
  }
  const r = await fetch(path, init);
  const j = await r.json().catch(() => ({}));
  if (!r.ok) {
    const e = j.error || {};
    throw new Error((e.message || r.statusText) + (e.field ? " (" + e.field + ")" : ""));
  }
  return j;
}

async function act(method, path, body) {
  try {
    const j = await api(method, path, body);
    await refresh();
    return j;
  } catch (e) {
    say(e.message);
    return null;
  }
}

function fmtOffset(ms) {
  const s = ms / 1000;
  const sign = s > 0 ? "+" : s < 0 ? "−" : "±";
  const a = Math.abs(s);
  if (a >= 86400) return sign + (a / 86400).toFixed(1) + " d";
  if (a >= 3600) return sign + (a / 3600).toFixed(1) + " h";
  if (a >= 60) return sign + (a / 60).toFixed(1) + " min";
  return sign + a.toFixed(a % 1 ? 1 : 0) + " s";
}

function fmtTime(iso) {
  return iso ? iso.replace("T", " ").replace(/\.\d+Z$/, " UTC").replace(/Z$/, " UTC") : "—";
}

function makeCard(f) {
  const root = $("#fob-template").content.firstElementChild.cloneNode(true);
  const p = {
    brand: $(".brand", root), lcd: $(".lcd", root), digits: $(".digits", root),
    until: $(".until", root), press: $(".press", root), serial: $(".serial", root),
    key: $(".keycap", root), device: $(".device", root), drift: $(".drift", root),
    battery: $(".battery", root),
  };
  const s = f.serial;
  const base = "/api/fobs/" + encodeURIComponent(s);
  root.id = "fob-" + s;
  root.dataset.serial = s;
  root.setAttribute("aria-label", "Fob " + s);
  p.serial.textContent = s;
  p.lcd.setAttribute("aria-label", "Display of " + s);
  p.press.setAttribute("aria-label", "Press the button of " + s);
  p.press.addEventListener("click", () => press(s));
  $(".pull", root).setAttribute("aria-label", "Pull the battery of " + s);
  $(".swap", root).setAttribute("aria-label", "Put a fresh battery in " + s);
  $(".remove", root).setAttribute("aria-label", "Remove " + s + " from the fleet");
  $(".pull", root).addEventListener("click", () => act("POST", base + "/battery/pull"));
  $(".swap", root).addEventListener("click", () => act("POST", base + "/battery/swap"));
  $(".remove", root).addEventListener("click", () => act("DELETE", base));
  const form = $(".drift-form", root);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const body = {};
    const off = form.elements.offset.value.trim();
    const ppm = form.elements.ppm.value.trim();
    if (off) body.offset = off;
    if (ppm) body.ppm = Number(ppm);
    act("POST", base + "/drift", body);
  });
  return { root, p };
}

async function press(serial) {
  const c = cards.get(serial);
  if (c) {
    c.p.press.classList.add("pressed");
    setTimeout(() => c.p.press.classList.remove("pressed"), 150);
  }
  await act("POST", "/api/fobs/" + encodeURIComponent(serial) + "/press");
}

function drawFob(c, f, i, nowMs) {
  const p = c.p;
  p.brand.textContent = f.model;
  p.key.textContent = i < 9 ? String(i + 1) : "";
  const dead = f.battery === "dead";
  p.digits.textContent = f.code || "";
  p.digits.classList.toggle("long", !!f.code && f.code.length > 6);
  p.lcd.classList.toggle("blank", !f.code);
  p.lcd.classList.toggle("dead", dead);
  p.lcd.dataset.code = f.code || "";
  if (f.code && f.shown_until) {
    const left = Math.max(0, Math.ceil((Date.parse(f.shown_until) - nowMs) / 1000));
    p.until.textContent = "shown " + left + " s more";
  } else {
    p.until.textContent = dead ? "battery dead" : "blank: press the button";
  }
  p.device.textContent = fmtTime(f.device);
  p.drift.textContent = fmtOffset(f.offset_ms) + ", " + f.ppm + " ppm" + (f.jitter_ms ? ", jitter " + f.jitter_ms + " ms" : "");
  p.battery.textContent = f.battery;
  p.battery.className = "battery " + f.battery;
}

function draw(s) {
  state = s;
  const c = s.clock;
  $("#clock-now").textContent = fmtTime(c.now);
  $("#clock-now").dataset.nowMs = c.now_ms;
  $("#clock-source").textContent = c.source + " clock";
  const st = $("#clock-state");
  st.textContent = c.frozen ? "frozen" : "running";
  st.className = "badge " + (c.frozen ? "frozen" : "running");
  const manual = c.source === "manual";
  $("#clock-note").hidden = manual;
  for (const el of document.querySelectorAll(".manual")) el.disabled = !manual;
  if (manual) {
    $("#freeze").disabled = c.frozen;
    $("#resume").disabled = !c.frozen;
  }
  const box = $("#fobs");
  const seen = new Set();
  s.fobs.forEach((f, i) => {
    seen.add(f.serial);
    let card = cards.get(f.serial);
    if (!card) {
      card = makeCard(f);
      cards.set(f.serial, card);
    }
    if (box.children[i] !== card.root) box.insertBefore(card.root, box.children[i] || null);
    drawFob(card, f, i, c.now_ms);
  });
  for (const [serial, card] of cards) {
    if (!seen.has(serial)) { card.root.remove(); cards.delete(serial); }
  }
  $("#fob-count").textContent = "(" + s.fobs.length + ")";
}

let polling = null;
async function refresh() {
  try {
    draw(await api("GET", "/api/fobs"));
  } catch (e) {
    say("lost the emulator: " + e.message);
  }
}

// Twice a second; a big fleet's list takes longer to build and send, so
// the page then polls less often (never more than 10% of the time busy).
function poll() {
  clearTimeout(polling);
  const t0 = performance.now();
  refresh().finally(() => {
    const took = performance.now() - t0;
    polling = setTimeout(poll, Math.max(POLL_MS, 10 * took));
  });
}

function wire() {
  $("#freeze").addEventListener("click", () => act("POST", "/api/clock/freeze"));
  $("#resume").addEventListener("click", () => act("POST", "/api/clock/resume"));
  for (const b of document.querySelectorAll("button.step")) {
    b.addEventListener("click", () => act("POST", "/api/clock/advance", { by: b.dataset.by }));
  }
  $("#advance-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    act("POST", "/api/clock/advance", { by: $("#advance-by").value.trim() });
  });
  $("#set-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    act("POST", "/api/clock/set", { time: $("#set-time").value.trim() });
  });
  $("#create-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { model: $("#create-model").value };
    const serial = $("#create-serial").value.trim();
    const offset = $("#create-offset").value.trim();
    if (serial) body.serial = serial;
    if (offset) body.offset = offset;
    const j = await act("POST", "/api/fobs", body);
    if (j) say("added " + j.fob.serial, true);
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const t = ev.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA")) return;
    if (/^[1-9]$/.test(ev.key) && state) {
      const f = state.fobs[Number(ev.key) - 1];
      if (f) { ev.preventDefault(); press(f.serial); }
    }
  });
  api("GET", "/api/models").then((j) => {
    const sel = $("#create-model");
    for (const m of j.models) {
      const o = document.createElement("option");
      o.value = m.name;
      o.textContent = m.name + " — " + m.description;
      sel.appendChild(o);
    }
  }).catch((e) => say(e.message));
  poll();
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", wire);
} else {
  wire();
}
