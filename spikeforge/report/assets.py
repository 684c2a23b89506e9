"""The page's own style sheet and script, inlined into every report (no file, no request).

Kept as Python strings rather than package data files so that an editable install, a
wheel and a source checkout all carry them without packaging rules.
"""

CSS = """
:root { --ink: #1d232b; --muted: #5b6470; --line: #d9dee5; --accent: #2f5d9b;
        --gap: #fff6dd; --gapline: #e3b341; --bad: #b8290f; --good: #2d7a3e; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { padding: 24px 32px 12px; border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 0; color: var(--muted); }
nav { padding: 8px 32px; border-bottom: 1px solid var(--line); background: #f7f9fb;
      position: sticky; top: 0; z-index: 2; font-size: 13px; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; white-space: nowrap; }
nav a.missing { color: var(--muted); text-decoration: line-through; }
main { max-width: 1180px; padding: 8px 32px 48px; }
section { padding-top: 12px; border-bottom: 1px solid var(--line); padding-bottom: 12px; }
section h2 { font-size: 20px; margin: 14px 0 10px; }
p { margin: 8px 0; max-width: 900px; }
code { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
       background: #f1f3f6; padding: 1px 4px; border-radius: 3px; }
pre { background: #f1f3f6; padding: 10px 12px; overflow-x: auto; border-radius: 4px;
      font: 12.5px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
table { border-collapse: collapse; margin: 10px 0 14px; font-size: 13.5px; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border: 1px solid var(--line); padding: 4px 9px; text-align: left;
         vertical-align: top; }
th { background: #f1f4f8; }
tbody tr:nth-child(even) td { background: #fafbfc; }
tfoot td { font-weight: 600; background: #eef2f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 10px 0 16px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figure .svg svg { width: 100%; height: auto; border: 1px solid var(--line); background: #fff; }
figcaption { color: var(--muted); font-size: 13px; max-width: 900px; }
.gap { background: var(--gap); border-left: 4px solid var(--gapline); padding: 8px 12px;
       margin: 10px 0; max-width: 900px; }
.gap .how { display: block; margin-top: 4px; }
.explorer { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px;
            margin: 10px 0; }
.ex-bar { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin-bottom: 8px; }
.ex-bar button { font: inherit; font-size: 13px; padding: 3px 9px; border: 1px solid var(--line);
                 background: #f7f9fb; border-radius: 4px; cursor: pointer; }
.ex-bar button.on { background: var(--accent); color: #fff; border-color: var(--accent); }
.ex-bar input[type=range] { width: 240px; }
.ex-grid { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.ex-panel { font-size: 12px; color: var(--muted); }
.ex-panel canvas { display: block; border: 1px solid var(--line); background: #fff; }
.ex-info { font-size: 13px; min-height: 1.5em; margin-top: 6px; }
.ex-counts div { display: flex; align-items: center; gap: 6px; font-size: 12px; height: 17px; }
.ex-counts span.bar { display: inline-block; height: 11px; background: #b7c4d6; }
.ex-counts .lead span.bar { background: #dd8452; }
.ok { color: var(--good); font-weight: 600; } .bad { color: var(--bad); font-weight: 600; }
@media print {
  nav, .ex-bar { display: none; }
  section { break-inside: avoid-page; }
  main { max-width: none; padding: 0 12px; }
}
"""

