// The merchant's orders page: hear the shop's order events live (server-sent events), say what
// happened in a notice, and refresh the list in place.
(function () {
  "use strict";
  function start() {
    var box = document.querySelector("[data-order-events]");
    if (!box || !window.EventSource) return;
    var source = new EventSource(box.dataset.orderEvents);
    // "ready": from now on nothing is missed
    source.addEventListener("ready", function () { box.dataset.ready = "1"; });
    source.addEventListener("order", function (ev) {
      var data = JSON.parse(ev.data);
      var text = box.dataset["t" + data.event.replace(/(^|_)(\w)/g, function (_, __, c) { return c.toUpperCase(); })];
      box.textContent = (text || box.dataset.tOther).replace("{order_no}", data.order_no);
      box.hidden = false;
      if (window.htmx) {
        window.htmx.ajax("GET", box.dataset.refresh, { target: "#orders-list", swap: "innerHTML" });
      }
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
