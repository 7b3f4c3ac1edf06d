/* correlated dashboard behaviour. Loaded as a static file: the CSP forbids inline scripts. */
(function () {
  "use strict";

  var FONT = '-apple-system, BlinkMacSystemFont, "Segoe UI", Inter, "Helvetica Neue", Arial, sans-serif';

  /* Charts: <div data-chart="ID"> + <script type="application/json" id="ID"> with a plotly figure. */
  function renderCharts() {
    if (!window.Plotly) { return; }
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var source = document.getElementById(el.getAttribute("data-chart"));
      if (!source) { return; }
      var figure = JSON.parse(source.textContent);
      var layout = Object.assign({ font: { family: FONT, size: 12, color: "#475467" } }, figure.layout || {});
      var config = { displayModeBar: false, responsive: true };
      window.Plotly.newPlot(el, figure.data || [], layout, config);
    });
  }

  /* Copy buttons: <button data-copy="#selector"> copies the element's text. */
  function wireCopy() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var target = document.querySelector(button.getAttribute("data-copy"));
        if (!target) { return; }
        var text = target.textContent.trim();
        var done = function () {
          var label = button.querySelector("span");
          if (label) { label.textContent = "Copied"; }
          button.classList.add("copied");
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () { selectText(target); });
        } else {
          selectText(target);
          try { document.execCommand("copy"); done(); } catch (e) { /* selection stays for Ctrl+C */ }
        }
      });
    });
  }

  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  /* Destructive forms: <form data-confirm="Really?"> asks first. */
  function wireConfirm() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  }

  /* Selects marked data-autosubmit submit their form when changed (period, page size, breakdown). */
  function wireAutosubmit() {
    document.querySelectorAll("[data-autosubmit]").forEach(function (el) {
      el.addEventListener("change", function () { el.form.submit(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    renderCharts();
    wireCopy();
    wireConfirm();
    wireAutosubmit();
  });
})();

/* List filters: a number or date dimension offers its ranges (the events breakdown's buckets)
   through a <datalist data-for="KEY">, and picking one means "in range". */
(function () {
  "use strict";
  var PLAIN = "Value, e.g. enterprise";
  function wireFilters() {
    document.querySelectorAll("[data-filter-field]").forEach(function (field) {
      var form = field.form;
      var op = form.querySelector("[data-filter-op]");
      var value = form.querySelector("[data-filter-value]");
      var update = function () {
        var ranges = null;
        form.querySelectorAll("datalist[data-for]").forEach(function (list) {
          if (list.getAttribute("data-for") === field.value) { ranges = list; }
        });
        if (ranges) {
          value.setAttribute("list", ranges.id);
          value.placeholder = "Pick a range, or low..high";
          op.value = "between";
        } else {
          value.removeAttribute("list");
          value.placeholder = PLAIN;
          if (op.value === "between") { op.value = "eq"; }
        }
      };
      field.addEventListener("change", update);
      update();
    });
  }
  document.addEventListener("DOMContentLoaded", wireFilters);
})();

/* Wide tables: a shadow on the side that has more columns, and the list's cue while any
   column is out of view (the first column stays put: position sticky). */
(function () {
  "use strict";
  function mark(wrap) {
    var more = wrap.scrollWidth - wrap.clientWidth - wrap.scrollLeft > 1;
    wrap.classList.toggle("more-right", more);
    wrap.classList.toggle("scrolled", wrap.scrollLeft > 0);
    var card = wrap.closest(".card");
    var cue = card && card.querySelector("[data-scroll-cue]");
    if (cue) { cue.hidden = wrap.scrollWidth <= wrap.clientWidth + 1; }
  }
  document.addEventListener("DOMContentLoaded", function () {
    var wraps = document.querySelectorAll(".table-wrap");
    wraps.forEach(function (wrap) {
      mark(wrap);
      wrap.addEventListener("scroll", function () { mark(wrap); }, { passive: true });
    });
    window.addEventListener("resize", function () { wraps.forEach(mark); });
  });
})();
