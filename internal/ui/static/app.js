// tandem dashboard: live updates over Server-Sent Events, and "select
// all" on the dead letters. Pages work without it.
(function () {
  "use strict";
  var body = document.body;

  // Select all: toggles the row checkboxes of its table.
  document.querySelectorAll("[data-select-all]").forEach(function (box) {
    box.addEventListener("change", function () {
      box.closest("table").querySelectorAll("tbody input[type=checkbox]").forEach(function (c) { c.checked = box.checked; });
    });
  });

  var url = body.dataset.events;
  if (!url || !window.EventSource) { return; }
  var mode = body.dataset.live;
  var state = document.getElementById("live-state");
  var region = document.getElementById("live-region");
  var sep = url.indexOf("?") < 0 ? "?" : "&";
  if (body.dataset.lastEventId) { url += sep + "last_event_id=" + encodeURIComponent(body.dataset.lastEventId); }

  function setState(on) {
    if (!state) { return; }
    state.textContent = on ? "live" : "reconnecting…";
    state.className = "live-state " + (on ? "on" : "off");
  }

  var timer = null, last = 0, busy = false, again = false;
  // refresh fetches the page again and swaps its live region, keeping the
  // focused element (by id) and the scroll position.
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("live-region");
        if (!fresh) { return; }
        var focused = document.activeElement && document.activeElement.id;
        region.innerHTML = fresh.innerHTML;
        if (focused) { var el = document.getElementById(focused); if (el) { el.focus({ preventScroll: true }); } }
        body.dataset.refreshed = String(Date.now());
      })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; schedule(); } });
  }
  function schedule() {
    if (mode === "notice") {
      // A selection may be in progress: offer a reload instead.
      var n = document.getElementById("live-notice");
      var picked = document.querySelector("#dl-form tbody input:checked");
      if (picked && n) { n.hidden = false; return; }
    }
    // At most one refresh a second, however many events come.
    if (timer) { return; }
    var wait = Math.max(150, 1000 - (Date.now() - last));
    timer = setTimeout(function () { timer = null; last = Date.now(); refresh(); }, wait);
  }

  var es = new EventSource(url);
  es.onopen = function () { setState(true); };
  es.onerror = function () { setState(false); };
  ["message", "delivery", "attempt", "reset"].forEach(function (k) { es.addEventListener(k, schedule); });
})();
