(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("depass-data").textContent);
  var pos = document.getElementById("pos"), tgt = document.getElementById("tgt");
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
  function colour(t) {  /* the same scale as the page: white at 0, red (+), blue (-) */
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
  fromHash();
})();
