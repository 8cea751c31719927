(function () {
  "use strict";
  /* The QK section: why a head attends where it does. The page holds the split's numbers
     (the depass-qk block: key-side shares [H', M, Nq, N], logits and their softmax [H', Nq, N],
     the largest pairs of every logit [H', Nq, N, top]) beside the report's own (depass-data:
     component labels, token pieces), and an empty #qk-view drawn here.
     The small helpers below are those of report.js, which keeps its own unchanged so that a
     page without a split stays as it was. */
  var D = JSON.parse(document.getElementById("depass-data").textContent);
  var Q = JSON.parse(document.getElementById("depass-qk").textContent);
  var root = document.getElementById("qk-view");
  var N = D.N, M = D.M, Hs = Q.heads.length, Nq = Q.queries.length, T = Q.top;
  function clean(s) {  /* control characters would not show: a tab reads as a space, the rest as U+FFFD */
    return s.replace(/\t/g, " ").replace(/[\u0000-\u0009\u000b-\u001f\u007f]/g, "\ufffd");
  }
  var pieces = D.pieces.map(clean), labels = D.labels.map(clean);
  /* S summed over the query side: key-side component m's share of the logit (query i, key j) of head h */
  function share(h, m, i, j) { return Q.keyShare[((h * M + m) * Nq + i) * N + j]; }
  function logit(h, i, j) { return Q.logits[(h * Nq + i) * N + j]; }
  function prob(h, i, j) { return Q.probs[(h * Nq + i) * N + j]; }
  /* the t-th largest |pair| of that logit: [query-side component, key-side component, value] */
  function pair(h, i, j, t) {
    var b = ((h * Nq + i) * N + j) * T + t;
    return [Q.pairs[2 * b], Q.pairs[2 * b + 1], Q.pairValues[b]];
  }
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
  function colour(t) {  /* the report's diverging scale: white at 0, red (+), blue (-) */
    var a = Math.pow(Math.min(1, Math.abs(t)), 0.65), e = t > 0 ? [202, 0, 32] : [5, 113, 176], h = "#";
    for (var c = 0; c < 3; c++) h += ("0" + Math.round(255 + (e[c] - 255) * a).toString(16)).slice(-2);
    return { bg: h, dark: a > 0.55 };
  }
  function paint(el, v, scale) {
    var s = colour(scale > 0 ? v / scale : 0);
    el.style.background = s.bg;
    el.style.color = s.dark ? "#fff" : "";
  }
  function make(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function add(parent, child) { parent.appendChild(child); return child; }
  function q(s) { return "'" + s + "'"; }
  function option(sel, value, text, chosen) {
    var o = add(sel, make("option", "", text));
    o.value = String(value);
    o.defaultSelected = chosen;
    return o;
  }
  /* The key the query attends to most (ties to the earlier key). */
  function argmaxKey(h, i) {
    var best = 0, qpos = Q.queries[i];
    for (var j = 1; j <= qpos; j++) if (prob(h, i, j) > prob(h, i, best)) best = j;
    return best;
  }

  /* ---- the section: controls, a summary line, the top pairs (left) and the heatmap (right) ---- */
  var s = add(root, make("section", "card"));
  s.id = "qk";
  add(s, make("h2", "", "QK split of block " + Q.layer + ": why a head attends where it does"));
  add(s, make("p", "note", "Each pre-softmax logit of the block's attention is an exact sum over (query-side " +
    "component, key-side component) pairs, with the input norm's factors frozen. The heatmap shows, for the " +
    "chosen head and query position, what each key-side component adds to the logit at each key (the pairs " +
    "summed over the query side); a row sums to its logit. Choose a key, or click a row, for its largest pairs."));
  var controls = add(s, make("div", "controls")), i;
  var headSel = add(add(controls, make("label", "", "Head ")), make("select"));
  headSel.id = "qk-head";
  for (i = 0; i < Hs; i++) option(headSel, i, "head " + Q.heads[i], i === 0);
  var querySel = add(add(controls, make("label", "", "Query position ")), make("select"));
  querySel.id = "qk-query";
  for (i = 0; i < Nq; i++) option(querySel, i, Q.queries[i] + ": " + q(pieces[Q.queries[i]]), i === Nq - 1);
  var keySel = add(add(controls, make("label", "", "Key position ")), make("select"));
  keySel.id = "qk-key";
  var line = add(s, make("p", "target-line"));
  line.id = "qk-line";
  add(s, make("p", "note", "Split checked: the summed pairs equal the logits recomputed from q and k within " +
    g(Q.logitsMaxRel, 2) + " (relative to the largest |logit|), and their causal softmax the recorded attention " +
    "within " + g(Q.probsMaxAbs, 2) + " (tolerance " + g(Q.tolerance, 2) + "). A logit's share is not a " +
    "probability's share: the softmax is not linear.")).id = "qk-check";
  var cols = add(s, make("div", "qk-cols")), left = add(cols, make("div", "qk-left")),
    right = add(cols, make("div", "qk-right"));
  var pairsTitle = add(left, make("h3"));
  var pairsTable = add(left, make("table", "rank")), tr = add(add(pairsTable, make("thead")), make("tr"));
  pairsTable.id = "qk-pairs";
  ["#", "query side", "key side", "pair", "of logit", ""].forEach(function (t, c) {
    add(tr, make("th", c === 0 || c === 3 || c === 4 ? "num" : "", t));
  });
  var pairsBody = add(pairsTable, make("tbody"));
  var pairsRest = add(left, make("p", "note"));
  pairsRest.id = "qk-pairs-rest";
  var heatTitle = add(right, make("h3"));
  var heatNote = add(right, make("p", "note"));
  var heatBox = add(right, make("div", "scroll"));
  add(right, make("p", "note", "The table is scaled to its largest |share| among the chosen components (the " +
    "rest may saturate); hover a cell for its value. logit: the row's sum; attention: its causal softmax."));

  /* Heatmap columns for (head h, query i): token level, the tokens up to the query and the rest (a
     later token is in no key or query of this row); else every component when there are at most 80,
     otherwise the 79 with the largest |share| in this row block and the rest. */
  function columns(h, i) {
    var qpos = Q.queries[i], out = [], m, j;
    if (D.tokenLevel) { for (m = 0; m <= qpos; m++) out.push(m); out.push(M - 1); return out; }
    if (M <= 80) { for (m = 0; m < M; m++) out.push(m); return out; }
    var peak = [];
    for (m = 0; m < M - 1; m++) {
      var p = 0;
      for (j = 0; j <= qpos; j++) p = Math.max(p, Math.abs(share(h, m, i, j)));
      peak.push(p);
      out.push(m);
    }
    out.sort(function (a, b) { return peak[b] - peak[a] || a - b; });
    out = out.slice(0, 79).sort(function (a, b) { return a - b; });
    out.push(M - 1);
    return out;
  }

  function where(h, i) {
    return "head " + Q.heads[h] + ", query " + Q.queries[i] + " " + q(pieces[Q.queries[i]]);
  }

  /* The key position x key-side component heatmap of (head h, query i): rows are the keys
     j <= query (causal entries only). */
  function drawHeat(h, i) {
    var qpos = Q.queries[i], cols = columns(h, i), scale = 0, j, numbers = cols.length <= 12;
    cols.forEach(function (m) {
      if (m === M - 1) return;
      for (var k = 0; k <= qpos; k++) scale = Math.max(scale, Math.abs(share(h, m, i, k)));
    });
    if (!(scale > 0)) for (j = 0; j <= qpos; j++) scale = Math.max(scale, Math.abs(share(h, M - 1, i, j)));
    if (!(scale > 0 && isFinite(scale))) scale = 1;
    heatTitle.textContent = "Key-side shares of the logits of " + where(h, i) + " (key position \u00d7 key-side " +
      (D.tokenLevel ? "token" : "component") + ")";
    heatNote.textContent = cols.length < M && !D.tokenLevel ? "Showing " + cols.length + " of " + M +
      " components: those with the largest |share| in these rows, and the rest." : "";
    heatBox.textContent = "";
    var table = add(heatBox, make("table", "heat"));
    table.id = "qk-heat";
    var head = add(add(table, make("thead")), make("tr"));
    add(head, make("th", "pos", "key"));
    add(head, make("th", "piece", "token"));
    add(head, make("th", "pos", "logit"));
    add(head, make("th", "pos", "attention"));
    cols.forEach(function (m) {
      var th = add(head, make("th", "col", D.tokenLevel && m < N ? m + " " + pieces[m] : labels[m]));
      th.title = labels[m];
    });
    var body = add(table, make("tbody"));
    for (j = 0; j <= qpos; j++) {
      var row = add(body, make("tr"));
      row.dataset.key = String(j);
      add(row, make("th", "pos", String(j)));
      add(row, make("th", "piece", pieces[j]));
      add(row, make("td", "v", g(logit(h, i, j), 4))).title = "logit " + g(logit(h, i, j), 6);
      add(row, make("td", "v", g(prob(h, i, j), 3))).title = "attention " + g(prob(h, i, j), 6);
      cols.forEach(function (m) {
        if (D.tokenLevel && m < N && m > j) { add(row, make("td", "c none")); return; }  /* a later token: none */
        var v = share(h, m, i, j), td = add(row, make("td", "c"));
        td.dataset.m = String(m);
        paint(td, v, scale);
        td.textContent = numbers ? g(v, 2) : "";
        var p = pct(v, logit(h, i, j));
        td.title = where(h, i) + ", key " + j + " " + q(pieces[j]) + "\nkey side: " + labels[m] + "\nshare " +
          g(v, 6) + (p ? " (" + p + " of logit " + g(logit(h, i, j), 4) + ")" : "");
      });
    }
  }

  /* The largest pairs of the logit (head h, query i, key j). */
  function drawPairs(h, i, j) {
    var total = logit(h, i, j), top = 0, listed = 0, t;
    pairsTitle.textContent = "Largest pairs of the logit of " + where(h, i) + " at key " + j + " " + q(pieces[j]);
    pairsBody.textContent = "";
    for (t = 0; t < T; t++) top = Math.max(top, Math.abs(pair(h, i, j, t)[2]));
    for (t = 0; t < T; t++) {
      var p = pair(h, i, j, t), tr = add(pairsBody, make("tr"));
      tr.dataset.pair = p[0] + "," + p[1];
      add(tr, make("td", "num", String(t + 1)));
      add(tr, make("td", "mono", labels[p[0]]));
      add(tr, make("td", "mono", labels[p[1]]));
      add(tr, make("td", "num", g(p[2], 6)));
      add(tr, make("td", "num", pct(p[2], total)));
      var bar = make("div");
      bar.style.width = (top > 0 ? 100 * Math.abs(p[2]) / top : 0).toFixed(1) + "%";
      bar.style.background = colour(p[2] > 0 ? 1 : -1).bg;
      add(add(tr, make("td", "bar")), bar);
      listed += p[2];
    }
    pairsRest.textContent = "The logit is " + g(total, 6) + " (attention " + g(prob(h, i, j), 4) + "); the other " +
      (M * M - T) + " of the " + M * M + " pairs sum to " + g(total - listed, 6) + ". Bars are scaled to the " +
      "largest |pair| listed.";
    document.querySelectorAll("#qk-heat tbody tr").forEach(function (row) {
      row.classList.toggle("sel", +row.dataset.key === j);
    });
  }

  function keyOptions(h, i, j) {
    keySel.textContent = "";
    for (var k = 0; k <= Q.queries[i]; k++)
      option(keySel, k, k + ": " + q(pieces[k]) + " (attention " + g(prob(h, i, k), 3) + ")", k === j);
    keySel.value = String(j);
  }
  function summary(h, i) {
    var k = argmaxKey(h, i);
    line.textContent = "";
    [["", where(h, i), " attends most to key "], ["", k + " " + q(pieces[k]), " (attention "],
     ["", g(prob(h, i, k), 4), ", logit " + g(logit(h, i, k), 6) + ")."]].forEach(function (p) {
      line.appendChild(document.createTextNode(p[0]));
      var b = document.createElement("b"); b.textContent = p[1]; line.appendChild(b);
      line.appendChild(document.createTextNode(p[2]));
    });
  }
  /* A new head or query: every part redrawn, the key back to the one attended most (or `key`). */
  function show(key) {
    var h = +headSel.value, i = +querySel.value;
    var j = key !== undefined && key >= 0 && key <= Q.queries[i] ? key : argmaxKey(h, i);
    summary(h, i);
    keyOptions(h, i, j);
    drawHeat(h, i);
    drawPairs(h, i, j);
  }
  function remember() {
    var rest = location.hash.replace(/^#/, "").split("&").filter(function (p) { return p && !/^qk/.test(p); });
    rest.push("qkhead=" + Q.heads[+headSel.value], "qkquery=" + Q.queries[+querySel.value], "qkkey=" + keySel.value);
    history.replaceState(null, "", "#" + rest.join("&"));
  }
  headSel.addEventListener("change", function () { show(); remember(); });
  querySel.addEventListener("change", function () { show(); remember(); });
  keySel.addEventListener("change", function () { drawPairs(+headSel.value, +querySel.value, +keySel.value); remember(); });
  heatBox.addEventListener("click", function (e) {
    var row = e.target.closest ? e.target.closest("tr[data-key]") : null;
    if (!row) return;
    keySel.value = row.dataset.key;
    drawPairs(+headSel.value, +querySel.value, +row.dataset.key);
    remember();
  });
  /* report.html#qkhead=3&qkquery=4&qkkey=1 opens at head 3, query position 4, key 1 (as numbered in the model) */
  function fromHash() {
    function at(name) { var m = new RegExp("(?:#|&)" + name + "=(\\d+)").exec(location.hash); return m ? +m[1] : -1; }
    var h = Q.heads.indexOf(at("qkhead")), i = Q.queries.indexOf(at("qkquery"));
    if (h >= 0) headSel.value = String(h);
    if (i >= 0) querySel.value = String(i);
    show(at("qkkey"));
  }
  window.addEventListener("hashchange", fromHash);
  fromHash();
})();
