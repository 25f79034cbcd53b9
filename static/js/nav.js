// The navigation on a phone (collapsed behind "Menu") and "/" to search incidents from any page.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var toggle = document.querySelector(".menu-toggle");
    var header = document.querySelector(".topbar");
    if (toggle && header) {
      header.classList.add("collapsible");
      toggle.addEventListener("click", function () {
        var open = header.classList.toggle("open");
        toggle.setAttribute("aria-expanded", open ? "true" : "false");
      });
    }
  });

  function typing(target) {
    return target.closest && target.closest("input, textarea, select, [contenteditable=true]");
  }

  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    var search = document.getElementById("nav-search");
    if (!search) return;
    event.preventDefault();
    var header = document.querySelector(".topbar");
    if (header && header.classList.contains("collapsible") && !header.classList.contains("open")) {
      document.querySelector(".menu-toggle").click();
    }
    search.focus();
  });
})();
