// The student's payment-code screen: binds the phone once (online), then shows a fresh code
// every step as QR and Code 128, with the network off too; shows live results when online.
// Needs js/vendor/qrcode-generator-1.4.4.js and js/paycode.js loaded first.
// DOM contract (see templates/student/paycode.html): a root [data-paycode] carrying the URLs
// and the translated texts as data-* attributes, and children marked data-qr, data-bar,
// data-digits, data-countdown, data-refresh, data-bind, data-status, data-live, data-confirm.
(function () {
  "use strict";

  var root = document.querySelector("[data-paycode]");
  if (!root || !window.CCPaycode) return;
  var P = window.CCPaycode;
  var KEY = "cc.paycode." + (root.dataset.person || "me");
  var $ = function (name) { return root.querySelector("[data-" + name + "]"); };
  var t = function (name) {
    return root.dataset["t" + name.charAt(0).toUpperCase() + name.slice(1)] || "";
  };
  var csrf = "";
  try {
    csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || "";
  } catch (e) {
    csrf = "";
  }

  function load() {
    try { return JSON.parse(localStorage.getItem(KEY) || "null"); } catch (e) { return null; }
  }
  function save(state) { localStorage.setItem(KEY, JSON.stringify(state)); }

  var state = load();
  // the server says which phone is bound now: a secret from an older binding (another phone
  // was bound, or the card center unbound this one) is forgotten
  if (state && String(state.deviceId) !== (root.dataset.device || "")) {
    localStorage.removeItem(KEY);
    state = null;
  }
  var shown = { step: -1, counter: -1 };

  function now() { return Date.now() + ((state && state.offsetMs) || 0); }

  function status(text, kind) {
    var el = $("status");
    if (!el) return;
    el.textContent = text;
    el.dataset.kind = kind || "";
  }

  function live(text, kind) {
    var el = $("live");
    if (!el) return;
    el.textContent = text;
    el.dataset.kind = kind || "";
    el.hidden = !text;
  }

  var MONEY = { amount: 1, balance: 1 };  // written as the page's language writes money
  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, k) {
      if (values[k] == null) return "";
      return MONEY[k] ? window.ccMoney(values[k]) : values[k];
    });
  }

  async function render() {
    if (!state) {
      root.dataset.bound = "no";
      return;
    }
    root.dataset.bound = "yes";
    var step = P.timeStep(now(), state.stepSeconds);
    if (state.counterStep !== step) {
      state.counterStep = step;
      state.counter = 0;
      save(state);
    }
    if (shown.step !== step || shown.counter !== state.counter) {
      // (a phone bound before scheme 6 kept no scheme: generate makes its scheme-7 codes)
      var code = await P.generate(state.secret, state.token, step, state.counter, false,
                                  state.scheme);
      $("qr").innerHTML = P.qrSvg(code);
      $("bar").innerHTML = P.code128Svg(code, 70);
      // grouped in fours so a cashier can type it if the scanner fails
      $("digits").textContent = code.replace(/(\d{4})(?=\d)/g, "$1 ");
      root.dataset.code = code;
      shown = { step: step, counter: state.counter };
    }
    var left = Math.ceil(state.stepSeconds - ((now() / 1000) % state.stepSeconds));
    $("countdown").textContent = fill(t("refreshin"), { s: left });
  }

  function nextCode() {
    if (!state) return;
    if (state.counter < 9) {
      state.counter += 1;
      save(state);
    }
    render();
  }

  async function bind() {
    status(t("binding"));
    var label = (navigator.userAgent.match(/\(([^;)]+)/) || [null, "phone"])[1].slice(0, 60);
    var sent = Date.now();
    var r = await fetch(root.dataset.bindUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ label: label }),
    });
    var body = await r.json().catch(function () { return {}; });
    if (!r.ok) {
      status((body.error && body.error.message) || t("failed"), "error");
      return;
    }
    var mid = (sent + Date.now()) / 2;
    state = {
      secret: body.secret,
      token: body.token,
      scheme: body.scheme,
      stepSeconds: body.step_seconds,
      deviceId: body.device_id,
      offsetMs: Math.round(body.server_time * 1000 - mid),
      counter: 0,
      counterStep: -1,
    };
    save(state);
    status(t("bound"), "ok");
    shown = { step: -1, counter: -1 };
    render();
  }

  async function syncClock() {
    if (!state || !root.dataset.timeUrl) return;
    try {
      var sent = Date.now();
      var r = await fetch(root.dataset.timeUrl, { credentials: "same-origin" });
      var body = await r.json();
      state.offsetMs = Math.round(body.now * 1000 - (sent + Date.now()) / 2);
      save(state);
    } catch (e) {
      /* offline: keep the last known offset */
    }
  }

  function confirmBox(event) {
    var box = $("confirm");
    if (!box) return;
    box.hidden = false;
    box.querySelector("[data-confirm-text]").textContent = fill(t("confirm"), event);
    box.dataset.id = event.confirmation_id;
  }

  async function answerConfirm(accept) {
    var box = $("confirm");
    var id = box.dataset.id;
    box.hidden = true;
    var pinInput = box.querySelector("input[name=pin]");
    var r = await fetch(root.dataset.confirmUrl.replace("{id}", id), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ accept: accept, pin: pinInput && pinInput.value ? pinInput.value : null }),
    });
    if (pinInput) pinInput.value = "";
    if (!r.ok) {
      var body = await r.json().catch(function () { return {}; });
      live((body.error && body.error.message) || t("failed"), "error");
    }
  }

  function onEvent(event) {
    if (event.type === "paycode.scanned") {
      live(fill(t("pending"), event), "pending");
    } else if (event.type === "paycode.confirm") {
      confirmBox(event);
    } else if (event.type === "payment") {
      live(fill(t("paid"), event), "ok");
      nextCode(); // the shown code is spent: move on to a fresh one at once
    } else if (event.type === "paycode.refused" || (event.type === "paycode.result" && !event.ok)) {
      live(fill(t("refused"), event), "error");
    } else if (event.type === "refund") {
      live(fill(t("refunded"), event), "ok");
    }
  }

  function listen() {
    if (!window.EventSource || !root.dataset.eventsUrl) return;
    var source = new EventSource(root.dataset.eventsUrl, { withCredentials: true });
    ["payment", "refund", "paycode.scanned", "paycode.confirm", "paycode.refused", "paycode.result"].forEach(function (name) {
      source.addEventListener(name, function (m) { onEvent(JSON.parse(m.data)); });
    });
    source.onopen = function () { root.dataset.online = "yes"; };
    source.onerror = function () { root.dataset.online = "no"; };
  }

  async function mint() {
    var r = await fetch(root.dataset.mintUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf },
    });
    var body = await r.json().catch(function () { return {}; });
    var out = document.querySelector("[data-minted]");
    if (!r.ok) {
      out.textContent = (body.error && body.error.message) || t("failed");
      return;
    }
    // server-made SVG (segno / our Code 128) of a code the server registered
    out.innerHTML = body.qr_svg + body.code128_svg;
    var digits = document.createElement("p");
    digits.className = "pc-digits";
    digits.textContent = body.code.replace(/(\d{4})(?=\d)/g, "$1 ");
    out.appendChild(digits);
  }

  // the buttons come disabled: a tap before this script listens would do nothing at all
  var mintButton = document.querySelector("[data-mint]");
  if (mintButton) {
    mintButton.addEventListener("click", function () { mint(); });
    mintButton.disabled = false;
  }
  var bindButton = $("bind");
  if (bindButton) {
    bindButton.addEventListener("click", function () { bind(); });
    bindButton.disabled = false;
  }
  var refresh = $("refresh");
  if (refresh) refresh.addEventListener("click", nextCode);
  var box = $("confirm");
  if (box) {
    box.querySelector("[data-accept]").addEventListener("click", function () { answerConfirm(true); });
    box.querySelector("[data-decline]").addEventListener("click", function () { answerConfirm(false); });
  }
  window.addEventListener("online", function () { root.dataset.online = "yes"; syncClock(); });
  window.addEventListener("offline", function () { root.dataset.online = "no"; });

  render();
  syncClock();
  listen();
  setInterval(render, 1000);
})();
