/**
 * The status page served on the admin port's `/`: one self-contained HTML document (no CDN, no build step, works
 * offline) that polls the admin JSON endpoints and shows connected nodes with their sync per type, services with
 * endpoints by zone and state, the fleet's stats and the scaler. Lists are paged on the server, so ten thousand
 * nodes cost the browser one page of rows. Every text from the server is escaped before it reaches the DOM:
 * node ids and NACK messages are written by clients.
 *
 * The script avoids template literals so that this module can hold it in one.
 */
export const STATUS_PAGE = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>inferplane status</title>
<style>
  :root { --bg: #fafafa; --fg: #1d1d1f; --muted: #6b6b70; --line: #e2e2e6; --bad: #fde8e8; --bad-fg: #a11a1a; --warn: #fff4d6; --ok: #1f7a3a; --accent: #2f5fd0; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
  header { display: flex; gap: 16px; align-items: center; padding: 10px 20px; background: #fff; border-bottom: 1px solid var(--line); position: sticky; top: 0; z-index: 1; }
  header h1 { font-size: 18px; margin: 0; }
  .badge { padding: 2px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; }
  .badge.ok { background: #e3f5e8; color: var(--ok); }
  .badge.bad { background: var(--bad); color: var(--bad-fg); }
  .badge.gone { background: #e8e8ec; color: var(--muted); }
  #updated { color: var(--muted); margin-left: auto; font-size: 12px; }
  main { padding: 12px 20px 40px; display: grid; gap: 16px; grid-template-columns: minmax(0, 1fr); }
  section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
  section h2 { font-size: 15px; margin: 0 0 8px; }
  .banner { padding: 8px 12px; border-radius: 6px; background: var(--bad); color: var(--bad-fg); margin-bottom: 8px; }
  .tiles { display: flex; flex-wrap: wrap; gap: 12px; }
  .tile { border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; min-width: 130px; }
  .tile b { display: block; font-size: 20px; }
  .tile span { color: var(--muted); font-size: 12px; }
  .tile.bad { background: var(--bad); }
  table { border-collapse: collapse; width: 100%; font-size: 13px; }
  th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  td.wrap { white-space: normal; overflow-wrap: anywhere; min-width: 14em; }
  .scroll { overflow-x: auto; max-width: 100%; }
  th { color: var(--muted); font-weight: 600; }
  tr.bad td { background: var(--bad); }
  tr.warn td { background: var(--warn); }
  tr.dry td { background: #eaf0fb; }
  .s-synced { color: var(--ok); }
  .s-nacked { color: var(--bad-fg); font-weight: 700; }
  .s-stale, .s-pending, .s-not-sent { color: #8a5a00; font-weight: 600; }
  .controls { display: flex; gap: 12px; align-items: center; margin-bottom: 6px; flex-wrap: wrap; }
  .controls input[type=search] { padding: 3px 6px; min-width: 220px; }
  .pager button { margin: 0 2px; }
  .muted { color: var(--muted); }
  .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 12px; }
  .card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
  .card h3 { font-size: 14px; margin: 0 0 4px; }
  svg.chart { width: 100%; height: auto; display: block; }
  .legend span { margin-right: 10px; font-size: 12px; }
  .legend i { display: inline-block; width: 14px; height: 3px; vertical-align: middle; margin-right: 4px; }
  pre { white-space: pre-wrap; margin: 4px 0; font-size: 12px; }
  .shadow { color: #5a3fa0; }
</style>
</head>
<body>
<header>
  <h1>inferplane</h1>
  <span id="ready" class="badge">…</span>
  <span id="updated">loading…</span>
</header>
<main>
  <div id="unreachable" class="banner" hidden></div>
  <div id="refused" class="banner" hidden></div>
  <section id="fleet"><h2>Fleet</h2><div id="fleet-body" class="muted">loading…</div></section>
  <section id="nodes">
    <h2>Connected nodes</h2>
    <div class="controls">
      <input id="nodes-q" type="search" placeholder="filter by node id or cluster" aria-label="filter nodes">
      <label><input id="nodes-oos" type="checkbox"> out of sync only</label>
      <span class="pager" id="nodes-pager"></span>
    </div>
    <div id="nodes-body" class="muted">loading…</div>
  </section>
  <section id="services">
    <h2>Services</h2>
    <div class="controls">
      <input id="services-q" type="search" placeholder="filter by service" aria-label="filter services">
      <span class="pager" id="services-pager"></span>
    </div>
    <div id="services-body" class="muted">loading…</div>
  </section>
  <section id="scaler"><h2>Scaler</h2><div id="scaler-body" class="muted">loading…</div></section>
</main>
<script>
(function () {
  'use strict';
  var PAGE = 100;
  var STALE_MS = 10000;
  var params = new URLSearchParams(location.search);
  var refreshMs = Math.max(250, Number(params.get('refresh')) || 1000);
  var state = { nodes: { offset: 0, q: '', oos: false }, services: { offset: 0, q: '' } };

  function esc(v) {
    return String(v === null || v === undefined ? '' : v).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }
  function $(id) { return document.getElementById(id); }
  function age(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    return s < 120 ? s + 's' : s < 7200 ? Math.round(s / 60) + 'm' : Math.round(s / 3600) + 'h';
  }
  function since(iso) { return age(Date.now() - Date.parse(iso)); }
  // One clock everywhere on the page: the browser's local time, 24-hour.
  function two(n) { return (n < 10 ? '0' : '') + n; }
  function clock(t) { var d = new Date(t); return two(d.getHours()) + ':' + two(d.getMinutes()) + ':' + two(d.getSeconds()); }
  function short(v) { return v ? esc(String(v).slice(0, 8)) : '–'; }
  function get(path) {
    return fetch(path, { cache: 'no-store' }).then(function (r) {
      return r.json().then(function (body) { return { status: r.status, body: body }; });
    });
  }
  function pager(id, part, matched, onMove) {
    var p = state[part];
    var last = Math.max(0, Math.ceil(matched / PAGE) - 1);
    if (p.offset > last * PAGE) p.offset = last * PAGE;
    var page = Math.floor(p.offset / PAGE);
    $(id).innerHTML = matched <= PAGE ? '' :
      '<button data-move="-1"' + (page === 0 ? ' disabled' : '') + '>‹ prev</button>' +
      '<span class="muted">' + (p.offset + 1) + '–' + Math.min(matched, p.offset + PAGE) + ' of ' + matched + '</span>' +
      '<button data-move="1"' + (page >= last ? ' disabled' : '') + '>next ›</button>';
    Array.prototype.forEach.call($(id).querySelectorAll('button'), function (b) {
      b.onclick = function () { p.offset = Math.max(0, p.offset + Number(b.getAttribute('data-move')) * PAGE); onMove(); };
    });
  }

  var TYPES = ['cds', 'lds', 'eds', 'rds'];
  function renderNodes(body) {
    var counts = body.total + ' streams, ' + body.outOfSync + ' out of sync';
    if (body.nodes.length === 0) {
      $('nodes-body').innerHTML = '<p class="muted">' + (body.total === 0 ? 'No node is connected.' : 'No stream matches (' + esc(counts) + ').') + '</p>';
      pager('nodes-pager', 'nodes', body.matched, refresh);
      return;
    }
    var rows = body.nodes.map(function (n) {
      var worst = 'synced';
      var cells = TYPES.map(function (t) {
        var ts = n.types[t];
        if (!ts) return '<td class="muted">–</td>';
        if (ts.sync !== 'synced' && (worst === 'synced' || ts.sync === 'nacked')) worst = ts.sync;
        var tip = 'sent ' + (ts.sentVersion || '–') + ', ACKed ' + (ts.ackedVersion || '–') + (ts.pendingNonce ? ', pending nonce ' + ts.pendingNonce : '') + ', ' + ts.subscribedCount + ' names';
        return '<td class="s-' + esc(ts.sync) + '" title="' + esc(tip) + '">' + esc(ts.sync.toUpperCase()) + ' <span class="muted">' + short(ts.ackedVersion) + (ts.sync === 'pending' ? '→' + short(ts.sentVersion) : '') + '</span></td>';
      }).join('');
      var nacks = TYPES.filter(function (t) { return n.types[t] && n.types[t].lastNack; }).map(function (t) {
        return esc(t) + ': ' + esc(n.types[t].lastNack.message);
      }).join('; ');
      var cls = worst === 'synced' ? '' : worst === 'nacked' || worst === 'stale' ? 'bad' : 'warn';
      return '<tr class="' + cls + '" data-node="' + esc(n.nodeId) + '"><td>' + esc(n.nodeId) + '</td><td>' + esc(n.cluster) + '</td><td>' + esc(n.service + '/' + n.variant) + '</td>' + cells +
        '<td class="wrap">' + (nacks || '<span class="muted">–</span>') + '</td><td>' + esc(n.userAgent) + '</td><td>' + since(n.connectedSince) + '</td></tr>';
    }).join('');
    $('nodes-body').innerHTML = '<p class="muted">' + esc(counts) + (body.matched !== body.total ? ', ' + body.matched + ' shown by the filter' : '') + '</p>' +
      '<div class="scroll"><table><thead><tr><th>node</th><th>cluster</th><th>stream</th><th>CDS</th><th>LDS</th><th>EDS</th><th>RDS</th><th>last NACK</th><th>agent</th><th>connected</th></tr></thead><tbody>' + rows + '</tbody></table></div>';
    pager('nodes-pager', 'nodes', body.matched, refresh);
  }

  function zoneText(zones) {
    return Object.keys(zones).sort().map(function (z) {
      var c = zones[z];
      return esc(z || '(no zone)') + ': ' + c.healthy + (c.draining ? ' · ' + c.draining + ' draining' : '') + (c.notReady ? ' · ' + c.notReady + ' not ready' : '');
    }).join('<br>');
  }
  function renderServices(body) {
    if (body.services.length === 0) {
      $('services-body').innerHTML = '<p class="muted">' + (body.total === 0 ? 'No service is served yet.' : 'No service matches.') + '</p>';
      pager('services-pager', 'services', body.matched, refresh);
      return;
    }
    var rows = body.services.map(function (s) {
      var cls = s.endpoints.healthy === 0 ? 'bad' : s.endpoints.draining || s.endpoints.notReady ? 'warn' : '';
      return '<tr class="' + cls + '" data-service="' + esc(s.name) + '"><td>' + esc(s.name) + '</td><td>' + esc(s.ports.join(', ')) + '</td><td class="healthy">' + s.endpoints.healthy + '</td><td>' + s.endpoints.draining + '</td><td>' + s.endpoints.notReady +
        '</td><td class="wrap">' + zoneText(s.zones) + '</td><td>' + (s.activeRequests === null ? '<span class="muted">no stats</span>' : esc(s.activeRequests)) + '</td><td>' + s.envoys + '</td></tr>';
    }).join('');
    $('services-body').innerHTML = '<p class="muted">' + body.total + ' services' + (body.matched !== body.total ? ', ' + body.matched + ' shown by the filter' : '') + '</p>' +
      '<div class="scroll"><table><thead><tr><th>service</th><th>ports</th><th>healthy</th><th>draining</th><th>not ready</th><th>by zone (healthy)</th><th>in flight</th><th>reporting Envoys</th></tr></thead><tbody>' + rows + '</tbody></table></div>';
    pager('services-pager', 'services', body.matched, refresh);
  }

  function renderFleet(fleet, nodes) {
    var services = Object.keys(fleet.services);
    var inFlight = 0, reporting = 0, withStats = 0;
    services.forEach(function (s) {
      var v = fleet.services[s];
      if (v) { inFlight += v.activeRequests; reporting = Math.max(reporting, v.envoys); withStats++; }
    });
    var stale = fleet.reporters.filter(function (r) { return r.ageMs > STALE_MS; });
    var tiles = [
      ['streams', nodes ? nodes.total : '–', false],
      ['out of sync', nodes ? nodes.outOfSync : '–', nodes && nodes.outOfSync > 0],
      ['services with stats', withStats + ' / ' + services.length, false],
      ['reporters', fleet.reportersTotal, false],
      ['in flight (all services)', inFlight, false],
      ['stale reporters (>' + STALE_MS / 1000 + 's)', stale.length + (fleet.reporters.length < fleet.reportersTotal ? '+' : ''), stale.length > 0],
    ].map(function (t) { return '<div class="tile' + (t[2] ? ' bad' : '') + '"><b>' + esc(t[1]) + '</b><span>' + esc(t[0]) + '</span></div>'; }).join('');
    var staleList = stale.length === 0 ? '' : '<p class="muted">Stalest reporters: ' + stale.slice(0, 10).map(function (r) { return esc(r.nodeId) + ' (' + age(r.ageMs) + ')'; }).join(', ') + '</p>';
    $('fleet-body').innerHTML = '<div class="tiles" id="fleet-tiles">' + tiles + '</div>' + staleList;
    $('fleet-body').className = '';
  }

  // Replicas over time: what the scaler asked for, what was ready, and the pods the demand needed at the
  // mode's target (in-flight ÷ target; a wide pale band under the others, so it shows where they coincide), on
  // one axis in pods, with times below and the scale at the left.
  function chart(points) {
    if (!points || points.length < 2) return '<p class="muted">Not enough decisions yet for a chart.</p>';
    var W = 400, H = 140, L = 34, R = 6, T = 8, B = 20;
    var t0 = Date.parse(points[0].at), t1 = Date.parse(points[points.length - 1].at) || t0 + 1;
    var max = 1;
    points.forEach(function (p) { max = Math.max(max, p.desired || 0, p.ready || 0, p.wanted || 0); });
    // A round top of the scale: 1, 2 or 5 times a power of ten.
    var step = Math.pow(10, Math.floor(Math.log10(max)));
    var top = [1, 2, 5, 10].map(function (m) { return m * step; }).filter(function (v) { return v >= max; })[0];
    function x(t) { return L + (W - L - R) * (t - t0) / Math.max(1, t1 - t0); }
    function y(v) { return H - B - (H - T - B) * v / top; }
    function line(key, color, dash, width) {
      var d = points.filter(function (p) { return p[key] !== null && p[key] !== undefined; }).map(function (p, i) {
        return (i ? 'L' : 'M') + x(Date.parse(p.at)).toFixed(1) + ' ' + y(p[key]).toFixed(1);
      }).join(' ');
      return d ? '<path d="' + d + '" fill="none" stroke="' + color + '" stroke-width="' + (width || 2) + '"' + (width ? ' stroke-opacity="0.45" stroke-linejoin="round"' : '') + (dash ? ' stroke-dasharray="' + dash + '"' : '') + ' data-series="' + key + '"/>' : '';
    }
    var axis = '<line x1="' + L + '" y1="' + y(0) + '" x2="' + (W - R) + '" y2="' + y(0) + '" stroke="#e2e2e6"/><line x1="' + L + '" y1="' + y(top) + '" x2="' + (W - R) + '" y2="' + y(top) + '" stroke="#e2e2e6"/>' +
      '<text x="' + (L - 4) + '" y="' + (y(top) + 4) + '" text-anchor="end" font-size="10" fill="#6b6b70">' + top + '</text>' +
      '<text x="' + (L - 4) + '" y="' + (y(0) + 3) + '" text-anchor="end" font-size="10" fill="#6b6b70">0</text>' +
      [0, 0.5, 1].map(function (f) {
        var t = t0 + f * (t1 - t0);
        return '<text x="' + x(t).toFixed(1) + '" y="' + (H - 5) + '" text-anchor="' + (f === 0 ? 'start' : f === 1 ? 'end' : 'middle') + '" font-size="10" fill="#6b6b70" data-tick="time">' + clock(t) + '</text>';
      }).join('');
    var last = points[points.length - 1];
    function now(key) { return last[key] === null || last[key] === undefined ? '' : ' ' + esc(last[key]); }
    return '<svg class="chart" viewBox="0 0 ' + W + ' ' + H + '" role="img" aria-label="replicas over time, in pods">' + axis +
      line('wanted', '#e08a1e', '', 6) + line('desired', '#2f5fd0', '') + line('ready', '#1f7a3a', '6 3') + '</svg>' +
      '<div class="legend"><span><i style="background:#2f5fd0"></i>desired' + now('desired') + '</span><span><i style="background:#1f7a3a"></i>ready' + now('ready') + '</span><span><i style="background:#e08a1e;opacity:.45;height:6px"></i>needed by demand' + now('wanted') +
      (last.demand !== null && last.demand !== undefined ? ' (' + esc(Math.round(last.demand)) + ' in flight)' : '') + '</span><span class="muted">pods now; the last ' + age(t1 - t0) + '</span></div>';
  }
  function renderScaler(res) {
    if (res.status === 404) {
      $('scaler-body').innerHTML = '<p class="muted">The scaler is not running in this process (start it with <code>inferplane serve --scaler</code>).</p>';
      return;
    }
    var s = res.body;
    var policy = s.policy;
    var head = '<p>Role <b>' + esc(s.role) + '</b>' + (s.leader ? ' (leader ' + esc(s.leader) + ')' : '') + (s.dryRun ? ' · <b>dry run</b>: decisions are not written' : '') +
      ' · policy ' + esc(policy.source) + (policy.version ? ' version ' + esc(String(policy.version).slice(0, 12)) + ' since ' + since(policy.loadedAt) + ' ago' : ' <b>none in force</b>') + '</p>';
    var shadowPolicy = s.shadowPolicy;
    if (shadowPolicy) head += '<p>Shadow policy ' + esc(shadowPolicy.source) + (shadowPolicy.version ? ' version ' + esc(String(shadowPolicy.version).slice(0, 12)) : ' <b>none valid yet</b>') + ': decided beside the active one, never applied' +
      (shadowPolicy.rejected ? '; its version ' + esc(String(shadowPolicy.rejected.version).slice(0, 12)) + ' was rejected: ' + esc(shadowPolicy.rejected.problems.join('; ')) : '') + '</p>';
    var rejected = policy.rejected ? '<div class="banner" id="policy-rejected">Policy version ' + esc(String(policy.rejected.version).slice(0, 12)) + ' rejected ' + since(policy.rejected.at) + ' ago; ' +
      (policy.version ? 'the previous one stays in force' : 'no policy is in force') + ':<pre>' + esc(policy.rejected.problems.join('\n')) + '</pre></div>' : '';
    var modes = s.modes || {};
    // The mode is what the data plane follows (its playbook): say why, and since when, when it is not normal.
    function modeOf(name, last) {
      var m = modes[name];
      if (m) return 'mode <b class="mode-' + esc(m.mode) + '">' + esc(m.mode) + '</b> (' + esc(m.reason) + ', ' + since(m.since) + (m.until ? ', until ' + esc(m.until) : '') + ') · ';
      return last ? 'mode <b>' + esc(last.mode || '–') + '</b> · ' : '';
    }
    var names = Object.keys(s.services).sort();
    var others = Object.keys(modes).filter(function (n) { return !s.services[n]; }).sort();
    if (others.length) head += '<p id="forced-modes">Modes of services the policy does not scale: ' + others.map(function (n) { return esc(n) + ' ' + modeOf(n, null).replace(/ · $/, ''); }).join('; ') + '</p>';
    var cards = names.length === 0 ? '<p class="muted">The policy lists no service.</p>' : '<div class="cards">' + names.map(function (name) {
      var v = s.services[name];
      var last = v.last;
      return '<div class="card" data-service="' + esc(name) + '"><h3>' + esc(name) + ' <span class="muted">→ ' + esc(v.deployment) + '</span></h3>' +
        '<div>' + modeOf(name, last) + 'replicas ' + esc(v.current === null ? '?' : v.current) + ' (' + esc(v.ready === null ? '?' : v.ready) + ' ready)' +
        (last ? ' · last: <b>' + esc(last.action) + '</b> to ' + esc(last.replicas === null ? '?' : last.replicas) + ', ' + esc(last.reason) + ' (' + esc(last.outcome) + ')' : '') + '</div>' +
        (last && last.error ? '<div class="banner">' + esc(last.error) + '</div>' : '') +
        (v.shadow ? '<div class="shadow">shadow policy (not applied): <b>' + esc(v.shadow.action) + '</b> to ' + esc(v.shadow.replicas) + ', ' + esc(v.shadow.reason) + ' (' + esc(v.shadow.mode) + ')</div>' : '') +
        (v.excludedReporters.length ? '<div class="muted">left out: ' + v.excludedReporters.map(function (r) { return esc(r.nodeId) + ' (' + esc(r.reason) + ')'; }).join('; ') + '</div>' : '') +
        chart(v.timeline) + '</div>';
    }).join('') + '</div>';
    // A scaler holding steady repeats itself every round: one row per run of equal decisions.
    var runs = [];
    s.decisions.forEach(function (d) {
      var key = [d.service, d.action, d.replicas, d.reason, d.mode, d.outcome, d.error].join('|');
      var prev = runs[runs.length - 1];
      if (prev && prev.key === key) { prev.count++; prev.first = d.at; } else runs.push({ key: key, d: d, count: 1, first: d.at });
    });
    var decisions = runs.length === 0 ? '' : '<h3>Last decisions</h3><div class="scroll"><table id="decisions"><thead><tr><th>at</th><th>service</th><th>action</th><th>replicas</th><th>reason</th><th>mode</th><th>outcome</th></tr></thead><tbody>' +
      runs.map(function (r) {
        var d = r.d;
        var at = r.count === 1 ? clock(d.at) : clock(r.first) + '–' + clock(d.at) + ' <span class="muted">×' + r.count + '</span>';
        // A dry run's decisions are not pending writes: their own colour, apart from PENDING's amber.
        return '<tr class="' + (d.outcome === 'error' || d.outcome === 'conflict' ? 'bad' : d.outcome === 'dry-run' ? 'dry' : d.action !== 'hold' ? 'warn' : '') + '"><td>' + at + '</td><td>' + esc(d.service) + '</td><td>' + esc(d.action) + '</td><td>' + esc(d.replicas === null ? '–' : d.replicas) +
          '</td><td>' + esc(d.reason) + '</td><td>' + esc(d.mode || '–') + '</td><td class="wrap">' + esc(d.outcome) + (d.error ? ': ' + esc(d.error) : '') + '</td></tr>';
      }).join('') + '</tbody></table></div>';
    $('scaler-body').innerHTML = head + rejected + cards + decisions;
    $('scaler-body').className = '';
  }

  var timer = null;
  var busy = false;
  var again = false;
  function refresh() {
    // A click or a filter during a poll is answered as soon as that poll is done.
    if (busy) { again = true; return; }
    busy = true;
    clearTimeout(timer);
    var n = state.nodes, sv = state.services;
    var nodesUrl = '/status/nodes?limit=' + PAGE + '&offset=' + n.offset + '&q=' + encodeURIComponent(n.q) + (n.oos ? '&outOfSync=1' : '');
    var servicesUrl = '/status/services?limit=' + PAGE + '&offset=' + sv.offset + '&q=' + encodeURIComponent(sv.q);
    // Without a scaler in this process there is nothing to ask (and a 404 would be a console error).
    get('/healthz').then(function (health) {
      return Promise.all([get('/readyz'), get(nodesUrl), get(servicesUrl), get('/status/fleet?reporters=100'), health.body.scaler ? get('/status/scaler?limit=50&timeline=300') : { status: 404 }]);
    }).then(function (r) {
      $('unreachable').hidden = true;
      var ready = r[0];
      $('ready').className = 'badge ' + (ready.status === 200 ? 'ok' : 'bad');
      $('ready').textContent = ready.status === 200 ? 'ready' : 'not ready: ' + (ready.body.reason || '');
      var refused = ready.body.refused || [];
      $('refused').hidden = refused.length === 0;
      $('refused').innerHTML = refused.length === 0 ? '' : '<b>Configuration refused; the last good one keeps serving:</b><pre>' + esc(refused.join('\n')) + '</pre>';
      renderNodes(r[1].body);
      renderServices(r[2].body);
      renderFleet(r[3].body, r[1].body);
      renderScaler(r[4]);
      $('updated').textContent = 'updated ' + clock(Date.now()) + ' · every ' + refreshMs / 1000 + ' s';
    }, function (e) {
      // Nothing answers: the badge must not keep saying "ready" for a server that is gone.
      $('ready').className = 'badge gone';
      $('ready').textContent = 'unreachable';
      $('unreachable').hidden = false;
      $('unreachable').textContent = 'The admin endpoint does not answer (' + (e && e.message ? e.message : e) + '); retrying every ' + refreshMs / 1000 + ' s. The figures below are from the last answer.';
    }).then(function () {
      busy = false;
      timer = setTimeout(refresh, again ? 0 : refreshMs);
      again = false;
    });
  }
  function onFilter(part, input, key) {
    var t = null;
    $(input).addEventListener('input', function () {
      clearTimeout(t);
      t = setTimeout(function () { state[part][key] = $(input).value.trim(); state[part].offset = 0; refresh(); }, 200);
    });
  }
  onFilter('nodes', 'nodes-q', 'q');
  onFilter('services', 'services-q', 'q');
  $('nodes-oos').addEventListener('change', function () { state.nodes.oos = $('nodes-oos').checked; state.nodes.offset = 0; refresh(); });
  refresh();
})();
</script>
</body>
</html>
`;
