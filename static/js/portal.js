// Ops Portal: the little glue htmx does not do by itself.
(function () {
  "use strict";

  // Times are rendered server-side in the browser's time zone, read from this cookie.
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  var current = (document.cookie.match(/(?:^|; )tz=([^;]*)/) || [])[1];
  if (zone && decodeURIComponent(current || "") !== zone) {
    document.cookie = "tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; SameSite=Lax";
    if (document.cookie.indexOf("tz=") !== -1 && !sessionStorage.getItem("tz-reloaded")) {
      sessionStorage.setItem("tz-reloaded", "1");
      window.location.reload();
    }
  }

  function toast(message) {
    var box = document.getElementById("toast");
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
    clearTimeout(box._timer);
    box._timer = setTimeout(function () { box.hidden = true; }, 6000);
  }

  // Response clocks: the server renders the time left; this keeps it ticking between requests.
  function span(seconds) {
    seconds = Math.abs(Math.trunc(seconds));
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    if (h >= 24) return Math.floor(h / 24) + "d " + (h % 24) + "h";
    if (h) return h + "h " + String(m).padStart(2, "0") + "m";
    return m + "m " + String(s).padStart(2, "0") + "s";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("time.countdown[data-due]").forEach(function (el) {
      var left = (Date.parse(el.dataset.due) - now) / 1000;
      if (isNaN(left)) return;
      el.textContent = left > 0 ? span(left) + " left" : "overdue by " + span(left);
      if (left <= 0 && el.classList.contains("clock-running")) {
        el.classList.replace("clock-running", "clock-breached");
      }
    });
  }
  setInterval(tick, 1000);

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var text = xhr.status === 403 ? "You are not allowed to do that." : "The server answered " + xhr.status + ".";
    toast(text);
  });
  document.addEventListener("htmx:sendError", function () {
    toast("The portal could not be reached. Your text is still in the form.");
  });
})();
