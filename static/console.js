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
//   data-live-case, data-version, data-live-regions="ID ..."
//                                   the case page's poll (cases.show): see "Live case page"
//   data-live-keep                  inside a live region: kept as it is when the region is
//                                   swapped (e.g. the raw delivery someone opened)
//   time[data-relative]             "5 min ago" that keeps ticking; the hover adds local time
//   #case-table                     the case table: new rows are marked; while the tab is
//                                   hidden the title counts them and, with
//                                   data-notify-desktop="on", critical or escalated ones
//                                   raise a desktop notification
//   input[data-ask-notification]    ticking it asks the browser's notification permission
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

  // ---- Relative times ------------------------------------------------------------------
  // Same wording as app/templating.relative_time, recomputed every 15 s and on new content.

  function relativeText(seconds) {
    var ahead = seconds < -45; // a time to come ("in 3 h": when a parked case resumes)
    seconds = Math.abs(seconds);
    if (seconds < 45) return "just now";
    var text = seconds < 3600 ? Math.max(1, Math.round(seconds / 60)) + " min"
      : seconds < 86400 ? Math.round(seconds / 3600) + " h"
      : Math.round(seconds / 86400) + " d";
    return ahead ? "in " + text : text + " ago";
  }

  function tickTimes(root) {
    var now = Date.now();
    (root || document).querySelectorAll("time[data-relative][datetime]").forEach(function (el) {
      var moment = new Date(el.getAttribute("datetime"));
      if (isNaN(moment.getTime())) return;
      var text = relativeText((now - moment.getTime()) / 1000);
      if (el.textContent !== text) el.textContent = text;
      if (!el.dataset.localTitle) {
        var utc = moment.toISOString().replace("T", " ").slice(0, 19) + " UTC";
        el.title = moment.toLocaleString() + " (your time) · " + utc;
        el.dataset.localTitle = "1";
      }
    });
  }

  document.addEventListener("htmx:load", function (event) { tickTimes(event.detail.elt); });
  document.addEventListener("DOMContentLoaded", function () { tickTimes(document); });
  setInterval(function () { tickTimes(document); }, 15000);

  // ---- Live case page --------------------------------------------------------------------
  // #case-live polls cases.show with the version the page shows (204: nothing changed). A
  // changed answer is the page's content: each listed region is swapped from it, or, if it
  // reloads itself (data-case-panel), told to. A region is held while it has the focus, a
  // field someone changed, or was just swapped by the user's own action (its message stays
  // readable); a held region is refreshed on the first tick after it is released.

  var HOLD_AFTER_ACTION_MS = 10000;
  var liveShown = {};   // region id → the HTML last swapped in (unchanged: not swapped again)
  var liveTouched = {}; // region id → when the user's own request last swapped it
  var livePending = {}; // region id → true: changed while held

  function liveRegions(poller) {
    return (poller.dataset.liveRegions || "").split(/\s+/).filter(Boolean);
  }

  function changedField(field) {
    if (field.disabled || /^(hidden|submit|button|reset|image)$/.test(field.type)) return false;
    if (field.type === "checkbox" || field.type === "radio") {
      return field.checked !== field.defaultChecked;
    }
    if (field.tagName === "SELECT") {
      var options = Array.prototype.slice.call(field.options);
      var defaults = options.filter(function (o) { return o.defaultSelected; });
      if (!defaults.length) return field.selectedIndex > 0; // no "selected": the first is
      return options.some(function (o) { return o.selected !== o.defaultSelected; });
    }
    return field.value !== field.defaultValue;
  }

  function held(region) {
    var active = document.activeElement;
    if (active && active !== document.body && region.contains(active)) return true;
    if (Date.now() - (liveTouched[region.id] || 0) < HOLD_AFTER_ACTION_MS) return true;
    return Array.prototype.some.call(
      region.querySelectorAll("input, textarea, select"), changedField
    );
  }

  function swapRegion(region, fresh) {
    var html = fresh.outerHTML;
    if (liveShown[region.id] === html) return;
    region.querySelectorAll("[data-live-keep][id]").forEach(function (kept) {
      var slot = fresh.querySelector("#" + CSS.escape(kept.id));
      if (slot) slot.replaceWith(kept);
    });
    var node = document.importNode(fresh, true);
    region.replaceWith(node);
    liveShown[node.id] = html;
    htmx.process(node);
    tickTimes(node);
  }

  function refreshRegions(poller, doc, only) {
    liveRegions(poller).forEach(function (id) {
      if (only && !only[id]) return;
      var region = document.getElementById(id);
      if (!region) return;
      if (held(region)) { livePending[id] = true; return; }
      delete livePending[id];
      if (region.matches("[data-case-panel]")) {
        region.dispatchEvent(new CustomEvent("case-refresh"));
        return;
      }
      var fresh = doc && doc.getElementById(id);
      if (fresh) swapRegion(region, fresh);
    });
  }

  function livePoller(elt) {
    return elt && elt.matches && elt.matches("[data-live-case]") ? elt : null;
  }

  document.addEventListener("htmx:confirm", function (event) {
    var poller = livePoller(event.target);
    if (!poller) return;
    if (document.visibilityState === "hidden") { event.preventDefault(); return; }
    // Released regions that reload themselves need no answer from the poll.
    var panels = {};
    Object.keys(livePending).forEach(function (id) {
      var region = document.getElementById(id);
      if (!region) { delete livePending[id]; return; }
      if (region.matches("[data-case-panel]") && !held(region)) panels[id] = true;
    });
    if (Object.keys(panels).length) refreshRegions(poller, null, panels);
  });

  document.addEventListener("htmx:configRequest", function (event) {
    var poller = livePoller(event.detail.elt);
    if (!poller) return;
    var released = Object.keys(livePending).some(function (id) {
      var region = document.getElementById(id);
      return region && !held(region);
    });
    // A released region needs the page as it is now, not "nothing changed since".
    event.detail.parameters.since = released ? "" : poller.dataset.version;
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var poller = livePoller(event.detail.elt);
    if (!poller) return;
    event.detail.shouldSwap = false;
    if (event.detail.xhr.status !== 200) return;
    var doc = new DOMParser().parseFromString(event.detail.serverResponse, "text/html");
    var answer = doc.getElementById("case-live");
    if (!answer) return;
    var forced = !event.detail.requestConfig.parameters.since;
    refreshRegions(poller, doc, forced && poller.dataset.version === answer.dataset.version
      ? Object.assign({}, livePending) : null);
    poller.dataset.version = answer.dataset.version;
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var config = event.detail.requestConfig;
    if (!config || config.verb === "get" || !document.querySelector("[data-live-case]")) return;
    // The user's own action: the regions it swapped show its outcome; hold them a moment.
    var target = event.detail.target;
    var now = target && target.id && document.getElementById(target.id);
    var region = now && now.closest("[id]");
    var poller = document.querySelector("[data-live-case]");
    liveRegions(poller).forEach(function (id) {
      var el = document.getElementById(id);
      if (el && region && (el === region || el.contains(region) || region.contains(el))) {
        liveTouched[id] = Date.now();
      }
    });
  });

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState !== "visible") return;
    var poller = document.querySelector("[data-live-case]");
    if (poller) htmx.trigger(poller, "live-poll"); // catch up at once
  });

  // ---- Case table in the background --------------------------------------------------------
  // Cases get increasing ids: a row above the highest id seen is new. New rows are marked
  // (.is-new, also after later polls re-render them); while the tab is hidden the title
  // counts them, and critical or escalated ones (new, or escalated meanwhile) raise a
  // desktop notification when the user turned them on (/account) and the browser allows.

  var NEW_MARK_MS = 60000;
  var tableSeen = null;   // the highest case id shown so far (null: the table not seen yet)
  var tableStatus = {};   // case id → status shown by the last render
  var newSince = {};      // case id → when it appeared (marked until NEW_MARK_MS after seen)
  var hiddenCount = 0;
  var baseTitle = document.title;

  function tableRows(table) {
    return Array.prototype.slice.call(table.querySelectorAll("tr[data-case-id]"));
  }

  function rowStatus(row) {
    var badge = row.querySelector(".status .badge");
    return badge ? badge.textContent.trim() : "";
  }

  function notify(table, row, why) {
    if (table.dataset.notifyDesktop !== "on" || !("Notification" in window)) return;
    if (Notification.permission !== "granted") return;
    var link = row.querySelector("td.title a");
    var note = new Notification("#" + row.dataset.caseId + " " + (link ? link.textContent : ""), {
      body: why + " · Casehook", tag: "casehook-case-" + row.dataset.caseId,
    });
    note.onclick = function () { window.focus(); window.location.href = row.dataset.href; };
  }

  function showTitle() {
    document.title = (hiddenCount ? "(" + hiddenCount + ") " : "") + baseTitle;
  }

  function tableRendered(table) {
    var hidden = document.visibilityState === "hidden";
    var now = Date.now();
    var first = tableSeen === null;
    var seen = tableSeen; // rows come in any order: compare each with the previous render
    tableRows(table).forEach(function (row) {
      var id = parseInt(row.dataset.caseId, 10);
      var status = rowStatus(row);
      if (!first && id > seen) {
        newSince[id] = hidden ? Infinity : now; // marked until the tab has been seen a while
        if (hidden) {
          hiddenCount += 1;
          if (row.classList.contains("sev-critical") || status === "escalated") {
            notify(table, row, row.classList.contains("sev-critical") ? "New critical case" : "New escalated case");
          }
        }
      } else if (hidden && status === "escalated" && tableStatus[id] && tableStatus[id] !== "escalated") {
        notify(table, row, "Escalated");
      }
      tableStatus[id] = status;
      tableSeen = Math.max(tableSeen || 0, id);
      if (newSince[id] !== undefined && now - newSince[id] < NEW_MARK_MS) row.classList.add("is-new");
    });
    if (first && tableSeen === null) tableSeen = 0;
    showTitle();
  }

  var lastTable = null; // each swap of #case-table (outerHTML) is a new element
  function tableMaybeRendered() {
    var table = document.getElementById("case-table");
    if (table && table !== lastTable) {
      lastTable = table;
      tableRendered(table);
    }
  }
  document.addEventListener("DOMContentLoaded", tableMaybeRendered);
  document.addEventListener("htmx:afterSettle", tableMaybeRendered);

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState !== "visible" || !document.getElementById("case-table")) return;
    hiddenCount = 0;
    showTitle();
    var now = Date.now();
    Object.keys(newSince).forEach(function (id) {
      if (newSince[id] === Infinity) newSince[id] = now; // seen from now on
    });
  });

  document.addEventListener("change", function (event) {
    var box = event.target.closest && event.target.closest("input[data-ask-notification]");
    if (!box || !box.checked || !("Notification" in window)) return;
    var state = document.getElementById(box.dataset.askNotification);
    if (Notification.permission === "default") {
      Notification.requestPermission().then(function (answer) {
        if (state) state.textContent = "Browser permission: " + answer + ".";
      });
    } else if (state) {
      state.textContent = "Browser permission: " + Notification.permission + ".";
    }
  });
})();