#: The explorer of traced test images. Reads the JSON in #explorer-data and draws, for the
#: chosen image up to the chosen clock: the input, each layer's raster, the output membranes
#: (or the neuron clicked) against the threshold, and the output spike counts so far.
JS = r"""
(function () {
  "use strict";
  var node = document.getElementById("explorer-data");
  var root = document.getElementById("explorer");
  if (!node || !root) { return; }
  var data = JSON.parse(node.textContent);
  var T = data.T, nL = data.layers.length;
  var state = { image: 0, t: T, pick: null };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function panel(title, w, h) {
    var p = el("div", "ex-panel"); p.appendChild(el("div", "", title));
    var c = el("canvas"); c.width = w; c.height = h; p.appendChild(c);
    grid.appendChild(p); return c;
  }
  function fmt(v) { return Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3); }

  root.textContent = "";
  var bar = el("div", "ex-bar"), buttons = [];
  data.images.forEach(function (im, i) {
    var wrong = im.prediction === im.label ? ""
        : " \u2192 " + data.classes[im.prediction] + " \u2717";
    var b = el("button", "", "#" + im.index + ": " + data.classes[im.label] + wrong);
    b.type = "button";
    b.onclick = function () { state.image = i; state.pick = null; draw(); };
    buttons.push(b); bar.appendChild(b);
  });
  var play = el("button", "", "\u25b6 play"); play.type = "button"; bar.appendChild(play);
  var slider = el("input"); slider.type = "range"; slider.min = 1; slider.max = T;
  slider.value = T; slider.setAttribute("aria-label", "clock");
  bar.appendChild(slider);
  var clock = el("span"); bar.appendChild(clock);
  root.appendChild(bar);
  var grid = el("div", "ex-grid"); root.appendChild(grid);
  var info = el("div", "ex-info",
                "Hover a raster to read a neuron; click it to plot its membrane.");
  root.appendChild(info);

  var pic = panel("input", 140, 140);
  var rasters = data.layers.map(function (name, l) {
    var n = data.images[0].neurons[l];
    var c = panel("layer " + (l + 1) + " (" + name + "): neuron by clock", 260,
                  Math.max(110, Math.min(300, n * 3)));
    c.onmousemove = function (ev) { hover(l, c, ev); };
    c.onclick = function (ev) { var h = locate(l, c, ev); if (h) { state.pick = h; draw(); } };
    return c;
  });
  var mem = panel("membrane U at each clock edge (before the reset)", 330, 220);
  mem.onclick = function () { state.pick = null; draw(); };
  var countsBox = el("div", "ex-panel ex-counts"); grid.appendChild(countsBox);

  function locate(l, c, ev) {
    var r = c.getBoundingClientRect(), im = data.images[state.image];
    var x = (ev.clientX - r.left) * c.width / r.width;
    var y = (ev.clientY - r.top) * c.height / r.height;
    var t = Math.floor(x / c.width * T), n = Math.floor(y / c.height * im.neurons[l]);
    if (t < 0 || t >= T || n < 0 || n >= im.neurons[l]) { return null; }
    return { layer: l, neuron: n, t: t };
  }
  function membrane(l, n) {
    var m = data.images[state.image].membranes[l];
    if (!m) { return null; }
    var k = m.neurons.indexOf(n);
    return k < 0 ? null : m.values[k];
  }
  function hover(l, c, ev) {
    var h = locate(l, c, ev); if (!h) { return; }
    var im = data.images[state.image];
    var fired = im.spikes[l][h.t].indexOf(h.neuron) >= 0;
    var v = membrane(l, h.neuron), text = "layer " + (l + 1) + ", neuron " + h.neuron +
        ", clock " + (h.t + 1) + ": " + (fired ? "spike" : "no spike");
    if (v) {
      text += ", U = " + fmt(v[h.t]);
      if (data.units) {
        var volts = v[h.t] * data.units[l];
        text += " (" + fmt(volts) + " V with ideal parts";
        if (data.swing && Math.abs(volts) > data.swing) {
          text += "; the board's membrane clamps at " + (volts < 0 ? "\u2212" : "+") +
                  data.swing + " V";
        }
        text += ")";
      }
    } else { text += " (membrane not traced: only the most active neurons are)"; }
    info.textContent = text;
  }

  function drawPicture(im) {
    var g = pic.getContext("2d"); g.fillStyle = "#fff"; g.fillRect(0, 0, pic.width, pic.height);
    var p = im.picture;
    if (!p) { g.fillStyle = "#888"; g.fillText("not an image", 30, 70); return; }
    var s = Math.min(pic.width / p.w, pic.height / p.h), lim = 0;
    p.values.forEach(function (v) { lim = Math.max(lim, Math.abs(v)); });
    lim = lim || 1;
    for (var i = 0; i < p.h; i++) {
      for (var j = 0; j < p.w; j++) {
        var v = p.values[i * p.w + j] / lim, c;
        if (p.signed) {
          c = v > 0 ? [255, Math.round(255 * (1 - v)), Math.round(255 * (1 - v))]
                    : [Math.round(255 * (1 + v)), Math.round(255 * (1 + v)), 255];
        } else { var k = Math.round(255 * (1 - v)); c = [k, k, k]; }
        g.fillStyle = "rgb(" + c.join(",") + ")";
        g.fillRect(j * s, i * s, Math.ceil(s), Math.ceil(s));
      }
    }
  }
  function drawRaster(l, im) {
    var c = rasters[l], g = c.getContext("2d"), n = im.neurons[l];
    var dx = c.width / T, dy = c.height / n;
    g.fillStyle = "#fff"; g.fillRect(0, 0, c.width, c.height);
    for (var t = 0; t < T; t++) {
      g.fillStyle = t < state.t ? "#1d232b" : "#c9ced6";
      im.spikes[l][t].forEach(function (j) {
        g.fillRect(t * dx + dx * 0.2, j * dy, Math.max(1, dx * 0.6), Math.max(1, dy));
      });
    }
    if (state.pick && state.pick.layer === l) {
      g.strokeStyle = "#2f5d9b"; g.strokeRect(0, state.pick.neuron * dy - 1, c.width, dy + 2);
    }
    g.strokeStyle = "#dd8452"; g.beginPath();
    g.moveTo(state.t * dx, 0); g.lineTo(state.t * dx, c.height); g.stroke();
  }
  function drawMembranes(im) {
    var g = mem.getContext("2d"), W = mem.width, H = mem.height, L = nL - 1;
    g.fillStyle = "#fff"; g.fillRect(0, 0, W, H);
    var lines = [], th = data.thresholds[L];
    var out = im.membranes[L];
    if (state.pick) {
      var v = membrane(state.pick.layer, state.pick.neuron);
      th = data.thresholds[state.pick.layer];
      if (v) { lines.push({ v: v, colour: "#2f5d9b", w: 2 }); }
    } else if (out) {
      out.neurons.forEach(function (n, k) {
        var lead = n === im.prediction;
        lines.push({ v: out.values[k], colour: lead ? "#dd8452" : "#9aa3ae", w: lead ? 2.2 : 1 });
      });
    }
    if (!lines.length) { g.fillStyle = "#888"; g.fillText("membrane not traced", 20, 30); return; }
    var lo = Math.min(0, th), hi = th;
    lines.forEach(function (s) {
      s.v.forEach(function (x) { lo = Math.min(lo, x); hi = Math.max(hi, x); });
    });
    hi += (hi - lo) * 0.08 || 1;
    function X(t) { return 30 + (W - 40) * t / T; }
    function Y(v) { return H - 20 - (H - 30) * (v - lo) / (hi - lo); }
    g.strokeStyle = "#ccc"; g.strokeRect(30, 10, W - 40, H - 30);
    g.setLineDash([4, 3]); g.strokeStyle = "#000"; g.beginPath();
    g.moveTo(30, Y(th)); g.lineTo(W - 10, Y(th)); g.stroke(); g.setLineDash([]);
    g.fillStyle = "#000"; g.fillText("threshold " + fmt(th), 34, Y(th) - 3);
    lines.forEach(function (s) {
      g.strokeStyle = s.colour; g.lineWidth = s.w; g.beginPath();
      for (var t = 0; t < state.t; t++) {
        var x = X(t + 1), y = Y(s.v[t]);
        if (t === 0) { g.moveTo(X(0), Y(0)); }
        g.lineTo(x, y);
      }
      g.stroke();
    });
    g.lineWidth = 1;
    g.fillStyle = "#5b6470";
    g.fillText(state.pick ? "layer " + (state.pick.layer + 1) + ", neuron " + state.pick.neuron
               + " (click here for the outputs)" : "output neurons (orange: predicted)", 34, H - 5);
  }
  function drawCounts(im) {
    var L = nL - 1, n = im.neurons[L], counts = [], best = 0;
    for (var j = 0; j < n; j++) { counts.push(0); }
    for (var t = 0; t < state.t; t++) { im.spikes[L][t].forEach(function (j) { counts[j] += 1; }); }
    for (j = 1; j < n; j++) { if (counts[j] > counts[best]) { best = j; } }
    countsBox.textContent = "";
    var ties = counts.filter(function (c) { return c === counts[best]; }).length;
    countsBox.appendChild(el("div", "", "output spikes up to clock " + state.t +
                             ": class " + data.classes[best] +
                             (ties > 1 ? " (a tie of " + ties + ": the lowest index wins)" : "")));
    var top = Math.max.apply(null, counts.concat([1]));
    counts.forEach(function (c, j) {
      var row = el("div", j === best ? "lead" : ""), b = el("span", "bar");
      b.style.width = Math.round(120 * c / top) + "px";
      row.appendChild(el("span", "", data.classes[j])); row.appendChild(b);
      row.appendChild(el("span", "", String(c)));
      countsBox.appendChild(row);
    });
  }
  function draw() {
    var im = data.images[state.image];
    buttons.forEach(function (b, i) { b.className = i === state.image ? "on" : ""; });
    clock.textContent = "clock " + state.t + " / " + T;
    slider.value = state.t;
    drawPicture(im);
    for (var l = 0; l < nL; l++) { drawRaster(l, im); }
    drawMembranes(im); drawCounts(im);
    root.setAttribute("data-rendered", "true");
  }
  slider.oninput = function () { state.t = +slider.value; draw(); };
  var timer = null;
  play.onclick = function () {
    if (timer) { clearInterval(timer); timer = null; play.textContent = "\u25b6 play"; return; }
    state.t = 0; play.textContent = "\u25a0 stop";
    timer = setInterval(function () {
      state.t += 1; draw();
      if (state.t >= T) { clearInterval(timer); timer = null; play.textContent = "\u25b6 play"; }
    }, 120);
  };
  draw();
})();
"""
