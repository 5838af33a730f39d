// costline dashboard: the browser's time zone into the address, and uPlot charts from JSON islands.
// No inline scripts (the Content-Security-Policy allows only this server's files).
(function () {
  "use strict";
  var url = new URL(window.location.href);
  if (document.querySelector("[data-tz]") && !url.searchParams.has("timezone")) {
    var tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (tz) {
      url.searchParams.set("timezone", tz);
      window.location.replace(url.toString());
      return;
    }
  }
  var COLOURS = ["#3b6fd8", "#ef8f00", "#2e7d32", "#b3261e", "#7b1fa2", "#00838f", "#6d4c41", "#c2185b", "#78909c"];

  function money(v) {
    if (v === null || v === undefined) { return "—"; }
    if (v === 0) { return "$0"; }
    var places = Math.abs(v) >= 1 ? 2 : Math.abs(v) >= 0.01 ? 4 : 6;
    return "$" + v.toFixed(places);
  }

  function draw(el, data, tz) {
    if (!data.x.length) { el.textContent = "No costs in this range."; return; }
    var n = data.x.length;
    var step = n > 1 ? (data.x[n - 1] - data.x[0]) / (n - 1) : 86400;
    var acc = new Array(n).fill(0);
    var stacked = data.series.map(function (s) {
      acc = acc.map(function (v, i) { return v + (s.values[i] || 0); });
      return acc.slice();
    });
    var bars = uPlot.paths.bars({ size: [0.7, 60], align: 0 });
    var series = [{ label: "Time" }];
    var arrays = [data.x];
    for (var i = stacked.length - 1; i >= 0; i--) {
      (function (idx) {
        var colour = COLOURS[idx % COLOURS.length];
        series.push({
          label: data.series[idx].label, stroke: colour, fill: colour + "cc", width: 1,
          paths: bars, points: { show: false },
          value: function (u, v, si, di) { return di == null ? "—" : money(data.series[idx].values[di]); }
        });
      })(i);
      arrays.push(stacked[i]);
    }
    var opts = {
      width: Math.max(280, el.clientWidth - 12), height: 260, series: series,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), tz); },
      axes: [{}, { size: 80, values: function (u, vals) { return vals.map(money); } }],
      scales: { x: { time: true, range: function (u, min, max) { return [min - step / 2, max + step / 2]; } } }
    };
    var plot = new uPlot(opts, arrays, el);
    window.addEventListener("resize", function () {
      plot.setSize({ width: Math.max(280, el.clientWidth - 12), height: 260 });
    });
  }

  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var island = document.getElementById(el.getAttribute("data-chart"));
    if (island && window.uPlot) {
      draw(el, JSON.parse(island.textContent), el.getAttribute("data-timezone") || "UTC");
    }
  });
})();
