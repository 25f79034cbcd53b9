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

  // A refusal (opsportal/errors.py: 400, 403, 409, 503, 504) comes back as the card with the reason
  // in it, and is swapped in; a whole 403/5xx page (no role, CSRF, maintenance) is not: it becomes a toast.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if ((xhr.status === 403 || xhr.status >= 500) && /^\s*<(!doctype|html)/i.test(xhr.responseText)) {
      event.detail.shouldSwap = false;
      event.detail.isError = true;
    }
  });
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var text = xhr.status === 403 ? "You are not allowed to do that." : "The server answered " + xhr.status + ".";
    toast(text);
  });
  document.addEventListener("htmx:sendError", function () {
    toast("The portal could not be reached. Your text is still in the form.");
  });
})();

// Countdowns: <time data-countdown="ISO"> shows "in 5 h 12 min" or "3 h ago", refreshed every 30 s.
(function () {
  "use strict";
  function describe(ms) {
    var minutes = Math.round(Math.abs(ms) / 60000);
    var days = Math.floor(minutes / 1440), hours = Math.floor((minutes % 1440) / 60), mins = minutes % 60;
    var parts = [];
    if (days) parts.push(days + " d");
    if (hours) parts.push(hours + " h");
    if (!days) parts.push(mins + " min");
    return parts.join(" ");
  }
  function tick() {
    document.querySelectorAll("time[data-countdown]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-countdown"));
      if (isNaN(due)) return;
      if (!el.title) el.title = el.textContent;
      var ms = due - Date.now();
      el.textContent = ms >= 0 ? "in " + describe(ms) : describe(ms) + " ago";
      el.classList.toggle("past", ms < 0);
    });
  }
  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:afterSettle", tick);
  setInterval(tick, 30000);

  // A review field in conflict stops autosaving until the person chooses: their text (already
  // saved) or theirs overwritten by mine. Nothing is overwritten silently. (Here, not as an
  // hx-trigger filter: htmx evaluates filters with Function(), which the production CSP forbids.)
  document.addEventListener("htmx:confirm", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.dataset && elt.dataset.conflict) event.preventDefault();
  });
  document.addEventListener("htmx:afterSettle", function () {
    document.querySelectorAll(".conflict[data-conflict-for]").forEach(function (box) {
      var field = document.getElementById(box.getAttribute("data-conflict-for"));
      if (field) field.dataset.conflict = "1";
    });
  });
  // Forms that save through htmx as they change (review fields, action items) are never submitted
  // by the browser: Enter in one of their fields saves that field instead. (A native submit would
  // reload the page, and by GET put the text in the URL and the logs.) Inline handlers cannot do
  // this: the production CSP (script-src 'self') blocks them.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form[data-autosave]")) return;
    event.preventDefault();
    var active = document.activeElement;
    var field = active && active !== form && form.contains(active) ? active : form.querySelector("[hx-post]") || form;
    if (window.htmx) htmx.trigger(field, "change");
  });

  // Filters that apply as soon as a choice is made (the reviews' state filter).
  document.addEventListener("change", function (event) {
    var control = event.target;
    if (control.matches && control.matches("[data-submit-on-change]") && control.form) control.form.requestSubmit();
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-resolve]");
    if (!button) return;
    var box = button.closest(".conflict");
    var field = document.getElementById(box.getAttribute("data-conflict-for"));
    var version = field.form.querySelector("input[name=version]");
    version.value = button.getAttribute("data-version");
    delete field.dataset.conflict;
    box.remove();
    if (button.getAttribute("data-resolve") === "theirs") {
      field.value = button.getAttribute("data-text");
    } else {
      htmx.trigger(field, "change");
    }
  });
})();

// A table wider than the screen scrolls inside its card; keyboard users reach it with Tab and
// scroll it with the arrow keys (WCAG: scrollable regions must be focusable).
(function () {
  function focusable() {
    document.querySelectorAll("table.list").forEach(function (table) {
      if (table.scrollWidth > table.clientWidth + 1) {
        table.setAttribute("tabindex", "0");
      } else {
        table.removeAttribute("tabindex");
      }
    });
  }
  document.addEventListener("DOMContentLoaded", focusable);
  document.addEventListener("htmx:afterSettle", focusable);
  window.addEventListener("resize", focusable);
})();
