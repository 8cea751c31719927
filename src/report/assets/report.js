(function () {
  "use strict";
  /* The page holds the numbers (the depass-data block) and an empty #view; everything
     below the header is drawn here, from those numbers. */
  var D = JSON.parse(document.getElementById("depass-data").textContent);
  var view = document.getElementById("view");
  var first = +view.dataset.position, H = +(view.dataset.heads || 0);
  function clean(s) {  /* control characters would not show: a tab reads as a space, the rest as U+FFFD */
    return s.replace(/\t/g, " ").replace(/[\u0000-\u0009\u000b-\u001f\u007f]/g, "\ufffd");
  }
  D.pieces = D.pieces.map(clean);
  D.targetPieces = D.targetPieces.map(clean);
  D.labels = D.labels.map(clean);
  function A(m, n, k) { return D.A[(m * D.N + n) * D.K + k]; }
  function logit(n, k) { return D.logits[n * D.K + k]; }
  function g(v, p) {  /* like printf %.{p}g */
    if (v === null) return "nan";
    if (v === 0) return "0";
    var e = Math.floor(Math.log10(Math.abs(v))), s;
    if (e < -4 || e >= p) {
      s = v.toExponential(p - 1).replace(/\.?0+e/, "e").replace(/e([+-])(\d)$/, function (x, sg, d) { return "e" + sg + "0" + d; });
    } else {
      s = v.toFixed(Math.max(0, p - 1 - e));
      if (s.indexOf(".") >= 0) s = s.replace(/0+$/, "").replace(/\.$/, "");
    }
    return s;
  }
  function pct(v, t) { return Math.abs(t) > 1e-12 ? (100 * v / t).toFixed(1) + "%" : ""; }
  function colour(t) {  /* the diverging scale of every view: white at 0, red (+), blue (-) */
    var a = Math.pow(Math.min(1, Math.abs(t)), 0.65), e = t > 0 ? [202, 0, 32] : [5, 113, 176], h = "#";
    for (var c = 0; c < 3; c++) h += ("0" + Math.round(255 + (e[c] - 255) * a).toString(16)).slice(-2);
    return { bg: h, dark: a > 0.55 };
  }
  function paint(el, v, scale) {
    var s = colour(scale > 0 ? v / scale : 0);
    el.style.background = s.bg;
    el.style.color = s.dark ? "#fff" : "";
  }
  function q(s) { return "'" + s + "'"; }
  function shareText(v, n, k) {
    var p = pct(v, logit(n, k));
    return "share " + g(v, 6) + (p ? " (" + p + " of logit " + g(logit(n, k), 4) + ")" : "");
  }
  function scaleAt(n, k) {
    var s = 0;
    for (var m = 0; m < D.M - 1; m++) s = Math.max(s, Math.abs(A(m, n, k)));
    if (!(s > 0)) s = Math.abs(A(D.M - 1, n, k));
    return s > 0 && isFinite(s) ? s : 1;
  }
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }
  function make(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function add(parent, child) { parent.appendChild(child); return child; }
  function card(id, title) {
    var s = make("section", "card");
    s.id = id;
    add(s, make("h2", "", title));
    return s;
  }
  function note(text) { return make("p", "note", text); }

  /* The prompt: the selectors, the target line, the tokens and the colour legend. */
  function buildPrompt() {
    var s = card("prompt", "Prompt"), controls = add(s, make("div", "controls")), i;
    var label = add(controls, make("label", "", "Position ")), sel = add(label, make("select"));
    sel.id = "pos";
    for (i = 0; i < D.N; i++) {
      var o = add(sel, make("option", "", i + ": " + q(D.pieces[i]) + " \u2192 " + q(D.targetPieces[i * D.K])));
      o.value = String(i);
      o.defaultSelected = i === first;
    }
    if (D.K > 1) {
      label = add(controls, make("label", "", "Target "));
      sel = add(label, make("select"));
      sel.id = "tgt";
      for (i = 0; i < D.K; i++) {
        var t = add(sel, make("option", "", i + ": " + q(D.targetPieces[first * D.K + i])));
        t.value = String(i);
        t.defaultSelected = i === 0;
      }
    }
    add(s, make("p", "target-line")).id = "target-line";
    var tokens = add(s, make("div", "tokens"));
    tokens.id = "tokens";
    for (i = 0; i < D.N; i++) {
      var sp = add(tokens, make("span", "tok"));
      sp.dataset.j = String(i);
      sp.textContent = D.pieces[i];
    }
    if (D.tokenLevel) {
      var legend = add(s, make("div", "legend"));
      add(legend, make("span")).id = "legend-lo";
      add(legend, make("span", "ramp"));
      add(legend, make("span")).id = "legend-hi";
      add(legend, make("span", "", "share of each source token in the target logit (red raises it, blue lowers it; " +
        "scaled to the largest |share| at this position)"));
    } else {
      add(s, note("The framed token is the chosen position; at the " + D.level + " level the components are not " +
        "tokens, see the ranking and the heatmap below."));
    }
    return s;
  }

  /* The ranking table; show() fills its rows. */
  function buildRanking() {
    var neurons = D.level === "neuron", title;
    if (D.tokenLevel) title = "Source tokens";
    else title = "Top " + Math.min(20, D.M - 1) + " " + (neurons ? "neurons" : D.level === "head" ? "heads" : "components");
    var s = card("ranking", title + " by |share| at the chosen position");
    var table = add(s, make("table", "rank")), tr = add(add(table, make("thead")), make("tr"));
    add(tr, make("th", "num", "#"));
    if (D.showSites) {
      add(tr, make("th", "num", "layer"));
      add(tr, make("th", "num", neurons ? "neuron" : "head"));
    }
    if (D.nameColumn) add(tr, make("th", "", "component"));
    add(tr, make("th", "num", "share"));
    add(tr, make("th", "num", "of logit"));
    add(tr, make("th"));
    add(table, make("tbody")).id = "rank-body";
    add(s, note()).id = "rest-line";
    return s;
  }

  /* Head level: a layer x head grid (H heads per layer); show() colours it. */
  function buildHeads() {
    var layers = [], c, h;
    D.sites.forEach(function (s) { if (s[1] >= 0 && layers.indexOf(s[0]) < 0) layers.push(s[0]); });
    layers.sort(function (a, b) { return a - b; });
    var s = card("heads", "Heads at the chosen position (layer \u00d7 head)");
    var table = add(s, make("table", "grid")), tr = add(add(table, make("thead")), make("tr"));
    add(tr, make("th", "", "layer \\ head"));
    for (h = 0; h < H; h++) add(tr, make("th", "", String(h)));
    var body = add(table, make("tbody"));
    layers.forEach(function (l) {
      var row = add(body, make("tr"));
      add(row, make("th", "", String(l)));
      for (h = 0; h < H; h++) {
        var m = -1;
        for (c = 0; c < D.M - 1; c++) if (D.sites[c][0] === l && D.sites[c][1] === h) m = c;
        if (m < 0) {
          var na = add(row, make("td", "na", "\u2013"));
          na.title = "layer " + l + " head " + h + ": not decomposed";
        } else {
          add(row, make("td")).dataset.m = String(m);
        }
      }
    });
    add(s, note("Colours scaled to the largest |share| among the heads."));
    return s;
  }

  /* Heatmap columns: every component when there are few; else the 79 chosen components
     with the largest |share| at any position, in their order, and the rest. */
  function heatColumns() {
    var cols = [], m, n, k;
    if (D.M <= 80) { for (m = 0; m < D.M; m++) cols.push(m); return cols; }
    var peak = [];
    for (m = 0; m < D.M - 1; m++) {
      var p = 0;
      for (n = 0; n < D.N; n++) for (k = 0; k < D.K; k++) p = Math.max(p, Math.abs(A(m, n, k)));
      peak.push(p);
      cols.push(m);
    }
    cols.sort(function (a, b) { return peak[b] - peak[a] || a - b; });
    cols = cols.slice(0, 79).sort(function (a, b) { return a - b; });
    cols.push(D.M - 1);
    return cols;
  }

  /* The position x component heatmap; showHeat() colours it. */
  function buildHeatmap() {
    var cols = heatColumns(), n;
    var s = card("heatmap", "Shares by position (" + (D.tokenLevel ? "query position \u00d7 source token" :
      "position \u00d7 component") + ")");
    if (cols.length < D.M) add(s, note("Showing " + cols.length + " of " + D.M +
      " components: those with the largest |share| at any position, and the rest."));
    var table = add(add(s, make("div", "scroll")), make("table", "heat"));
    table.id = "heat";
    var tr = add(add(table, make("thead")), make("tr"));
    add(tr, make("th", "pos", "pos"));
    add(tr, make("th", "piece", "token"));
    add(tr, make("th", "piece", "\u2192 target"));
    cols.forEach(function (m) {
      var th = add(tr, make("th", "col", D.tokenLevel && m < D.N ? m + " " + D.pieces[m] : D.labels[m]));
      th.title = D.labels[m];
    });
    var body = add(table, make("tbody"));
    for (n = 0; n < D.N; n++) {
      var row = add(body, make("tr"));
      row.dataset.pos = String(n);
      add(row, make("th", "pos", String(n)));
      add(row, make("th", "piece", D.pieces[n]));
      add(row, make("th", "piece")).dataset.t = String(n);
      cols.forEach(function (m) {
        if (D.tokenLevel && m < D.N && m > n) { add(row, make("td", "c none")); return; }  /* a later token: no share */
        add(row, make("td", "c")).dataset.m = String(m);
      });
    }
    add(s, note("Each row is scaled to its largest |share| among the chosen components (the rest column may " +
      "saturate); hover a cell for its value."));
    return s;
  }

  view.appendChild(buildPrompt());
  var colsDiv = add(view, make("div", "cols")), left = add(colsDiv, make("div", "left"));
  add(left, buildRanking());
  if (D.level === "head" && D.sites.length && H > 0) add(left, buildHeads());
  add(add(colsDiv, make("div", "right")), buildHeatmap());
  var pos = document.getElementById("pos"), tgt = document.getElementById("tgt");

  function show() {
    var n = +pos.value, k = tgt ? +tgt.value : 0, scale = scaleAt(n, k), m, j;
    var tp = D.targetPieces[n * D.K + k], sum = D.sums[n * D.K + k];
    var line = document.getElementById("target-line");
    line.textContent = "";
    [["Position ", String(n), " " + q(D.pieces[n]) + " \u2192 target "], ["", q(tp), " (id " + D.targets[n * D.K + k] +
      "), logit "], ["", g(logit(n, k), 6), "; the " + D.M + " shares sum to " + g(sum, 6) + "."]].forEach(function (p) {
      line.appendChild(document.createTextNode(p[0]));
      var b = document.createElement("b"); b.textContent = p[1]; line.appendChild(b);
      line.appendChild(document.createTextNode(p[2]));
    });
    document.querySelectorAll("#tokens .tok").forEach(function (el) {
      j = +el.dataset.j;
      var who = "token " + j + " " + q(D.pieces[j]) + " (id " + D.ids[j] + ")";
      el.classList.toggle("at", j === n);
      el.classList.toggle("future", j > n);
      if (!D.tokenLevel) { el.title = who; return; }
      if (j > n) { el.style.background = ""; el.style.color = ""; el.title = who + "\nafter position " + n + ": no share in its logit"; return; }
      paint(el, A(j, n, k), scale);
      el.title = who + "\n" + shareText(A(j, n, k), n, k);
    });
    var lo = document.getElementById("legend-lo"), hi = document.getElementById("legend-hi");
    if (lo) { lo.textContent = g(-scale, 3); hi.textContent = "+" + g(scale, 3); }
    var order = [];
    for (m = 0; m < (D.tokenLevel ? n + 1 : D.M - 1); m++) order.push(m);
    order.sort(function (a, b) { return Math.abs(A(b, n, k)) - Math.abs(A(a, n, k)) || a - b; });
    order = order.slice(0, 20);
    var body = document.getElementById("rank-body"), top = order.length ? Math.abs(A(order[0], n, k)) : 0;
    body.textContent = "";
    order.forEach(function (c, i) {
      var v = A(c, n, k), tr = document.createElement("tr");
      tr.dataset.m = c;
      cell(tr, String(i + 1), "num");
      if (D.showSites) {
        var s = D.sites[c];
        cell(tr, s[0] >= 0 ? String(s[0]) : "", "num");
        cell(tr, s[1] >= 0 ? String(s[1]) : "", "num");
      }
      if (D.nameColumn) cell(tr, D.labels[c], "mono");
      cell(tr, g(v, 6), "num");
      cell(tr, pct(v, logit(n, k)), "num");
      var bar = document.createElement("div");
      bar.style.width = (top > 0 ? 100 * Math.abs(v) / top : 0).toFixed(1) + "%";
      bar.style.background = colour(v > 0 ? 1 : -1).bg;
      cell(tr, "", "bar").appendChild(bar);
      body.appendChild(tr);
    });
    var rv = A(D.M - 1, n, k), rp = pct(rv, logit(n, k));
    document.getElementById("rest-line").textContent = "rest (biases and everything the chosen components do not cover): " +
      g(rv, 6) + (rp ? " (" + rp + " of the logit)" : "") + ". Bars are scaled to the largest |share| listed.";
    var heads = document.querySelectorAll("#heads td[data-m]"), hs = 0;
    heads.forEach(function (td) { hs = Math.max(hs, Math.abs(A(+td.dataset.m, n, k))); });
    heads.forEach(function (td) {
      var c = +td.dataset.m, v = A(c, n, k), s = D.sites[c];
      paint(td, v, hs > 0 ? hs : 1);
      td.textContent = g(v, 2);
      td.title = "layer " + s[0] + " head " + s[1] + "\n" + shareText(v, n, k);
    });
    document.querySelectorAll("#heat tbody tr").forEach(function (tr) {
      tr.classList.toggle("sel", +tr.dataset.pos === n);
    });
  }
  function showHeat() {
    var k = tgt ? +tgt.value : 0, numbers = D.cellNumbers;
    document.querySelectorAll("#heat tbody tr").forEach(function (tr) {
      var n = +tr.dataset.pos, scale = scaleAt(n, k), tp = D.targetPieces[n * D.K + k];
      tr.querySelector("th[data-t]").textContent = tp;
      tr.querySelectorAll("td[data-m]").forEach(function (td) {
        var m = +td.dataset.m, v = A(m, n, k);
        paint(td, v, scale);
        td.textContent = numbers ? g(v, 2) : "";
        td.title = "position " + n + " " + q(D.pieces[n]) + " \u2192 " + q(tp) + "\n" + D.labels[m] + "\n" + shareText(v, n, k);
      });
    });
  }
  function remember() {
    history.replaceState(null, "", "#pos=" + pos.value + (tgt ? "&target=" + tgt.value : ""));
  }
  pos.addEventListener("change", function () { show(); remember(); });
  if (tgt) tgt.addEventListener("change", function () { showHeat(); show(); remember(); });
  /* report.html#pos=3&target=1 opens at position 3, target 1 */
  function fromHash() {
    var p = /(?:#|&)pos=(\d+)/.exec(location.hash), t = /(?:#|&)target=(\d+)/.exec(location.hash);
    if (t && tgt && +t[1] < D.K) { tgt.value = t[1]; showHeat(); }
    if (p && +p[1] < D.N) pos.value = p[1];
    if (p || t) show();
  }
  window.addEventListener("hashchange", fromHash);
  showHeat();
  show();
  fromHash();
})();
