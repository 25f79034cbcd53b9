// The live incident page (incidents/live.py): a poll asks "changed since?" and each changed part
// fetches itself; what the reader is typing or has open is kept.
(function () {
  "use strict";

  function inUse(el) {
    if (el.tagName === "DETAILS") return el.open;
    return el === document.activeElement || (el.value || "") !== "";
  }

  // A live refresh names what the reader is using; the server marks those hx-preserve.
  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt.hasAttribute || !elt.hasAttribute("data-live-section")) return;
    if (event.detail.verb !== "get" || event.detail.triggeringEvent === null) return;
    var keep = [];
    elt.querySelectorAll("[data-keep][id]").forEach(function (el) {
      if (inUse(el)) keep.push(el.id);
    });
    elt.querySelectorAll("article.event").forEach(function (article) {
      if (article.querySelector("form")) keep.push(article.id);
    });
    if (keep.length) event.detail.parameters.keep = keep;
    if (elt.id === "timeline-entries") {
      var filter = document.getElementById("kind-filter");
      if (filter) {
        var kinds = [];
        filter.querySelectorAll("input[name=kind]:checked").forEach(function (box) { kinds.push(box.value); });
        if (kinds.length) event.detail.parameters.kind = kinds;
      }
    }
  });

  // The poll is the page's own business: a hidden tab does not poll, and a failed poll says
  // "reconnecting" quietly instead of a toast every second.
  document.addEventListener("DOMContentLoaded", function () {
    var live = document.getElementById("live");
    if (!live) return;
    var status = document.getElementById("live-status");
    live.addEventListener("htmx:confirm", function (event) {
      if (document.visibilityState === "hidden") event.preventDefault();
    });
    ["htmx:sendError", "htmx:responseError"].forEach(function (name) {
      live.addEventListener(name, function (event) { event.stopPropagation(); });
    });
    live.addEventListener("htmx:afterRequest", function (event) {
      var ok = event.detail.successful;
      live.classList.toggle("paused", !ok);
      if (status) status.textContent = ok ? "Live" : "Reconnecting…";
    });
  });
})();

// Keyboard shortcuts on the incident page: a acknowledge, n new note, / search (nav.js), ? help.
(function () {
  "use strict";
  function typing(target) {
    return target.closest && target.closest("input, textarea, select, [contenteditable=true]");
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    var help = document.getElementById("shortcuts");
    if (event.key === "?") {
      event.preventDefault();
      if (help && !help.open) help.showModal();
    } else if (event.key === "a") {
      var ack = document.querySelector('[data-status-action="acknowledged"]');
      if (ack) { event.preventDefault(); ack.click(); }
    } else if (event.key === "n") {
      var note = document.getElementById("entry-body");
      if (note) { event.preventDefault(); note.scrollIntoView({ block: "center" }); note.focus(); }
    }
  });
})();

document.addEventListener("click", function (event) {
  "use strict";
  var opener = event.target.closest && event.target.closest("[data-open-shortcuts]");
  var help = document.getElementById("shortcuts");
  if (opener && help) help.showModal();
});
