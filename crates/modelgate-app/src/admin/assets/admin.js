// modelgate admin UI: progressive enhancement only — every page works
// without this script. Served from /admin/assets (CSP: script-src 'self').
"use strict";

function fmtTimes(root) {
  root.querySelectorAll("td[data-ts]").forEach(function (td) {
    var ms = Number(td.getAttribute("data-ts"));
    if (ms > 0) { td.textContent = new Date(ms).toLocaleTimeString(); }
  });
}

// The "Require token authentication" switches save when toggled.
function autoSubmitSwitches() {
  document.querySelectorAll("form.switch input[type=checkbox]").forEach(function (box) {
    box.addEventListener("change", function () { box.form.submit(); });
  });
}

function cell(tr, text) {
  var td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  tr.appendChild(td);
  return td;
}

// The live decision view: server-sent events, filtered by the page's query.
function liveDecisions() {
  var table = document.getElementById("decisions");
  if (!table || !window.EventSource) { return; }
  var body = table.tBodies[0];
  var seen = new Set();
  body.querySelectorAll("tr[data-rid]").forEach(function (tr) { seen.add(tr.getAttribute("data-rid")); });
  var status = document.getElementById("live-status");
  var src = new EventSource("/admin/api/decisions/stream" + window.location.search);
  src.onopen = function () { status.textContent = "Live: new decisions appear at the top."; };
  src.onerror = function () { status.textContent = "Live stream interrupted; reconnecting…"; };
  src.addEventListener("decision", function (ev) {
    var d;
    try { d = JSON.parse(ev.data); } catch (e) { return; }
    if (seen.has(d.request_id)) { return; }
    seen.add(d.request_id);
    var tr = document.createElement("tr");
    tr.className = "d-" + d.decision;
    tr.setAttribute("data-rid", d.request_id);
    tr.setAttribute("data-identity", d.identity || "");
    cell(tr, new Date(d.ts_ms).toLocaleTimeString());
    cell(tr, d.decision);
    cell(tr, d.status);
    cell(tr, d.method);
    cell(tr, d.path);
    cell(tr, d.model);
    cell(tr, d.identity);
    cell(tr, d.reason);
    cell(tr, Number(d.total_ms).toFixed(1));
    body.insertBefore(tr, body.firstChild);
    while (body.rows.length > 200) { body.deleteRow(body.rows.length - 1); }
  });
}

document.addEventListener("DOMContentLoaded", function () {
  fmtTimes(document);
  autoSubmitSwitches();
  liveDecisions();
});
