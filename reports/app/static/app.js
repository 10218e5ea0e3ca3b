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
      var filtering = rows.length < data.rows.length;
      var order = data.rows.filter(function (r) { return !shown[r.model]; }).concat(rows.filter(function (r) {
        return r.model !== state.selected; }), rows.filter(function (r) { return r.model === state.selected; }));
      order.forEach(function (r) {  // dimmed points first, so that the shown ones are on top and can be clicked
        var cls = r.model === state.selected ? "hit" : (!shown[r.model] ? "dim" : (r.source === "external table" ? "" : "own"));
        if (filtering && shown[r.model] && r.model !== state.selected) cls += " match";
        var c = svg("circle", { cx: sx(r.x), cy: sy(r.y), r: r.model === state.selected || (filtering && shown[r.model]) ? 6 : 3.5,
                                "class": cls, "data-model": r.model });
        c.appendChild(svg("title", {}, r.model + ": " + r.x.toFixed(2) + " / " + r.y.toFixed(2)));
        c.addEventListener("click", function () { state.selected = r.model; render(); });
        root.appendChild(c);
      });
      var box = document.getElementById("plot");
      box.innerHTML = ""; box.appendChild(root);
    }
  }

  // The review screen: one task at a time, keyboard only. The next task's image is loaded while this one is
  // answered; an answer is shown as stored only once the server says it is on disk.
  function review() {
    var cfg = JSON.parse(document.getElementById("page-data").textContent);
    var queue = [], task = null, focus = 0, marks = {}, history = [], busy = false, preload = new Image();
    var VALUES = { y: "yes", m: "maybe", n: "no" };
    function api(path) { return cfg.api + path + (path.indexOf("?") < 0 ? "?" : "&") + "token=" + encodeURIComponent(cfg.token); }
    function status(text) { document.getElementById("status").textContent = text; }
    function progress(done) { document.getElementById("progress").textContent = done + " of " + cfg.total + " tasks answered"; }
    function uid() {
      var a = new Uint8Array(16); crypto.getRandomValues(a);
      return Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
    }
    function load() {
      return fetch(api("/next")).then(function (r) { return r.json(); }).then(function (d) {
        queue = d.tasks; progress(d.done);
        if (queue[1] && queue[1].image) preload.src = queue[1].image;
        return d;
      });
    }
    function show(t) {
      task = t; focus = 0; marks = {};
      if (!t) { document.getElementById("labels").innerHTML = ""; document.getElementById("image").removeAttribute("src");
                document.getElementById("key").textContent = ""; status("all tasks answered"); return; }
      for (var k in t.answers) marks[k] = t.answers[k];
      var img = document.getElementById("image");
      if (t.image) img.src = t.image; else img.removeAttribute("src");
      var key = document.getElementById("key"); key.textContent = "";
      var link = el("a", { href: t.sample, target: "_blank" }, t.key);
      key.appendChild(document.createTextNode("suspect #" + t.rank + ", sample ")); key.appendChild(link);
      key.appendChild(document.createTextNode(", labelled " + t.given_name));
      render();
    }
    function render() {
      var list = document.getElementById("labels"); list.innerHTML = "";
      task.labels.forEach(function (label, i) {
        var li = el("li", { "data-label": label, "class": (i === focus ? "focus " : "") + (marks[label] || "") });
        li.appendChild(el("span", { "class": "name" }, task.names[i]));
        li.appendChild(el("span", { "class": "mark" }, marks[label] || "?"));
        list.appendChild(li);
      });
    }
    function submit() {
      if (!task || busy) return;
      var missing = task.labels.filter(function (l) { return !marks[l]; });
      if (missing.length) { status("answer every label first (" + missing.length + " left)"); return; }
      busy = true;
      var answers = {}; task.labels.forEach(function (l) { answers[l] = marks[l]; });
      var body = JSON.stringify({ token: cfg.token, task_id: task.task_id, answers: answers, submission: uid() });
      var done = task;
      status("saving…");
      fetch(cfg.api + "/answer", { method: "POST", headers: { "Content-Type": "application/json" }, body: body })
        .then(function (r) { return r.json().then(function (d) { return [r.ok, d]; }); })
        .then(function (res) {
          busy = false;
          if (!res[0]) { status(res[1].error); return; }
          history.push(done.task_id); progress(res[1].done); status("stored");
          var following = queue.filter(function (t) { return t.task_id !== done.task_id; })[0] || null;
          show(following);
          load().then(function () { if (!task || task.task_id !== (queue[0] && queue[0].task_id)) show(queue[0]); });
        }, function () { busy = false; status("not stored: the server did not answer; press Enter to try again"); });
    }
    function undo() {
      if (!history.length || busy) return;
      var id = history.pop();
      fetch(api("/task/" + encodeURIComponent(id))).then(function (r) { return r.json(); }).then(function (t) {
        show(t); status("undo: answer task " + t.task_id + " again");
      });
    }
    document.addEventListener("keydown", function (e) {
      if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT" || !task) return;
      var k = e.key;
      if (VALUES[k]) { marks[task.labels[focus]] = VALUES[k]; focus = Math.min(focus + 1, task.labels.length - 1); render(); }
      else if (k === "ArrowDown" || k === "j") { focus = Math.min(focus + 1, task.labels.length - 1); render(); }
      else if (k === "ArrowUp" || k === "k") { focus = Math.max(focus - 1, 0); render(); }
      else if (k === "0") { task.labels.forEach(function (l) { marks[l] = "no"; }); render(); submit(); }
      else if (k === "Enter") submit();
      else if (k === "u" || k === "Backspace") undo();
      else return;
      e.preventDefault();
    });
    document.getElementById("agg-go").addEventListener("click", function () {
      var out = document.getElementById("agg-result"); out.textContent = "aggregating…";
      fetch(cfg.api + "/aggregate", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token: cfg.token, name: document.getElementById("agg-name").value,
                               aggregator: document.getElementById("agg-model").value,
                               threshold: document.getElementById("agg-threshold").value }) })
        .then(function (r) { return r.json().then(function (d) { return [r.ok, d]; }); })
        .then(function (res) {
          if (!res[0]) { out.textContent = res[1].error; return; }
          out.textContent = ""; out.appendChild(el("a", { href: res[1].result, id: "agg-link" },
                                                   "label set " + res[1].label_set + ": rank changes"));
        });
    });
    load().then(function () { show(queue[0]); });
  }

  return { board: board, sortable: sortable, review: review };
})();
