/* The signal builder: condition rows that write the definition JSON, and a live preview.
   Plain DOM, no chart library; every control is a native input, so the keyboard works.
   On a signal's page: the counts and history follow what the worker writes, without a reload. */
(function () {
  "use strict";
  var feed = document.getElementById("signal-history");
  if (!feed || !feed.getAttribute("data-live")) { return; }
  var shown = { "members-now": "members", "entered-7d": "entered", "exited-7d": "exited" };
  function poll() {
    fetch(feed.getAttribute("data-live"), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        Object.keys(shown).forEach(function (id) {
          var node = document.getElementById(id);
          if (node) { node.textContent = data.counts[shown[id]].toLocaleString(); }
        });
        // Both rendered (and escaped) by the server's templates, as the page was.
        feed.innerHTML = data.feed;
        var members = document.querySelector("#signal-members tbody");
        if (members) { members.innerHTML = data.members; }
      })
      .catch(function () { /* the next poll tries again */ })
      .then(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 3000);
}());

(function () {
  "use strict";
  var form = document.getElementById("signal-builder");
  if (!form) { return; }
  var pickers = JSON.parse(document.getElementById("signal-pickers").textContent);
  var rows = document.getElementById("condition-rows");
  var json = document.getElementById("signal-conditions");
  var objectSelect = document.getElementById("signal-object");
  var timer = null;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) { node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }
  function select(name, options, value, label) {
    var s = el("select", { "data-part": name, "aria-label": label || name });
    options.forEach(function (o) {
      var opt = el("option", { value: o[0] }, [o[1]]);
      if (String(o[0]) === String(value)) { opt.selected = true; }
      s.appendChild(opt);
    });
    return s;
  }
  function input(name, value, label, type) {
    return el("input", { "data-part": name, value: value === undefined ? "" : value, "aria-label": label, type: type || "text", size: "8" });
  }
  function fields() { return pickers.objects[objectSelect.value] || []; }
  function fieldOf(key) { return fields().filter(function (f) { return f.key === key; })[0]; }

  function row(kind, c) {
    c = c || {};
    var r = el("div", { "class": "condition-row", "data-kind": kind });
    var fieldOptions = fields().map(function (f) { return [f.key, f.label]; });
    if (kind === "dimension") {
      var first = c.field || (fieldOptions[0] || [""])[0];
      var f = fieldOf(first) || { ops: ["eq"] };
      r.appendChild(select("field", fieldOptions, first, "field"));
      r.appendChild(select("op", f.ops.map(function (o) { return [o, o.replace(/_/g, " ")]; }), c.op, "operator"));
      r.appendChild(input("value", c.value === undefined ? "" : (Array.isArray(c.value) ? c.value.join(",") : c.value), "value"));
    } else if (kind === "metric") {
      r.appendChild(select("metric", pickers.metrics.map(function (m) { return [m, m.replace(/_/g, " ")]; }), c.metric || "active_users", "metric"));
      r.appendChild(select("event", [["", "any event"]].concat(pickers.events.map(function (e) { return [e, e]; })), c.event || "", "event"));
      r.appendChild(input("property", c.property || "", "property (sum)"));
      r.appendChild(input("window_days", c.window_days || 7, "window days", "number"));
      r.appendChild(input("offset_days", c.offset_days || 0, "offset days", "number"));
      r.appendChild(select("op", [["gte", "≥"], ["gt", ">"], ["lte", "≤"], ["lt", "<"], ["eq", "="], ["ne", "≠"]], c.op || "gte", "operator"));
      r.appendChild(input("value", c.value === undefined ? 3 : c.value, "value", "number"));
      r.appendChild(select("compare", [["", "value"], ["previous", "% change vs previous"]], c.compare || "", "compare"));
    } else {
      r.appendChild(select("field", fieldOptions, c.field, "field"));
      r.appendChild(input("changed_to", c.changed_to || "", "changed to"));
      r.appendChild(input("within_days", c.within_days || 7, "within days", "number"));
    }
    var remove = el("button", { type: "button", "class": "btn btn-sm", "aria-label": "remove condition" }, ["×"]);
    remove.addEventListener("click", function () { r.remove(); write(); });
    r.appendChild(remove);
    rows.appendChild(r);
    return r;
  }

  function typed(f, raw, op) {
    var type = f ? f.type : "STRING";
    function one(v) {
      if (type === "NUMBER") { return Number(v); }
      if (type === "BOOLEAN") { return v === "true"; }
      return v;
    }
    if (op === "is_set" || op === "is_not_set") { return undefined; }
    if (op === "within_days" || op === "more_than_days_ago") { return parseInt(raw, 10); }
    if (op === "in" || op === "not_in" || op === "between") { return raw.split(",").map(function (v) { return one(v.trim()); }); }
    return one(raw);
  }
  function part(r, name) { var n = r.querySelector('[data-part="' + name + '"]'); return n ? n.value : ""; }
  function read(r) {
    var kind = r.getAttribute("data-kind"), c;
    if (kind === "dimension") {
      c = { field: part(r, "field"), op: part(r, "op") };
      var v = typed(fieldOf(c.field), part(r, "value"), c.op);
      if (v !== undefined) { c.value = v; }
    } else if (kind === "metric") {
      c = { metric: part(r, "metric"), op: part(r, "op"), value: Number(part(r, "value")) };
      if (c.metric !== "days_since_last_seen") { c.window_days = parseInt(part(r, "window_days"), 10); }
      if (parseInt(part(r, "offset_days"), 10)) { c.offset_days = parseInt(part(r, "offset_days"), 10); }
      if (part(r, "event")) { c.event = part(r, "event"); }
      if (part(r, "property")) { c.property = part(r, "property"); }
      if (part(r, "compare")) { c.compare = part(r, "compare"); }
    } else {
      c = { field: part(r, "field"), within_days: parseInt(part(r, "within_days"), 10) };
      if (part(r, "changed_to")) { c.changed_to = part(r, "changed_to"); } else { c.changed = true; }
    }
    return c;
  }
  function write() {
    json.value = JSON.stringify(Array.prototype.map.call(rows.querySelectorAll(".condition-row"), read));
    schedule();
  }
  function schedule() { clearTimeout(timer); timer = setTimeout(preview, 300); }

  function preview() {
    var count = document.getElementById("preview-count");
    var problems = document.getElementById("preview-problems");
    var sample = document.getElementById("preview-sample");
    fetch(form.getAttribute("data-preview"), { method: "POST", body: new FormData(form), credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        problems.textContent = ""; sample.textContent = "";
        if (data.problems) {
          count.textContent = "–";
          data.problems.forEach(function (p) { problems.appendChild(el("li", {}, [p])); });
          return;
        }
        count.textContent = data.count + (data.count === 1 ? " member" : " members");
        data.sample.forEach(function (s) {
          var values = Object.keys(s.values).map(function (k) { return k + ": " + s.values[k]; }).join(", ");
          sample.appendChild(el("tr", {}, [el("td", {}, [s.name]), el("td", {}, [values])]));
        });
      });
  }

  document.querySelectorAll("[data-add]").forEach(function (button) {
    button.addEventListener("click", function () {
      var r = row(button.getAttribute("data-add"));
      write();
      r.querySelector("select, input").focus();
    });
  });
  rows.addEventListener("change", function (event) {
    var r = event.target.closest(".condition-row");
    if (r && event.target.getAttribute("data-part") === "field" && r.getAttribute("data-kind") === "dimension") {
      var c = read(r); r.remove(); row("dimension", { field: c.field }); // ops follow the field's type
    }
    write();
  });
  rows.addEventListener("input", write);
  json.addEventListener("input", schedule);
  form.addEventListener("change", function (event) { if (!rows.contains(event.target)) { schedule(); } });
  try { JSON.parse(json.value).forEach(function (c) {
    row("metric" in c ? "metric" : ("changed_to" in c || "changed" in c ? "change" : "dimension"), c);
  }); } catch (e) { /* the textarea shows what was sent */ }
  if (json.value && json.value !== "[]") { schedule(); }
}());
