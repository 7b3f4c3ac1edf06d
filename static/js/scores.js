/* The score editor: a row per input (label, weight slider, group) written into the inputs JSON,
   and a live preview (plotly histogram, tier counts, top and bottom 10) redrawn as weights
   change. Sources and transforms are edited in the JSON; "+ Input" adds one with defaults. */
(function () {
  "use strict";
  var form = document.getElementById("score-editor");
  if (!form) { return; }
  var pickers = JSON.parse(document.getElementById("score-pickers").textContent);
  var rows = document.getElementById("score-inputs");
  var json = document.getElementById("score-inputs-json");
  var objectSelect = document.getElementById("score-object");
  var addSource = document.getElementById("add-source");
  var timer = null;
  var FONT = '-apple-system, BlinkMacSystemFont, "Segoe UI", Inter, "Helvetica Neue", Arial, sans-serif';

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) { node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }
  function inputs() { try { var v = JSON.parse(json.value); return Array.isArray(v) ? v : null; } catch (e) { return null; } }
  function describe(item) {
    var s = item.source || {};
    var t = typeof item.transform === "string" ? item.transform : (item.transform || {}).type;
    return (s.field || s.metric || (s.signal ? "signal" : "?")) + " · " + (t || "?");
  }

  /* One row per input: label, the weight as a slider and a number, the group. */
  function draw() {
    var list = inputs();
    rows.querySelectorAll(".input-row").forEach(function (r) { r.remove(); });
    if (!list) { return; }
    list.forEach(function (item, i) {
      var weight = item.weight === undefined ? 1 : item.weight;
      var slider = el("input", { type: "range", min: "0.5", max: "10", step: "0.5", value: String(weight), "data-part": "weight", "aria-label": "weight of input " + (i + 1) });
      var number = el("input", { type: "number", min: "0.1", max: "1000", step: "0.1", value: String(weight), "data-part": "weight-number", size: "4", "aria-label": "weight of input " + (i + 1) + " (number)" });
      var label = el("input", { type: "text", value: item.label || "", placeholder: describe(item), "data-part": "label", "aria-label": "label of input " + (i + 1) });
      var group = el("input", { type: "text", value: item.group || "", placeholder: "group", size: "10", "data-part": "group", "aria-label": "group of input " + (i + 1) });
      var remove = el("button", { type: "button", "class": "button", "aria-label": "remove input " + (i + 1) }, ["×"]);
      var r = el("div", { "class": "input-row", "data-index": String(i) }, [label, slider, number, group, remove,
        el("span", { "class": "sub" }, [describe(item)])]);
      remove.addEventListener("click", function () { var l = inputs(); l.splice(i, 1); json.value = JSON.stringify(l, null, 1); draw(); schedule(); });
      rows.appendChild(r);
    });
  }
  function fromRow(r, changed) {
    var list = inputs(), i = parseInt(r.getAttribute("data-index"), 10);
    if (!list || !list[i]) { return; }
    var part = changed.getAttribute("data-part");
    if (part === "weight" || part === "weight-number") {
      var w = Number(changed.value);
      r.querySelector(part === "weight" ? '[data-part="weight-number"]' : '[data-part="weight"]').value = String(w);
      list[i].weight = w;
    } else if (changed.value) { list[i][part] = changed.value; } else { delete list[i][part]; }
    json.value = JSON.stringify(list, null, 1);
    schedule();
  }

  /* "+ Input": a source from the pickers, with a transform that fits its type. */
  function sources() {
    var out = [];
    (pickers.objects[objectSelect.value] || []).forEach(function (f) { out.push(["field:" + f.key, f.label + " (" + f.type.toLowerCase() + ")"]); });
    pickers.metrics.forEach(function (m) { if (m !== "active_user_share" || objectSelect.value === "account") { out.push(["metric:" + m, m.replace(/_/g, " ")]); } });
    pickers.signals.forEach(function (s) { if (s.object === objectSelect.value) { out.push(["signal:" + s.id, "in " + s.name]); } });
    addSource.textContent = "";
    out.forEach(function (o) { addSource.appendChild(el("option", { value: o[0] }, [o[1]])); });
  }
  function newInput(choice) {
    var kind = choice.split(":")[0], key = choice.slice(kind.length + 1);
    if (kind === "signal") { return { source: { signal: key }, transform: "bool", weight: 1 }; }
    if (kind === "metric") {
      if (key === "days_since_last_seen") { return { source: { metric: key }, transform: { type: "bands", bands: [{ max: 1, points: 1 }, { max: 7, points: 0.5 }, { points: 0 }] }, weight: 1 }; }
      if (key === "active_user_share") { return { source: { metric: key, window_days: 30 }, transform: "minmax", weight: 1 }; }
      return { source: { metric: key, window_days: 30 }, transform: { type: "minmax", clip: [5, 95] }, weight: 1 };
    }
    var f = (pickers.objects[objectSelect.value] || []).filter(function (x) { return x.key === key; })[0] || { type: "STRING" };
    var transform = { NUMBER: { type: "minmax", clip: [5, 95] }, BOOLEAN: "bool", DATE: { type: "recency", days: 90 }, DATETIME: { type: "recency", days: 90 } }[f.type]
      || { type: "map", values: {}, default: 0 };
    return { source: { field: key }, transform: transform, weight: 1 };
  }

  function schedule() { clearTimeout(timer); timer = setTimeout(preview, 250); }
  function preview() {
    var problems = document.getElementById("preview-problems");
    var count = document.getElementById("preview-count");
    fetch(form.getAttribute("data-preview"), { method: "POST", body: new FormData(form), credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        problems.textContent = "";
        if (data.problems) {
          data.problems.forEach(function (p) { problems.appendChild(el("li", {}, [p])); });
          return;
        }
        count.textContent = data.count + " scored now";
        var chart = document.getElementById("score-histogram");
        if (window.Plotly) {
          var layout = Object.assign({ font: { family: FONT, size: 12, color: "#475467" } }, data.figure.layout);
          window.Plotly.react(chart, data.figure.data, layout, { displayModeBar: false, responsive: true });
        }
        chart.setAttribute("data-counts", data.buckets.map(function (b) { return b.count; }).join(","));
        var tiers = document.getElementById("preview-tiers");
        tiers.textContent = "";
        data.tiers.forEach(function (t) { tiers.appendChild(el("tr", {}, [el("td", {}, [t.name === null ? "(no tier)" : t.name]), el("td", { "class": "num" }, [String(t.count)])])); });
        ["top", "bottom"].forEach(function (which) {
          var list = document.getElementById("preview-" + which);
          list.textContent = "";
          data[which].forEach(function (r) { list.appendChild(el("li", {}, [(r.name || r.id) + " · " + r.score.toFixed(1) + (r.tier ? " · " + r.tier : "")])); });
        });
      });
  }

  rows.addEventListener("input", function (event) { var r = event.target.closest(".input-row"); if (r) { fromRow(r, event.target); } });
  json.addEventListener("input", function () { draw(); schedule(); });
  document.getElementById("score-tiers").addEventListener("input", schedule);
  objectSelect.addEventListener("change", function () { sources(); schedule(); });
  form.querySelector('[name="name"]').addEventListener("input", function () { /* not in the preview */ });
  document.getElementById("add-input").addEventListener("click", function () {
    var list = inputs() || [];
    list.push(newInput(addSource.value));
    json.value = JSON.stringify(list, null, 1);
    draw(); schedule();
  });
  sources();
  draw();
  schedule();
}());
