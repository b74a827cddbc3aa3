// Pipeline board drag and drop. Progressive enhancement: every card also has a plain
// "Move to" form that works without this script.
//
// On drop the card's move is POSTed (fetch, form-encoded, CSRF token from the board's
// data-csrf) to the board's data-move-url. The server answers JSON: {ok, version, stage} or,
// for a stale version, a 409 with a message. Afterwards the board is re-fetched so the column
// counts and totals are right.
(function () {
  "use strict";

  var dragged = null;

  function board() {
    return document.getElementById("board");
  }

  function status(text, tone) {
    var el = document.getElementById("board-status");
    if (!el) return;
    el.textContent = text;
    el.classList.remove("ok", "warn", "error");
    if (tone) el.classList.add(tone);
    el.hidden = !text;
  }

  function columnOf(el) {
    return el && el.closest ? el.closest(".column[data-stage]") : null;
  }

  function stageLabel(column) {
    var h = column && column.querySelector("h2 span");
    return h ? h.textContent : column ? column.getAttribute("data-stage") : "";
  }

  function clearTargets() {
    document.querySelectorAll(".column.drop-target").forEach(function (c) { c.classList.remove("drop-target"); });
  }

  // Re-renders the board from the server (the board fragment, thanks to the hx-request
  // header), keeping keyboard focus on the card that had it.
  function refresh(focusId) {
    var b = board();
    if (!b) return Promise.resolve();
    var url = b.getAttribute("data-board-url") || window.location.pathname;
    return fetch(url, { credentials: "same-origin", headers: { "HX-Request": "true", "Accept": "text/html" } })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("board-wrap");
        var current = document.getElementById("board-wrap");
        if (!fresh || !current) throw new Error("no board in response");
        current.replaceWith(document.importNode(fresh, true));
        if (focusId) {
          var card = document.querySelector('.deal-card[data-deal-id="' + focusId + '"]');
          if (card) card.focus();
        }
      })
      .catch(function () {
        window.location.reload();
      });
  }

  function move(card, column) {
    var b = board();
    if (!b || !card || !column) return;
    var from = columnOf(card);
    var stage = column.getAttribute("data-stage");
    if (from === column) return;
    var id = card.getAttribute("data-deal-id");
    var name = (card.querySelector("a") || card).textContent.trim();
    var body = new URLSearchParams();
    body.set("id", id);
    body.set("version", card.getAttribute("data-version") || "");
    body.set("stage", stage);
    status("Moving " + name + "…", null);
    fetch(b.getAttribute("data-move-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-CSRF-Token": b.getAttribute("data-csrf") || "",
        "X-Requested-With": "fetch",
        "Accept": "application/json"
      },
      body: body.toString()
    })
      .then(function (r) {
        return r.json().then(function (j) { return { ok: r.ok, body: j }; }, function () { return { ok: false, body: {} }; });
      })
      .then(function (res) {
        if (res.ok && res.body.ok) {
          card.setAttribute("data-version", String(res.body.version));
          var v = card.querySelector('input[name="version"]');
          if (v) v.value = String(res.body.version);
          var sel = card.querySelector('select[name="stage"]');
          if (sel) sel.value = res.body.stage;
          var list = column.querySelector("[data-cards]") || column;
          list.appendChild(card);
          status("Moved " + name + " to " + stageLabel(column) + ".", "ok");
          return refresh(id);
        }
        status(res.body.message || "The deal could not be moved. The board has been reloaded.", "warn");
        return refresh(id);
      })
      .catch(function () {
        status("The move could not be saved. Check your connection and try again.", "error");
      });
  }

  document.addEventListener("dragstart", function (e) {
    var card = e.target && e.target.closest ? e.target.closest('.deal-card[draggable="true"]') : null;
    if (!card) return;
    dragged = card;
    card.classList.add("dragging");
    if (e.dataTransfer) {
      try {
        e.dataTransfer.effectAllowed = "move";
        e.dataTransfer.setData("text/plain", card.getAttribute("data-deal-id"));
      } catch (err) { /* some browsers refuse custom data; the card is remembered anyway */ }
    }
  });

  document.addEventListener("dragenter", function (e) {
    var col = columnOf(e.target);
    if (!col || !dragged) return;
    e.preventDefault();
    clearTargets();
    col.classList.add("drop-target");
  });

  document.addEventListener("dragover", function (e) {
    var col = columnOf(e.target);
    if (!col || !dragged) return;
    e.preventDefault();
    if (e.dataTransfer) e.dataTransfer.dropEffect = "move";
    if (!col.classList.contains("drop-target")) {
      clearTargets();
      col.classList.add("drop-target");
    }
  });

  document.addEventListener("dragleave", function (e) {
    var col = columnOf(e.target);
    if (col && !col.contains(e.relatedTarget)) col.classList.remove("drop-target");
  });

  document.addEventListener("drop", function (e) {
    var col = columnOf(e.target);
    if (!col) return;
    e.preventDefault();
    var card = dragged;
    if (!card && e.dataTransfer) {
      var id = e.dataTransfer.getData("text/plain");
      if (id) card = document.querySelector('.deal-card[data-deal-id="' + id.replace(/[^0-9a-f-]/gi, "") + '"]');
    }
    clearTargets();
    if (card) move(card, col);
  });

  document.addEventListener("dragend", function () {
    if (dragged) dragged.classList.remove("dragging");
    dragged = null;
    clearTargets();
  });
})();
