// The console's own behaviour, kept out of the templates so that the Content-Security-Policy
// (app/security.py) can refuse inline scripts, on*= and hx-on attributes, and eval (htmx runs
// with allowEval false, so no hx-trigger filters either). Listeners are delegated from the
// document: HTML that htmx swaps in later needs no set-up. Each behaviour is declared by a
// data- attribute in the templates:
//
//   data-case-panel="SOURCE"        a case page panel (hx-trigger="case-refresh"): reloaded
//                                   when a case-changed event (HX-Trigger) comes from another
//                                   source than its own
//   data-poll-paused-while="SEL"    an hx-trigger="every Ns" poll, skipped while SEL matches
//   data-select-all="SEL"           a checkbox that ticks or unticks every SEL
//   data-copy="TEXT"                a button that copies TEXT to the clipboard
//   data-focus="ID"                 a link that focuses #ID when it is on this page
//   data-modal, data-modal-return="ID", data-modal-close
//                                   a modal's backdrop: Escape, a click on the backdrop or on
//                                   a [data-modal-close] removes it and focuses #ID
(function () {
  "use strict";

  document.addEventListener("case-changed", function (event) {
    var source = event.detail && event.detail.source;
    document.querySelectorAll("[data-case-panel]").forEach(function (panel) {
      if (panel.dataset.casePanel !== source) {
        // Not bubbling: a panel inside another must not reload the outer one too.
        panel.dispatchEvent(new CustomEvent("case-refresh"));
      }
    });
  });

  document.addEventListener("htmx:confirm", function (event) {
    var selector = event.target.dataset && event.target.dataset.pollPausedWhile;
    if (selector && document.querySelector(selector)) {
      event.preventDefault(); // the poll's request is not sent; the next tick tries again
    }
  });

  document.addEventListener("change", function (event) {
    var box = event.target.closest("input[data-select-all]");
    if (!box) return;
    document.querySelectorAll(box.dataset.selectAll).forEach(function (other) {
      other.checked = box.checked;
    });
  });

  function copied(button) {
    var label = button.textContent;
    button.textContent = "Copied";
    setTimeout(function () { button.textContent = label; }, 1500);
  }

  function closeModal(backdrop) {
    var back = document.getElementById(backdrop.dataset.modalReturn || "");
    backdrop.remove();
    if (back) back.focus();
  }

  document.addEventListener("click", function (event) {
    var copy = event.target.closest("[data-copy]");
    if (copy) {
      var text = copy.dataset.copy;
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(function () { copied(copy); });
      } else {
        // Plain HTTP: the clipboard API is missing; copy through a selected textarea.
        var area = document.createElement("textarea");
        area.value = text;
        document.body.appendChild(area);
        area.select();
        document.execCommand("copy");
        area.remove();
        copied(copy);
      }
      return;
    }
    var link = event.target.closest("a[data-focus]");
    if (link) {
      var field = document.getElementById(link.dataset.focus);
      if (field) {
        event.preventDefault();
        field.scrollIntoView({ block: "center" });
        field.focus();
      }
      return;
    }
    var backdrop = event.target.closest("[data-modal]");
    if (backdrop && (event.target === backdrop || event.target.closest("[data-modal-close]"))) {
      closeModal(backdrop);
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var backdrop = event.target.closest && event.target.closest("[data-modal]");
    if (backdrop) {
      event.preventDefault();
      closeModal(backdrop);
    }
  });
})();
