/* edgelambda live page: MQTT over WebSockets (Eclipse Paho JS, MQTT 3.1.1) to
 * the board's mosquitto, which also serves this file (http_dir).
 *
 * - status: the retained <prefix>/status document, rendered on every publish;
 * - requests go to <prefix>/query with "reply_to" (this page's own topic,
 *   <prefix>/reply/<client id>) and an "id" the answer echoes (README
 *   "Queries over MQTT"): {"op":"series"} every 10 s, {"op":"deadletters"}
 *   when the dead-letter count changes and every 15 s;
 * - the chart: one range query fills its history (again when the batch
 *   watermark moves, and every minute), then a watch ({"op":"watch"} with
 *   "open":true, README "Continuous queries") pushes each changed bucket,
 *   the open one included, which replaces that bucket; the watch is renewed
 *   every minute (it expires after WATCH_S s) and ended when the chart
 *   shows something else;
 * - the chart (uPlot): mean, the min-max band and last per bucket, each
 *   bucket's background shaded by its "src" (batch views, speed layer, master
 *   log, provisional).
 *
 * Everything shown is also written to data-* attributes (raw JSON values,
 * counts, the chart's source segments), which tests/integration/test_web.py
 * reads instead of pixels.
 *
 * URL parameters: ?prefix=P (topic prefix, default edgelambda), ?ws=URL (the
 * broker's WebSocket URL; default: the host and port this page came from).
 * The hash keeps the choice: #series=<name>&range=1h.
 *
 * Brokers with passwords: when the broker refuses the connection as not
 * authorised (CONNACK 4 or 5), the page shows a login form instead of
 * retrying, and connects with the user name and password given. They are
 * kept in sessionStorage (this tab), or in localStorage when "remember" is
 * ticked; "log out" forgets them. Over ws:// they cross the network in the
 * clear, like any MQTT password without TLS: use a wss:// listener
 * (README, "Live page") where the network is not trusted. */
