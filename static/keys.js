// Keyboard and pointer shortcuts for the console (issue 12), kept apart from console.js and,
// like it, driven by data- attributes only (the CSP refuses inline scripts and handlers):
//
//   ?                 toggle the shortcuts overlay (#shortcuts, templates/base.html)
//   /                 focus [data-shortcut-search] (the table's search field)
//   j / k, Enter      move between rows [data-href] (the case table) and open the current one
//   a m e r ...       click the [data-shortcut=KEY] control: the current row's first, else
//                     the page's (case page: acknowledge, assign to me, escalate, resolve)
//   g c / g q         follow a[data-goto=c] / a[data-goto=q] (the nav's Cases / Queue)
//
//   tr[data-href]     a click anywhere on the row (but a link, button or field) opens it
//   details[data-close-narrow]
//                     open in the HTML (no script: filters stay reachable), closed on load
//                     when the screen is narrow (the phone layout folds the filters)
(function () {
  "use strict";

  var NARROW = "(max-width: 640px)";
  var currentId = null; // the case id of the current row; kept across the table's swaps
  var pendingG = 0;

  function typing(target) {
    if (!target || !target.closest) return false;
    return !!target.closest("input, textarea, select, [contenteditable=''], [contenteditable=true]");
  }

  function visible(el) {
    return !!(el && (el.offsetWidth || el.offsetHeight || el.getClientRects().length));
  }

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("tr[data-href]"));
  }

  function mark(row) {
    rows().forEach(function (other) {
      other.classList.remove("is-current");
      other.removeAttribute("aria-current");
    });
    if (!row) { currentId = null; return; }
    row.classList.add("is-current");
    row.setAttribute("aria-current", "true");
    currentId = row.dataset.caseId || null;
    row.scrollIntoView({ block: "nearest" });
  }

  function currentRow() {
    if (currentId === null) return null;
    return document.querySelector('tr[data-href][data-case-id="' + currentId + '"]');
  }

  function move(step) {
    var all = rows();
    if (!all.length) return;
    var index = all.indexOf(currentRow());
    index = index < 0 ? (step > 0 ? 0 : all.length - 1)
                      : Math.min(all.length - 1, Math.max(0, index + step));
    mark(all[index]);
  }

  function overlay() {
    return document.getElementById("shortcuts");
  }

  function toggleOverlay(show) {
    var box = overlay();
    if (!box) return;
    var open = show === undefined ? box.hidden : show;
    box.hidden = !open;
    if (open) {
      var close = box.querySelector("[data-shortcuts-close]");
      if (close) close.focus();
    }
  }

  function press(key) {
    var row = currentRow();
    var control = row && row.querySelector('[data-shortcut="' + key + '"]');
    if (!control) {
      control = Array.prototype.slice
        .call(document.querySelectorAll('[data-shortcut="' + key + '"]'))
        .filter(function (el) { return visible(el) && !el.closest("tr[data-href]"); })[0];
    }
    if (!control) return false;
    control.click();
    return true;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var box = overlay();
    if (event.key === "Escape" && box && !box.hidden) {
      event.preventDefault();
      toggleOverlay(false);
      return;
    }
    if (typing(event.target) || event.defaultPrevented) return;
    if (document.querySelector("[data-modal]")) return; // a modal form has the keyboard
    var key = event.key;
    if (pendingG && Date.now() - pendingG < 1500) {
      pendingG = 0;
      var link = document.querySelector('a[data-goto="' + key + '"]');
      if (link) { event.preventDefault(); window.location.assign(link.href); }
      return;
    }
    pendingG = 0;
    if (key === "?") { event.preventDefault(); toggleOverlay(); return; }
    if (box && !box.hidden) return;
    if (key === "g") { pendingG = Date.now(); return; }
    if (key === "/") {
      var search = document.querySelector("[data-shortcut-search]");
      if (search) {
        event.preventDefault();
        var fold = search.closest("details");
        if (fold) fold.open = true;
        search.focus();
        search.select();
      }
      return;
    }
    if (key === "j" || key === "k") { event.preventDefault(); move(key === "j" ? 1 : -1); return; }
    if (key === "Enter") {
      var row = currentRow();
      if (row && !event.target.closest("a, button")) {
        event.preventDefault();
        window.location.assign(row.dataset.href);
      }
      return;
    }
    if (key.length === 1 && /[a-z]/.test(key) && press(key)) event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-shortcuts-close]") || event.target === overlay()) {
      toggleOverlay(false);
      return;
    }
    var row = event.target.closest("tr[data-href]");
    if (!row || event.button !== 0) return;
    if (event.target.closest("a, button, input, select, label, textarea, summary")) return;
    if (window.getSelection && String(window.getSelection())) return; // selecting text
    window.location.assign(row.dataset.href);
  });

  // The table re-renders on every poll and filter change: keep the current row.
  document.addEventListener("htmx:afterSwap", function () {
    var row = currentRow();
    if (row) { row.classList.add("is-current"); row.setAttribute("aria-current", "true"); }
  });

  function foldNarrow() {
    if (!window.matchMedia(NARROW).matches) return;
    document.querySelectorAll("details[data-close-narrow]").forEach(function (fold) {
      fold.open = false;
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", foldNarrow);
  else foldNarrow();
})();
