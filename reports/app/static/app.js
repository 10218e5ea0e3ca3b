// realbench app: the board (filter, sort, columns, paging, plot) and sortable tables. Written for realbench, no
// dependencies. Page state lives in the URL's query string, so every view can be shared as a link.
"use strict";
var realbench = (function () {
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function cmp(a, b, numeric) {
    if (a === null || a === "" || a === undefined) return (b === null || b === "" || b === undefined) ? 0 : 1;
    if (b === null || b === "" || b === undefined) return -1;
    if (numeric) return Number(a) - Number(b);
    return String(a).localeCompare(String(b));
  }

  function sortable() {
    document.querySelectorAll("table.sortable").forEach(function (table) {
      table.querySelectorAll("th").forEach(function (th, col) {
        th.addEventListener("click", function () {
          var numeric = th.dataset.type === "num", desc = th.dataset.desc !== "1";
          th.dataset.desc = desc ? "1" : "0";
          var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
          rows.sort(function (r1, r2) {
            var c1 = r1.cells[col], c2 = r2.cells[col];
            var v1 = c1.dataset.v !== undefined ? c1.dataset.v : c1.textContent;
            var v2 = c2.dataset.v !== undefined ? c2.dataset.v : c2.textContent;
            var c = cmp(v1, v2, numeric);
            return desc ? -c : c;
          });
          rows.forEach(function (r) { body.appendChild(r); });
        });
      });
    });
  }

  function board() {
    var cfg = JSON.parse(document.getElementById("page-data").textContent);
    var params = new URLSearchParams(location.search);
    var state = { q: params.get("q") || "", source: params.get("source") || "", min_n: params.get("min_n") || "",
                  sort: params.get("sort") || "", desc: params.get("desc") === "1", page: +(params.get("page") || 1),
                  cols: params.get("cols") ? params.get("cols").split(",") : null, selected: params.get("model") };
    var data, rows = [], PAGE = 100;
    fetch(cfg.api).then(function (r) { return r.json(); }).then(function (d) {
      data = d;
      if (!state.cols) state.cols = d.shown.slice();
      var source = document.getElementById("source");
      d.sources.forEach(function (s) { source.appendChild(el("option", { value: s }, s)); });
      var chooser = document.getElementById("columns");
      d.columns.forEach(function (c) {
        var box = el("input", { type: "checkbox", value: c.id });
        box.checked = state.cols.indexOf(c.id) >= 0;
        box.addEventListener("change", function () {
          state.cols = d.columns.map(function (x) { return x.id; }).filter(function (id) {
            return chooser.querySelector('input[value="' + id + '"]').checked; });
          render();
        });
        var label = el("label"); label.appendChild(box); label.appendChild(document.createTextNode(" " + c.header));
        chooser.appendChild(label);
      });
      document.getElementById("q").value = state.q;
      source.value = state.source;
      document.getElementById("min_n").value = state.min_n;
      ["q", "source", "min_n"].forEach(function (id) {
        document.getElementById(id).addEventListener("input", function (e) {
          state[id] = e.target.value; state.page = 1; state.selected = null; render(); });
      });
      document.getElementById("prev").addEventListener("click", function () { state.page--; render(); });
      document.getElementById("next").addEventListener("click", function () { state.page++; render(); });
      render();
    });

    function filtered() {
      var q = state.q.toLowerCase(), minN = state.min_n === "" ? null : Number(state.min_n);
      var out = data.rows.filter(function (r) {
        return (!q || r.model.toLowerCase().indexOf(q) >= 0) && (!state.source || r.source === state.source) &&
               (minN === null || r.n >= minN);
      });
      if (state.sort) {
        var col = data.columns.filter(function (c) { return c.id === state.sort; })[0];
        out = out.slice().sort(function (a, b) {
          var i = col && col.numeric ? 1 : 0, c = cmp(a.cells[state.sort][i], b.cells[state.sort][i], col && col.numeric);
          return state.desc ? -c : c;
        });
      }
      return out;
    }

    function saveUrl() {
      var p = new URLSearchParams();
      if (state.q) p.set("q", state.q);
      if (state.source) p.set("source", state.source);
      if (state.min_n) p.set("min_n", state.min_n);
      if (state.sort) { p.set("sort", state.sort); if (state.desc) p.set("desc", "1"); }
      if (state.page > 1) p.set("page", state.page);
      if (state.cols.join(",") !== data.shown.join(",")) p.set("cols", state.cols.join(","));
      if (state.selected) p.set("model", state.selected);
      history.replaceState(null, "", location.pathname + (p.toString() ? "?" + p : ""));
    }

    function render() {
      rows = filtered();
      var pages = Math.max(1, Math.ceil(rows.length / PAGE));
      if (state.selected) {
        var at = rows.map(function (r) { return r.model; }).indexOf(state.selected);
        if (at >= 0) state.page = Math.floor(at / PAGE) + 1;
      }
      state.page = Math.min(Math.max(1, state.page), pages);
      var cols = data.columns.filter(function (c) { return state.cols.indexOf(c.id) >= 0; });
      var thead = document.querySelector("#board thead"), tbody = document.querySelector("#board tbody");
      thead.innerHTML = ""; tbody.innerHTML = "";
      var tr = el("tr");
      cols.forEach(function (c) {
        var th = el("th", { "data-col": c.id }, c.header + (state.sort === c.id ? (state.desc ? " ▼" : " ▲") : ""));
        th.addEventListener("click", function () {
          state.desc = state.sort === c.id ? !state.desc : c.numeric;
          state.sort = c.id; render();
        });
        tr.appendChild(th);
      });
      thead.appendChild(tr);
      rows.slice((state.page - 1) * PAGE, state.page * PAGE).forEach(function (r) {
        var row = el("tr", { "data-model": r.model });
        if (r.model === state.selected) row.className = "selected";
        cols.forEach(function (c) {
          var td = el("td", c.numeric ? { "class": "num", "data-col": c.id } : { "data-col": c.id });
          if (c.id === "model" && r.run) {
            var a = el("a", { href: "/runs/" + encodeURIComponent(r.run.name) + "?dataset=" +
                              encodeURIComponent(r.run.dataset) + "&labels=" + encodeURIComponent(r.run.labels) },
                       r.cells[c.id][0]);
            td.appendChild(a);
          } else td.textContent = r.cells[c.id][0];
          row.appendChild(td);
        });
        tbody.appendChild(row);
      });
      document.getElementById("count").textContent = rows.length + " of " + data.rows.length + " rows";
      document.getElementById("page").textContent = "page " + state.page + " of " + pages;
      document.getElementById("prev").disabled = state.page <= 1;
      document.getElementById("next").disabled = state.page >= pages;
      plot();
      saveUrl();
      var sel = document.querySelector("#board tr.selected");
      if (sel) sel.scrollIntoView({ block: "center" });
    }

    function plot() {
      var W = 640, H = 420, M = 48, NS = "http://www.w3.org/2000/svg";
      var xs = data.rows.map(function (r) { return r.x; }), ys = data.rows.map(function (r) { return r.y; });
      var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs), y0 = Math.min.apply(null, ys),
          y1 = Math.max.apply(null, ys);
      if (x1 === x0) { x0 -= 1; x1 += 1; } if (y1 === y0) { y0 -= 1; y1 += 1; }
      function sx(v) { return M + (v - x0) / (x1 - x0) * (W - 2 * M); }
      function sy(v) { return H - M - (v - y0) / (y1 - y0) * (H - 2 * M); }
      function svg(tag, attrs, text) {
        var e = document.createElementNS(NS, tag);
        for (var k in attrs) e.setAttribute(k, attrs[k]);
        if (text !== undefined) e.textContent = text;
        return e;
      }
      var root = svg("svg", { width: W, height: H, role: "img" });
      root.appendChild(svg("text", { x: W / 2, y: H - 8, "text-anchor": "middle" }, data.x_label));
      root.appendChild(svg("text", { x: 12, y: H / 2, transform: "rotate(-90 12 " + H / 2 + ")",
                                     "text-anchor": "middle" }, data.y_label));
      [[x0, "x"], [x1, "x"], [y0, "y"], [y1, "y"]].forEach(function (t) {
        root.appendChild(t[1] === "x" ? svg("text", { x: sx(t[0]), y: H - M + 16, "text-anchor": "middle" }, t[0].toFixed(1))
                                      : svg("text", { x: M - 4, y: sy(t[0]), "text-anchor": "end" }, t[0].toFixed(1)));
      });
      var shown = {};
      rows.forEach(function (r) { shown[r.model] = true; });
      data.rows.forEach(function (r) {
        if (!shown[r.model]) return;
        var c = svg("circle", { cx: sx(r.x), cy: sy(r.y), r: r.model === state.selected ? 6 : 3.5,
                                "class": r.model === state.selected ? "hit" : (r.source === "external table" ? "" : "own"),
                                "data-model": r.model });
        c.appendChild(svg("title", {}, r.model + ": " + r.x.toFixed(2) + " / " + r.y.toFixed(2)));
        c.addEventListener("click", function () { state.selected = r.model; render(); });
        root.appendChild(c);
      });
      var box = document.getElementById("plot");
      box.innerHTML = ""; box.appendChild(root);
    }
  }

  return { board: board, sortable: sortable };
})();
