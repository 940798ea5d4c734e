/* The browser till without a network: a banner says so and the charge button waits (a
   browser cannot store signed offline sales; an offline-capable till does, docs/terminal-
   protocol.md §10). The entered amount stays; when the server answers again, the banner goes. */
(function () {
  "use strict";
  var probe = null;
  function set(offline) {
    document.querySelectorAll("[data-offline-banner]").forEach(function (b) { b.hidden = !offline; });
    document.querySelectorAll("[data-testid=pos-form] button[type=submit]").forEach(function (btn) {
      btn.disabled = offline;
    });
    document.documentElement.dataset.network = offline ? "offline" : "online";
    if (offline && !probe) probe = window.setInterval(check, 3000);
    if (!offline && probe) { window.clearInterval(probe); probe = null; }
  }
  /* the browser may think it is online while the server cannot be reached: ask the server */
  function check() {
    if (!navigator.onLine) return;
    fetch("/api/health", { cache: "no-store" }).then(
      function (r) { if (r.ok) set(false); },
      function () { set(true); }
    );
  }
  window.addEventListener("offline", function () { set(true); });
  window.addEventListener("online", check);
  /* a request that never reached the server (the network went before the browser noticed) */
  document.addEventListener("htmx:sendError", function () { set(true); });
  document.addEventListener("htmx:afterSwap", function () { set(!navigator.onLine); });
  document.addEventListener("DOMContentLoaded", function () { set(!navigator.onLine); });
})();