(function () {
  "use strict";

  var params = new URLSearchParams(location.search);
  var PREFIX = params.get("prefix") || "edgelambda";
  var WS_URL = params.get("ws") || (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/";
  var RANGES = { /* the range and a step giving 60-96 buckets */
    "15m": { ms: 15 * 60e3, step: "10s", stepMs: 10e3 },
    "1h": { ms: 3600e3, step: "1m", stepMs: 60e3 },
    "6h": { ms: 6 * 3600e3, step: "5m", stepMs: 300e3 },
    "24h": { ms: 24 * 3600e3, step: "15m", stepMs: 900e3 },
    "7d": { ms: 7 * 86400e3, step: "2h", stepMs: 7200e3 }
  };
  var HISTORY_MS = 60000, WATCH_S = 120, SERIES_MS = 10000, DEAD_MS = 15000, ANSWER_MS = 5000, MAX_LISTED = 200;
  var AGGS = ["mean", "min", "max", "last"];
  var SRC_FILL = { batch: "rgba(63,81,181,.16)", speed: "rgba(46,125,50,.16)", log: "rgba(255,160,0,.22)",
    provisional: "rgba(183,28,28,.16)" };

  var $ = function (id) { return document.getElementById(id); };
  var root = document.documentElement, connEl = $("conn"), statusEl = $("status");
  var fieldEls = Array.prototype.slice.call(document.querySelectorAll("[data-field]"));
  var listEl = $("series-list"), searchEl = $("search"), chartEl = $("chart"), deadEl = $("dead");

  var CRED_KEY = "edgelambda.login", loginEl = $("login"), mainEl = document.querySelector("main");
  var creds = loadCreds();
  var clientId = "el-web-" + Math.random().toString(36).slice(2, 10);
  var replyTopic = PREFIX + "/reply/" + clientId;
  var client = null, connected = false, retryMs = 1000;
  var pending = {}, nextId = 1;
  var allSeries = [], sel = { series: null, range: "1h" }, chartBusy = false;
  var plot = null, plotKey = "", chartData = null, xRange = null, deadLetters = -1, watermark = -1;
  var chartAsked = 0, hist = null, watch = { id: null, key: "", asked: 0 };

  function stamp(name) { /* page milestones, ms since navigation start */
    if (!root.hasAttribute("data-" + name)) root.setAttribute("data-" + name, Math.round(performance.now()));
  }

  /* ---- MQTT ---- */

  function setConn(state, text) {
    connEl.dataset.state = state;
    connEl.textContent = text;
  }

  /* ---- login (brokers with passwords) ---- */

  function loadCreds() {
    var stores = [window.sessionStorage, window.localStorage];
    for (var i = 0; i < stores.length; i++) {
      try {
        var c = JSON.parse(stores[i].getItem(CRED_KEY) || "null");
        if (c && typeof c.user === "string") return c;
      } catch (e) { /* storage off or bad JSON: no saved login */ }
    }
    return null;
  }

  function saveCreds(c, remember) {
    try {
      window.sessionStorage.removeItem(CRED_KEY);
      window.localStorage.removeItem(CRED_KEY);
      if (c) (remember ? window.localStorage : window.sessionStorage).setItem(CRED_KEY, JSON.stringify(c));
    } catch (e) { /* storage off: the login lasts as long as the page */ }
  }

  /* CONNACK 4 (bad user name or password) or 5 (not authorised). */
  function refused(r) {
    return r && r.errorCode === 6 && /code:\s*[45]\b/.test(r.errorMessage || "");
  }

  function showLogin(why) {
    setConn("login", "log in");
    $("login-why").textContent = why;
    $("login-user").value = creds ? creds.user : "";
    $("login-pass").value = "";
    loginEl.hidden = false;
    mainEl.hidden = true;
    $((creds ? "login-pass" : "login-user")).focus();
  }

  loginEl.addEventListener("submit", function (ev) {
    ev.preventDefault();
    creds = { user: $("login-user").value, pass: $("login-pass").value };
    saveCreds(creds, $("login-remember").checked);
    loginEl.hidden = true;
    mainEl.hidden = false;
    connect();
  });

  $("logout").addEventListener("click", function () {
    saveCreds(null, false);
    location.reload();
  });

  /* ---- connecting ---- */

  function connect() {
    if (typeof Paho === "undefined") { setConn("lost", "vendor/paho-mqtt-min.js did not load"); return; }
    if (!client) {
      client = new Paho.Client(WS_URL, clientId);
      client.onMessageArrived = onMessage;
      client.onConnectionLost = function (r) {
        connected = false;
        failAll("connection lost");
        setConn("lost", "lost: " + (r.errorMessage || "connection closed") + "; retrying");
        setTimeout(connect, retryMs);
      };
    }
    setConn("connecting", "connecting to " + WS_URL);
    var opts = {
      timeout: 5, keepAliveInterval: 30, cleanSession: true, mqttVersion: 4,
      onSuccess: function () {
        connected = true;
        retryMs = 1000;
        setConn("connected", "live");
        $("logout").hidden = !creds;
        client.subscribe(replyTopic, { qos: 0 });
        client.subscribe(PREFIX + "/status", { qos: 0 });
        watch.id = null; /* a new session: the old watch is gone with the reply subscription */
        loadSeries();
        loadDead();
        refreshChart();
      },
      onFailure: function (r) {
        if (refused(r)) {
          showLogin(creds ? "The broker refused this user name and password." :
            "The broker asks for a user name and password.");
          return;
        }
        setConn("lost", "cannot connect: " + (r.errorMessage || "?") + "; retrying");
        retryMs = Math.min(retryMs * 2, 10000);
        setTimeout(connect, retryMs);
      }
    };
    if (creds) {
      opts.userName = creds.user;
      opts.password = creds.pass;
    }
    client.connect(opts);
  }

  function onMessage(m) {
    var doc;
    try { doc = JSON.parse(m.payloadString); } catch (e) { return; }
    if (m.destinationName === replyTopic) {
      var cb = doc && pending[doc.id];
      if (cb) { delete pending[doc.id]; cb(doc); }
      else if (doc && watch.id && doc.id === watch.id) onWatch(doc);
    } else if (m.destinationName === PREFIX + "/status") {
      renderStatus(doc);
    }
  }

  /* A request with our reply topic and this "id". */
  function send(req, id) {
    req.reply_to = replyTopic;
    req.id = id;
    var msg = new Paho.Message(JSON.stringify(req));
    msg.destinationName = PREFIX + "/query";
    msg.qos = 0;
    client.send(msg);
  }

  /* One request/response: cb gets the answer, or an error of our own. */
  function ask(req, cb) {
    if (!connected) { cb({ ok: false, error: { code: "offline", message: "not connected" } }); return; }
    var id = "w" + nextId++;
    var timer = setTimeout(function () {
      delete pending[id];
      cb({ ok: false, error: { code: "timeout", message: "no answer within " + ANSWER_MS / 1000 + " s" } });
    }, ANSWER_MS);
    pending[id] = function (a) { clearTimeout(timer); cb(a); };
    send(req, id);
  }

  function failAll(why) {
    Object.keys(pending).forEach(function (id) {
      var cb = pending[id];
      delete pending[id];
      cb({ ok: false, error: { code: "offline", message: why } });
    });
  }

  function errText(a) { return a.error ? a.error.code + ": " + a.error.message : "error"; }

  /* ---- status ---- */

  function pick(o, path) {
    return path.split(".").reduce(function (v, k) { return v == null ? undefined : v[k]; }, o);
  }

  function fmt(v) {
    if (v === undefined || v === null) return "–";
    if (typeof v === "boolean") return v ? "yes" : "no";
    if (typeof v === "number") return Number.isInteger(v) ? v.toLocaleString("en-US") : v.toFixed(1);
    return String(v);
  }

  function renderStatus(st) {
    statusEl.dataset.received = Number(statusEl.dataset.received) + 1;
    statusEl.dataset.uptime = JSON.stringify(st.uptime_s === undefined ? null : st.uptime_s);
    fieldEls.forEach(function (el) {
      var f = el.dataset.field, v = pick(st, f);
      el.dataset.value = JSON.stringify(v === undefined ? null : v);
      el.textContent = f === "sync.backlog_events" && st.sync && !st.sync.enabled ? "sync off" : fmt(v);
      el.classList.toggle("bad", (f === "ingest.held" && v === true) || (f === "clock_synced" && v === false) ||
        (f === "log.error" && v != null) || (f === "state" && v !== "online"));
    });
    var reasons = $("reasons"), rej = pick(st, "ingest.rejected") || {}, frag = document.createDocumentFragment();
    Object.keys(rej).forEach(function (k) {
      if (!rej[k]) return;
      var li = document.createElement("li");
      li.dataset.reason = k;
      li.dataset.value = rej[k];
      li.textContent = k + " " + rej[k];
      frag.appendChild(li);
    });
    reasons.replaceChildren(frag);
    var waiting = pick(st, "clock.waiting");
    $("clock-waiting").hidden = !waiting;
    $("clock-waiting").textContent = waiting || "";
    stamp("first-status-ms");
    var wm = pick(st, "batch.watermark_seq"); /* new views: the history's sources change */
    if (wm !== undefined && wm !== watermark) { if (watermark >= 0) refreshChart(); watermark = wm; }
    var dl = pick(st, "ingest.dead_letters");
    if (dl !== undefined && dl !== deadLetters) { deadLetters = dl; loadDead(); }
  }

  /* ---- series list ---- */

  function loadSeries() {
    ask({ op: "series" }, function (a) {
      if (!a.ok) { listEl.dataset.error = errText(a); return; }
      delete listEl.dataset.error;
      allSeries = a.series || [];
      renderSeries();
      if (!sel.series && allSeries.length) select(allSeries[0].series);
    });
  }

  function renderSeries() {
    var words = searchEl.value.toLowerCase().split(/\s+/).filter(Boolean);
    var hits = allSeries.filter(function (s) {
      var n = s.series.toLowerCase();
      return words.every(function (w) { return n.indexOf(w) >= 0; });
    });
    var frag = document.createDocumentFragment();
    hits.slice(0, MAX_LISTED).forEach(function (s) {
      var li = document.createElement("li"), v = document.createElement("span");
      li.dataset.series = s.series;
      li.setAttribute("aria-selected", s.series === sel.series ? "true" : "false");
      li.appendChild(document.createTextNode(s.series));
      v.textContent = fmt(s.last);
      li.appendChild(v);
      frag.appendChild(li);
    });
    if (hits.length > MAX_LISTED) {
      var more = document.createElement("li");
      more.className = "more";
      more.textContent = (hits.length - MAX_LISTED) + " more: narrow the filter";
      frag.appendChild(more);
    }
    listEl.replaceChildren(frag);
    listEl.dataset.count = allSeries.length;
    listEl.dataset.shown = hits.length;
  }

  function select(name, range) {
    sel.series = name;
    if (range && RANGES[range]) sel.range = range;
    history.replaceState(null, "", "#series=" + encodeURIComponent(sel.series) + "&range=" + sel.range);
    Array.prototype.forEach.call(listEl.children, function (li) {
      if (li.dataset.series !== undefined) li.setAttribute("aria-selected", li.dataset.series === name);
    });
    Array.prototype.forEach.call($("ranges").children, function (b) {
      b.setAttribute("aria-pressed", b.dataset.range === sel.range);
    });
    $("chart-title").textContent = name;
    chartData = null;
    hist = null;
    refreshChart();
  }

  function fromHash() {
    var h = new URLSearchParams(location.hash.slice(1));
    if (h.get("series")) select(h.get("series"), h.get("range"));
  }

  /* ---- chart ---- */

  /* The watch of the chosen series and range: one per page; re-sending it
   * (same "id") renews it, a new choice ends the old one. */
  function watchChart() {
    var key = sel.series + "|" + sel.range;
    if (watch.id && watch.key !== key) send({ op: "unwatch" }, watch.id);
    if (!watch.id || watch.key !== key) { watch.id = "watch" + nextId++; watch.key = key; }
    watch.asked = Date.now();
    send({ op: "watch", series: sel.series, step: RANGES[sel.range].step, agg: AGGS, expires_s: WATCH_S,
      open: true }, watch.id);
  }

  /* A watch message: its reply, a bucket (closed, corrected or open), or its expiry. */
  function onWatch(m) {
    if (!m.ok) { chartEl.dataset.watchError = errText(m); return; }
    if (m.op === "watch") { delete chartEl.dataset.watchError; chartEl.dataset.watch = m.watch; return; }
    if (m.expired) { watchChart(); return; }
    if (!hist || !m.buckets || m.series !== sel.series || m.step_ms !== hist.step_ms) return;
    var b = hist.buckets, r = RANGES[sel.range];
    m.buckets.forEach(function (x) {
      var i = b.length;
      while (i > 0 && b[i - 1].t > x.t) i--;
      if (i > 0 && b[i - 1].t === x.t) b[i - 1] = x;
      else b.splice(i, 0, x);
    });
    var last = b.length ? b[b.length - 1].t : 0;
    while (b.length && b[0].t < last - r.ms) b.shift();
    hist.seq = Math.max(hist.seq || 0, m.seq || 0);
    chartEl.dataset.pushed = Number(chartEl.dataset.pushed || 0) + 1;
    draw(hist, r);
  }

  function tick() {
    if (!connected || !sel.series) return;
    if (Date.now() - chartAsked >= HISTORY_MS) refreshChart();
    else if (watch.id && Date.now() - watch.asked >= WATCH_S * 500) watchChart();
  }

  /* The history: a range query; the watch is (re)made first, so no bucket
   * falls between the answer and the watch's first message. */
  function refreshChart() {
    if (!sel.series || chartBusy || !connected) return;
    chartBusy = true;
    chartAsked = Date.now();
    var series = sel.series, range = sel.range, r = RANGES[range];
    watchChart();
    ask({ series: series, from: "-" + range, to: "now", step: r.step, agg: AGGS },
      function (a) {
        chartBusy = false;
        if (series !== sel.series || range !== sel.range) { refreshChart(); return; }
        if (!a.ok) { chartEl.dataset.error = errText(a); return; }
        delete chartEl.dataset.error;
        hist = a;
        draw(a, r);
      });
  }

  /* Columns for uPlot (x in seconds): a gap between buckets gets a row of
   * nulls, so lines break where the series has no readings. */
  function columns(a) {
    var b = a.buckets || [], step = a.step_ms, c = { x: [], max: [], min: [], mean: [], last: [], src: [] };
    function row(t, x) {
      c.x.push(t / 1000);
      c.max.push(x ? x.max : null);
      c.min.push(x ? x.min : null);
      c.mean.push(x ? x.mean : null);
      c.last.push(x ? x.last : null);
      c.src.push(x ? x.src || [] : null);
    }
    b.forEach(function (x, i) {
      if (i > 0 && x.t - b[i - 1].t > step) row(b[i - 1].t + step, null);
      row(x.t, x);
    });
    return c;
  }

  /* Runs of buckets fed by the same sources, in time order: "log,batch,speed". */
  function segments(src) {
    var out = [];
    src.forEach(function (s) {
      if (!s) return;
      var k = s.slice().sort().join("+");
      if (out[out.length - 1] !== k) out.push(k);
    });
    return out.join(",");
  }

  /* Each bucket's background in the colour of its source(s), stacked when
   * several fed it; drawn before the axes and series. */
  function shade(u) {
    if (!chartData) return;
    var ctx = u.ctx, bb = u.bbox, xs = chartData.x, step = chartData.stepS;
    ctx.save();
    ctx.beginPath();
    ctx.rect(bb.left, bb.top, bb.width, bb.height);
    ctx.clip();
    chartData.src.forEach(function (s, i) {
      if (!s || !s.length) return;
      var x0 = u.valToPos(xs[i], "x", true), x1 = u.valToPos(xs[i] + step, "x", true), h = bb.height / s.length;
      s.forEach(function (name, j) {
        ctx.fillStyle = SRC_FILL[name] || "rgba(0,0,0,.08)";
        ctx.fillRect(x0, bb.top + j * h, Math.max(1, x1 - x0), h);
      });
    });
    ctx.restore();
  }

  function chartSize() {
    return { width: Math.max(260, chartEl.clientWidth), height: Math.max(220, Math.min(360, innerHeight * 0.4)) };
  }

  function draw(a, r) {
    var c = columns(a), stepS = a.step_ms / 1000;
    chartData = { x: c.x, src: c.src, stepS: stepS };
    /* The x range is the asked range on this device's clock, unless the
     * board's clock disagrees with it: then the data's own span. */
    var now = Date.now() / 1000, lo = now - r.ms / 1000, n = c.x.length;
    var fits = n === 0 || (c.x[0] >= lo - stepS && c.x[n - 1] <= now + stepS);
    var hi = fits ? now : c.x[n - 1] + stepS;
    xRange = [Math.floor((hi - r.ms / 1000) / stepS) * stepS, hi];
    var data = [c.x, c.max, c.min, c.mean, c.last], key = sel.series + "|" + sel.range;
    if (!plot || plotKey !== key) {
      if (plot) plot.destroy();
      plotKey = key;
      var size = chartSize();
      plot = new uPlot({
        width: size.width, height: size.height,
        scales: { x: { time: true, range: function () { return xRange; } } },
        series: [
          {},
          { label: "max", stroke: "rgba(21,101,192,.35)", width: 1 },
          { label: "min", stroke: "rgba(21,101,192,.35)", width: 1 },
          { label: "mean", stroke: "#1565c0", width: 2, points: { show: true, size: 4 } },
          { label: "last", stroke: "#e65100", width: 1.5, dash: [6, 4], points: { show: false } }
        ],
        bands: [{ series: [1, 2], fill: "rgba(21,101,192,.2)" }],
        hooks: { drawClear: [shade] },
        legend: { live: true }
      }, data, chartEl);
    } else {
      plot.setData(data);
    }
    var points = c.mean.filter(function (v) { return v !== null; }).length, lastB = a.buckets[a.buckets.length - 1];
    chartEl.dataset.series = sel.series;
    chartEl.dataset.range = sel.range;
    chartEl.dataset.stepMs = a.step_ms;
    chartEl.dataset.seq = a.seq;
    chartEl.dataset.points = points;
    chartEl.dataset.src = segments(c.src);
    chartEl.dataset.sources = JSON.stringify(a.sources || {});
    chartEl.dataset.lastT = lastB ? lastB.t : "";
    chartEl.dataset.lastValue = lastB ? JSON.stringify(lastB.last) : "";
    chartEl.dataset.refreshes = Number(chartEl.dataset.refreshes) + 1;
    chartEl.dataset.updated = Date.now();
    $("chart-title").textContent = sel.series + (lastB ? "  last " + fmt(lastB.last) : "  (no readings in range)");
    stamp("first-chart-ms");
  }

  /* ---- dead letters ---- */

  function loadDead() {
    ask({ op: "deadletters", n: 20 }, function (a) {
      if (!a.ok) { deadEl.dataset.error = errText(a); return; }
      delete deadEl.dataset.error;
      var frag = document.createDocumentFragment();
      (a.dead_letters || []).forEach(function (d) {
        var tr = document.createElement("tr"), payload = d.payload !== undefined ? d.payload : "hex " + d.payload_hex;
        if (d.payload_bytes > 512) payload += " … (" + d.payload_bytes + " bytes)";
        tr.dataset.seq = d.seq;
        tr.dataset.reason = d.reason;
        [new Date(d.recv).toTimeString().slice(0, 8), d.topic, d.reason, d.detail || "", payload].forEach(function (t, i) {
          var td = document.createElement("td");
          td.textContent = t;
          if (i === 3) td.className = "detail";
          tr.appendChild(td);
        });
        frag.appendChild(tr);
      });
      deadEl.replaceChildren(frag);
      deadEl.dataset.count = (a.dead_letters || []).length;
    });
  }

  /* ---- wiring ---- */

  searchEl.addEventListener("input", renderSeries);
  listEl.addEventListener("click", function (e) {
    var li = e.target.closest("li[data-series]");
    if (!li) return;
    select(li.dataset.series);
    if (innerWidth < 900) $("chart-panel").scrollIntoView({ behavior: "smooth" }); /* one column: above */
  });
  $("ranges").addEventListener("click", function (e) {
    var b = e.target.closest("button[data-range]");
    if (b && sel.series) select(sel.series, b.dataset.range);
    else if (b) sel.range = b.dataset.range;
  });
  addEventListener("hashchange", fromHash);
  addEventListener("resize", function () { if (plot) plot.setSize(chartSize()); });
  setInterval(tick, 250);
  setInterval(loadSeries, SERIES_MS);
  setInterval(loadDead, DEAD_MS);
  fromHash();
  connect();
})();
