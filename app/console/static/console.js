// Throughput page: polls /console/throughput.json every 2 seconds and redraws the tiles
// and a small chart of deliveries per second. No dependencies.
(function () {
  "use strict";
  var PERIOD_MS = 2000, KEEP = 150;
  var history = [];
  var fields = {
    delivered: ["deliveredPerSecond", 1], attempts: ["attemptsPerSecond", 1],
    failed: ["failedAttemptsPerSecond", 1], waiting: ["waiting", 0],
    "in-flight": ["inFlight", 0], dead: ["dead", 0]
  };

  function draw() {
    var canvas = document.getElementById("chart");
    if (!canvas || !canvas.getContext) { return; }
    var ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    var top = Math.max(1, Math.max.apply(null, history.concat([0])));
    ctx.strokeStyle = "#2f6fdf"; ctx.lineWidth = 2; ctx.beginPath();
    history.forEach(function (value, i) {
      var x = w - (history.length - 1 - i) * (w / (KEEP - 1)), y = h - 4 - (value / top) * (h - 20);
      if (i === 0) { ctx.moveTo(x, y); } else { ctx.lineTo(x, y); }
    });
    ctx.stroke();
    ctx.fillStyle = "#666"; ctx.font = "12px sans-serif";
    ctx.fillText("max " + top.toFixed(1) + " deliveries/s", 6, 14);
  }

  function poll() {
    fetch("/console/throughput.json", {credentials: "same-origin", cache: "no-store"})
      .then(function (response) {
        if (response.status === 401) { window.location = "/console/login"; return null; }
        return response.json();
      })
      .then(function (data) {
        if (!data) { return; }
        Object.keys(fields).forEach(function (id) {
          var el = document.getElementById(id), spec = fields[id];
          if (el) { el.textContent = Number(data[spec[0]]).toFixed(spec[1]); }
        });
        history.push(data.deliveredPerSecond);
        if (history.length > KEEP) { history.shift(); }
        var updated = document.getElementById("updated");
        if (updated) { updated.textContent = new Date(data.at).toLocaleTimeString(); }
        draw();
      })
      .catch(function () { /* the next poll tries again */ });
  }

  poll();
  window.setInterval(poll, PERIOD_MS);
}());
