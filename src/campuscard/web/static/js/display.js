// The customer display next to a till: the amount to pay (as the cashier types it), then the
// result of the payment, live from /api/v1/terminals/<id>/display/events.
(function () {
  "use strict";
  var root = document.querySelector("[data-display]");
  if (!root || !window.EventSource) return;
  var t = function (name) {
    return root.dataset["t" + name.charAt(0).toUpperCase() + name.slice(1)] || "";
  };
  var MONEY = { amount: 1, balance: 1 };  // written as the page's language writes money
  var fill = function (text, values) {
    return text.replace(/\{(\w+)\}/g, function (_, k) {
      if (values[k] == null) return "";
      return MONEY[k] ? window.ccMoney(values[k]) : values[k];
    });
  };
  var amount = root.querySelector("[data-amount]");
  var label = root.querySelector("[data-label]");
  var result = root.querySelector("[data-result]");

  function show(event) {
    if (event.type === "pos.pending") {
      label.textContent = t("topay");
      amount.textContent = window.ccMoney(event.amount);
      result.hidden = true;
    } else if (event.type === "pos.cleared") {
      amount.textContent = "";
      result.hidden = true;
    } else if (event.type === "paycode.confirm") {
      result.hidden = false;
      result.dataset.kind = "";
      result.textContent = fill(t("waiting"), event);
    } else if (event.type === "paycode.result" || event.type === "paycode.refused") {
      result.hidden = false;
      result.dataset.kind = event.ok ? "ok" : "error";
      result.textContent = fill(event.ok ? t("paid") : t("refused"), event);
      if (event.ok) amount.textContent = "";
    }
  }

  var source = new EventSource(root.dataset.eventsUrl, { withCredentials: true });
  ["pos.pending", "pos.cleared", "paycode.confirm", "paycode.result", "paycode.refused"].forEach(
    function (name) {
      source.addEventListener(name, function (m) { show(JSON.parse(m.data)); });
    }
  );
  source.onopen = function () { root.dataset.online = "yes"; };
  source.onerror = function () { root.dataset.online = "no"; };
})();
