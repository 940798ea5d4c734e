// CampusCard page helpers. No inline scripts anywhere (the CSP forbids them); pages opt in to
// behaviour with data- attributes.

// An amount of yuan as the page's language writes money: the browser's CLDR, the same rules the
// server's Babel uses (zh-CN ¥1,234.50, en CN¥1,234.50). The text "12.30" is formatted as an
// exact decimal (Intl.NumberFormat takes a string), never through a float. Scripts loaded after
// this one (live events, the payment-code page, the customer display, uploads) use it.
window.ccMoney = function (yuan) {
  if (yuan === undefined || yuan === null || yuan === "") return "";
  var lang = document.documentElement.lang || "zh-CN";
  try {
    return new Intl.NumberFormat(lang, { style: "currency", currency: "CNY" }).format(String(yuan));
  } catch (e) {
    return "¥" + yuan;
  }
};

(function () {
  "use strict";

  // The session's CSRF token, which the layout gives HTMX on <body hx-headers>; our own
  // fetch() calls to the API send it too (a write signed in by the cookie needs it).
  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || "";
    } catch (e) {
      return "";
    }
  }

  // Sound for the POS result screen: a short beep for success, two low ones for a refusal.
  function beep(ok) {
    try {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return;
      var ctx = new Ctx();
      var tones = ok ? [[880, 0, 0.15]] : [[220, 0, 0.2], [220, 0.3, 0.2]];
      tones.forEach(function (t) {
        var osc = ctx.createOscillator();
        var gain = ctx.createGain();
        osc.frequency.value = t[0];
        osc.connect(gain);
        gain.connect(ctx.destination);
        osc.start(ctx.currentTime + t[1]);
        osc.stop(ctx.currentTime + t[1] + t[2]);
      });
    } catch (e) { /* sound is a nicety */ }
  }

  // Any element with data-sound="ok|bad" plays once when it appears (HTMX swaps included).
  function sounds(root) {
    (root.querySelectorAll ? root.querySelectorAll("[data-sound]") : []).forEach(function (el) {
      if (el.dataset.played) return;
      el.dataset.played = "1";
      beep(el.dataset.sound === "ok");
    });
  }

  // Amount keypads: buttons with data-key edit the input named by data-keypad.
  function keypads(root) {
    (root.querySelectorAll ? root.querySelectorAll("[data-keypad]") : []).forEach(function (pad) {
      if (pad.dataset.bound) return;
      pad.dataset.bound = "1";
      var input = document.getElementById(pad.dataset.keypad);
      var display = document.getElementById(pad.dataset.display);
      var timer = null;
      // the customer display facing the payer shows the amount as it is typed (seed 000)
      function announce() {
        if (!pad.dataset.pending) return;
        clearTimeout(timer);
        timer = setTimeout(function () {
          var v = input.value;
          if (!/^[0-9]+(\.[0-9]{1,2})?$/.test(v) || Number(v) <= 0) return;
          var dot = v.indexOf(".");
          var amount = dot < 0 ? v + ".00" : (v + "00").slice(0, dot + 3);
          fetch(pad.dataset.pending, {
            method: "PUT", credentials: "same-origin",
            headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
            body: JSON.stringify({ amount: amount })
          }).catch(function () { /* the display is a nicety; paying does not depend on it */ });
        }, 300);
      }
      function show() { if (display) display.textContent = input.value || "0.00"; announce(); }
      pad.addEventListener("click", function (ev) {
        var btn = ev.target.closest("[data-key]");
        if (!btn) return;
        ev.preventDefault();
        var key = btn.dataset.key, v = input.value;
        if (key === "C") v = "";
        else if (key === "DEL") v = v.slice(0, -1);
        else if (key === ".") { if (v.indexOf(".") < 0) v = (v || "0") + "."; }
        else {
          var dot = v.indexOf(".");
          if (dot >= 0 && v.length - dot > 2) return;   // two decimals at most (fen)
          if (v === "0") v = "";
          if (v.replace(".", "").length < 8) v += key;
        }
        input.value = v;
        show();
        // give the focus back to the scan field: the card reader types into it
        var scan = document.querySelector("[data-scan-focus]");
        if (scan) scan.focus();
      });
      input.addEventListener("input", show);
      show();
    });
  }

  // Keep focus on the scan field of the POS so a keyboard-wedge reader always types into it.
  function scanFocus(root) {
    var el = document.querySelector("[data-scan-focus]");
    if (el && document.activeElement === document.body) el.focus();
  }

  // Live events (server-sent): the student's page announces a payment or refund as it
  // happens and shows the balance after it; the list refreshes on the next load.
  function live(root) {
    (root.querySelectorAll ? root.querySelectorAll("[data-live]") : []).forEach(function (box) {
      if (box.dataset.bound || !window.EventSource || !box.dataset.live) return;
      box.dataset.bound = "1";
      var source = new EventSource(box.dataset.live);
      function show(template, ev) {
        var data = JSON.parse(ev.data);
        box.textContent = template
          .replace("{amount}", window.ccMoney(data.amount))
          .replace("{merchant}", [data.merchant, data.outlet].filter(Boolean).join(" "))
          .replace("{balance}", window.ccMoney(data.balance));
        box.hidden = false;
        var total = document.getElementById(box.dataset.balanceTarget || "");
        if (total && data.balance) total.textContent = window.ccMoney(data.balance);
      }
      source.addEventListener("payment", function (ev) { show(box.dataset.paidText, ev); });
      source.addEventListener("refund", function (ev) { show(box.dataset.refundText, ev); });
    });
  }

  // Destructive actions ask first: a form (or its submit button) with data-confirm="question"
  // is sent only after the person says yes. HTMX forms use the same attribute.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var button = ev.submitter;
    var question = (button && button.dataset && button.dataset.confirm) || (form.dataset && form.dataset.confirm);
    if (!question) return;
    if (!window.confirm(question)) {
      ev.preventDefault();
      ev.stopImmediatePropagation();
    }
  }, true);

  function init(root) { sounds(root); keypads(root); scanFocus(root); live(root); }
  document.addEventListener("click", function (ev) {
    if (ev.target.closest && ev.target.closest("[data-print]")) window.print();
    // The schedule editor: Monday's intervals copied to Tuesday-Friday.
    if (ev.target.closest && ev.target.closest("[data-copy-monday]")) {
      var form = ev.target.closest("form");
      ["from", "to"].forEach(function (end) {
        var monday = form.querySelectorAll("input[name='d1_" + end + "']");
        for (var day = 2; day <= 5; day++) {
          var inputs = form.querySelectorAll("input[name='d" + day + "_" + end + "']");
          for (var i = 0; i < inputs.length; i++) inputs[i].value = monday[i] ? monday[i].value : "";
        }
      });
    }
  });
  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:load", function (ev) { init(ev.target); });
})();
