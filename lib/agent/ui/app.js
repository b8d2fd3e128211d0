/*
 * smoothtask live dashboard (browser side). Plain ES2020, no framework, no bundler.
 *
 * Contract with the agent (lib/agent/http/dashboard.ts):
 * - Served at /ui/; uPlot 1.6.32 at /ui/vendor/uPlot.iife.min.js (global `uPlot`).
 * - Every API call carries `Authorization: Bearer <token>`. The token comes from the login form
 *   or from `#token=<t>` (then removed from the URL); kept in sessionStorage `smoothtask.token`.
 *   401/403 show the login form again with the server's `{ error: { code, message } }` message.
 * - ONE live stream: fetch('<prefix>/v1/dashboard/stream') read as Server-Sent Events by hand (EventSource
 *   cannot send Authorization). Reconnects after 1 s, backing off to 10 s, with Last-Event-ID.
 *   Events: hello {version, hostname, scopes, intervalMs}; node {...}; tasks {full, items, removed};
 *   alerts {items}; ebpf {available, reason, programs, maps, cache, droppedEvents}.
 * - REST: GET /v1/tasks/:id and POST /v1/tasks/:id/cancel (both answer { task: record }), GET /v1/tasks/:id/logs?follow=true (SSE
 *   `event: log` data {offset, stream, data}, id = byte offset, final `event: end`),
 *   GET /v1/tasks/:id/artifacts (fetched with the header, saved through an object URL).
 * - Pages (hash routes): #/node (default), #/tasks, #/tasks/<id>, #/alerts, #/ebpf.
 * - All data goes into the DOM through textContent (ids, labels and logs are untrusted).
 * - Test hook: window.__dashboard = { connected, lastEventId, events, charts, route, ... }.
 */
'use strict';

(() => {
  const TOKEN_KEY = 'smoothtask.token';
  const MAX_POINTS = 300; // ring buffer size per chart
  const WINDOW_S = 300; // charts show the last 5 minutes
  const MAX_LOG_LINES = 1000;
  const TASK_STATES = ['created', 'queued', 'starting', 'running', 'retrying', 'succeeded', 'failed', 'timed_out', 'cancelled', 'cleaning', 'archived'];
  const FINISHED = new Set(['succeeded', 'failed', 'timed_out', 'cancelled', 'cleaning', 'archived']);
  const ALERT_ORDER = { firing: 0, pending: 1, resolved: 2 };
  // The agent may mount its routes under a prefix: the page lives at `<prefix>/ui/`, the API at `<prefix>/v1/`.
  const uiAt = location.pathname.lastIndexOf('/ui/');
  const API = uiAt > 0 ? location.pathname.slice(0, uiAt) : '';

  // ---------------------------------------------------------------- state

  const state = {
    token: null,
    hello: null,
    tasks: new Map(), // id -> TaskRow
    alerts: [],
    ebpf: null,
    node: null,
    streamGen: 0, // bumps to stop an older connection loop
    streamAbort: null,
  };

  /** Test hook, kept up to date. */
  const dash = {
    connected: false,
    lastEventId: null,
    events: { hello: 0, node: 0, tasks: 0, alerts: 0, ebpf: 0 },
    charts: {},
    route: '',
    hostname: null,
    scopes: [],
  };
  window.__dashboard = dash;

  // ---------------------------------------------------------------- helpers

  const $ = (id) => document.getElementById(id);

  /** Creates an element with text content and attributes (never innerHTML). */
  function el(tag, text, attrs) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (attrs) for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
    return e;
  }

  /** A table row of plain-text cells; a cell may be given as a ready Node or {text, cls, col}. */
  function row(cells, attrs) {
    const tr = el('tr', null, attrs);
    for (const c of cells) {
      if (c instanceof Node) {
        const td = el('td');
        td.append(c);
        tr.append(td);
      } else if (c && typeof c === 'object') {
        tr.append(el('td', c.text, { class: c.cls, 'data-col': c.col }));
      } else tr.append(el('td', c));
    }
    return tr;
  }

  function fmtBytes(n) {
    if (n === null || n === undefined || !Number.isFinite(n)) return '—';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let v = Math.abs(n);
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return `${n < 0 ? '-' : ''}${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${u[i]}`;
  }

  function fmtNum(n, digits = 1) {
    if (n === null || n === undefined || !Number.isFinite(n)) return '—';
    return Number.isInteger(n) ? n.toLocaleString() : n.toLocaleString(undefined, { maximumFractionDigits: digits });
  }

  function fmtTime(ms) {
    if (!ms) return '—';
    const d = new Date(ms);
    return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
  }

  function fmtDuration(ms) {
    if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return '—';
    const s = ms / 1000;
    if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`;
    return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
  }

  function fmtNs(ns) {
    if (ns === null || ns === undefined || !Number.isFinite(ns)) return '—';
    if (ns < 1e3) return `${ns.toFixed(0)} ns`;
    if (ns < 1e6) return `${(ns / 1e3).toFixed(1)} µs`;
    if (ns < 1e9) return `${(ns / 1e6).toFixed(1)} ms`;
    return `${(ns / 1e9).toFixed(2)} s`;
  }

  const fmtLabels = (labels) => Object.entries(labels || {}).map(([k, v]) => `${k}=${v}`).join(', ');

  function taskDuration(t, now) {
    const start = t.startedAt ?? (t.timings && (t.timings.startedAt ?? t.timings.runningAt));
    const end = t.finishedAt ?? (t.timings && t.timings.endedAt);
    if (!start) return null;
    if (end) return end - start;
    return FINISHED.has(t.state) ? null : now - start;
  }

  function authHeaders(extra) {
    return Object.assign({ authorization: `Bearer ${state.token}` }, extra);
  }

  /** The server's error message from a failed response. */
  async function errorMessage(res) {
    try {
      const body = await res.json();
      if (body && body.error && body.error.message) return body.error.message;
    } catch { /* not JSON */ }
    return `HTTP ${res.status} ${res.statusText}`.trim();
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  /**
   * Reads a fetch Response body as Server-Sent Events; calls onEvent({event, id, data}) for each.
   * Resolves when the body ends; rejects on network errors or abort.
   */
  async function readSSE(res, onEvent) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    let ev = { event: 'message', id: null, data: [] };
    const line = (l) => {
      if (l === '') {
        if (ev.data.length) onEvent({ event: ev.event, id: ev.id, data: ev.data.join('\n') });
        ev = { event: 'message', id: null, data: [] };
        return;
      }
      if (l[0] === ':') return; // heartbeat / comment
      const i = l.indexOf(':');
      const field = i < 0 ? l : l.slice(0, i);
      let value = i < 0 ? '' : l.slice(i + 1);
      if (value[0] === ' ') value = value.slice(1);
      if (field === 'event') ev.event = value;
      else if (field === 'data') ev.data.push(value);
      else if (field === 'id') ev.id = value;
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        let l = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (l.endsWith('\r')) l = l.slice(0, -1);
        line(l);
      }
    }
  }

  // ---------------------------------------------------------------- auth

  function showLogin(message) {
    stopStream();
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $('login-error').textContent = message || '';
    $('logout').hidden = true;
    setConn('disconnected', 'signed out');
    route();
  }

  function signIn(token) {
    state.token = token;
    dash.lastEventId = null; // a new sign-in starts a fresh stream
    sessionStorage.setItem(TOKEN_KEY, token);
    $('login-error').textContent = '';
    $('logout').hidden = false;
    startStream();
    route();
  }

  // ---------------------------------------------------------------- live stream

  function setConn(kind, text) {
    const c = $('conn');
    c.dataset.state = kind;
    c.textContent = text;
    dash.connected = kind === 'connected';
  }

  function stopStream() {
    state.streamGen++;
    if (state.streamAbort) state.streamAbort.abort();
    state.streamAbort = null;
  }

  async function startStream() {
    stopStream();
    const gen = state.streamGen;
    let delay = 1000;
    while (gen === state.streamGen && state.token) {
      const ac = new AbortController();
      state.streamAbort = ac;
      setConn(dash.lastEventId === null ? 'connecting' : 'reconnecting', dash.lastEventId === null ? 'connecting…' : 'reconnecting…');
      try {
        const headers = authHeaders({ accept: 'text/event-stream' });
        if (dash.lastEventId !== null) headers['last-event-id'] = dash.lastEventId;
        const res = await fetch(`${API}/v1/dashboard/stream`, { headers, signal: ac.signal, cache: 'no-store' });
        if (res.status === 401 || res.status === 403) {
          const msg = await errorMessage(res);
          if (gen === state.streamGen) showLogin(msg);
          return;
        }
        if (!res.ok || !res.body) throw new Error(await errorMessage(res));
        setConn('connected', 'connected');
        await readSSE(res, (ev) => {
          if (gen !== state.streamGen) return;
          delay = 1000; // the server is healthy again: reset the back-off
          onStreamEvent(ev);
        });
      } catch {
        // network error, abort, or server error: fall through to the retry below
      }
      if (gen !== state.streamGen) return;
      setConn('reconnecting', `reconnecting in ${Math.round(delay / 1000)} s…`);
      await sleep(delay);
      delay = Math.min(delay * 2, 10000);
    }
  }

  function onStreamEvent(ev) {
    if (ev.id !== null) dash.lastEventId = ev.id;
    let data;
    try { data = JSON.parse(ev.data); } catch { return; }
    if (ev.event in dash.events) dash.events[ev.event]++;
    switch (ev.event) {
      case 'hello': onHello(data); break;
      case 'node': onNode(data); break;
      case 'tasks': onTasks(data); break;
      case 'alerts': state.alerts = Array.isArray(data.items) ? data.items : []; if (dash.route === '/alerts') renderAlerts(); break;
      case 'ebpf': state.ebpf = data; if (dash.route === '/ebpf') renderEbpf(); break;
      default: break; // unknown events are ignored
    }
  }

  function onHello(h) {
    state.hello = h;
    dash.hostname = h.hostname;
    dash.scopes = Array.isArray(h.scopes) ? h.scopes : [];
    $('host').textContent = `${h.hostname || '?'} · v${h.version || '?'}`;
    if (dash.route.startsWith('/tasks/')) renderTaskActions();
  }

  // ---------------------------------------------------------------- node page: charts

  /** One chart: columns [x, y1, y2, ...] as ring buffers, and a uPlot made lazily when shown. */
  function makeChart(key, series, opts) {
    const c = { key, series, opts, cols: series.map(() => []).concat([[]]), plot: null, dirty: false, na: null };
    dash.charts[key] = { points: 0, last: null };
    return c;
  }

  const bytesAxis = (u, vals) => vals.map((v) => fmtBytes(v));
  const charts = {
    cpu: makeChart('cpu', [{ label: 'busy %', stroke: '#2563eb', fill: 'rgba(37,99,235,0.08)' }], { range: [0, 100] }),
    memory: makeChart('memory', [{ label: 'used', stroke: '#7c3aed', fill: 'rgba(124,58,237,0.08)', value: (u, v) => fmtBytes(v) }], { axis: bytesAxis, axisSize: 70 }),
    load: makeChart('load', [
      { label: '1 min', stroke: '#dc2626' },
      { label: '5 min', stroke: '#ea580c' },
      { label: '15 min', stroke: '#ca8a04' },
    ], {}),
    runq: makeChart('runq', [
      { label: 'p50 µs', stroke: '#059669' },
      { label: 'p99 µs', stroke: '#0891b2' },
    ], {}),
  };

  /** Appends one point (x in seconds, strictly ascending) or marks the series as not available. */
  function pushPoint(c, xSec, ys, naText) {
    c.na = naText;
    const info = dash.charts[c.key];
    if (naText === null) {
      const xs = c.cols[0];
      if (xs.length && xSec <= xs[xs.length - 1]) return; // keep x strictly ascending
      c.cols[0].push(xSec);
      ys.forEach((y, i) => c.cols[i + 1].push(Number.isFinite(y) ? y : null));
      while (xs.length > MAX_POINTS || (xs.length && xs[0] < xSec - WINDOW_S)) c.cols.forEach((col) => col.shift());
      info.last = Number.isFinite(ys[0]) ? ys[0] : null;
    } else info.last = null;
    info.points = c.cols[0].length;
    c.dirty = true;
  }

  function chartWidth(fig) {
    return Math.max(280, Math.floor(fig.clientWidth || 560) - 20); // minus the figure's padding
  }

  /** Creates the uPlot instances (only while the node page is visible, so they get a real width). */
  function ensurePlots() {
    if (typeof window.uPlot !== 'function') return;
    for (const c of Object.values(charts)) {
      if (c.plot) continue;
      const fig = $(`chart-${c.key}`);
      const opts = {
        width: chartWidth(fig),
        height: 170,
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, y: c.opts.range ? { range: c.opts.range } : { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
        axes: [{}, c.opts.axis ? { values: c.opts.axis, size: c.opts.axisSize ?? 60 } : { size: c.opts.axisSize ?? 60 }],
        series: [{}].concat(c.series.map((s) => Object.assign({ width: 1.5, spanGaps: false }, s))),
      };
      c.plot = new window.uPlot(opts, c.cols.map((col) => col.slice()), fig.querySelector('.plot'));
      c.dirty = true;
    }
  }

  let drawPending = false;
  /** Redraws dirty charts at most once per animation frame. */
  function scheduleDraw() {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => {
      drawPending = false;
      if (dash.route !== '/node' || !state.token) return;
      ensurePlots();
      for (const c of Object.values(charts)) {
        const fig = $(`chart-${c.key}`);
        const na = fig.querySelector('.na');
        na.hidden = c.na === null;
        na.textContent = c.na || '';
        fig.querySelector('.plot').hidden = c.na !== null;
        if (c.plot && c.dirty) {
          c.plot.setData(c.cols.map((col) => col.slice()));
          c.dirty = false;
        }
      }
    });
  }

  window.addEventListener('resize', () => {
    for (const c of Object.values(charts)) {
      if (c.plot) c.plot.setSize({ width: chartWidth($(`chart-${c.key}`)), height: 170 });
    }
  });

  // ---------------------------------------------------------------- node page: tables

  function onNode(n) {
    state.node = n;
    const x = (n.at || Date.now()) / 1000;
    const cpu = n.cpu || {};
    pushPoint(charts.cpu, x, [cpu.busyPct], cpu.busyPct === null || cpu.busyPct === undefined ? 'not available: CPU busy time is not measured on this host' : null);
    const mem = n.memory;
    pushPoint(charts.memory, x, [mem ? mem.usedBytes : null], mem ? null : 'not available: memory is not measured on this host');
    const ld = n.load;
    pushPoint(charts.load, x, ld ? [ld.one, ld.five, ld.fifteen] : [], ld ? null : 'not available: load averages are not measured on this host');
    const rq = n.runqLatencyUs;
    pushPoint(charts.runq, x, rq ? [rq.p50, rq.p99] : [], rq ? null : 'not available: run-queue latency needs the eBPF backend on this host');
    if (dash.route === '/node') { scheduleDraw(); renderNodeTables(); }
  }

  function setBackend(id, fam) {
    const b = state.node && state.node.backends;
    $(id).textContent = b && b[fam] ? `(${b[fam]})` : '';
  }

  function renderHw(boxId, hw) {
    const box = $(boxId).querySelector('.hw');
    box.replaceChildren();
    if (!hw || !hw.present) {
      box.append(el('p', `not present on this host: ${(hw && hw.reason) || 'unknown'}`, { class: 'na' }));
      return;
    }
    const t = el('table', null, { 'aria-label': `${boxId.slice(3)} readings` });
    const tb = el('tbody');
    for (const it of hw.items || []) tb.append(row([it.label, { text: `${fmtNum(it.value, 2)} ${it.unit || ''}`.trim(), cls: 'num' }]));
    if (!tb.children.length) tb.append(row(['no readings']));
    t.append(tb);
    box.append(t);
  }

  function renderNodeTables() {
    const n = state.node;
    $('node-waiting').hidden = !!n;
    if (!n) return;
    const b = n.backends || {};
    $('node-backends').textContent = Object.keys(b).length ? `Backends: ${Object.entries(b).map(([k, v]) => `${k} ${v}`).join(' · ')}` : '';
    $('cpu-cores').textContent = n.cpu && n.cpu.cores ? `(${n.cpu.cores} cores)` : '';
    $('mem-total').textContent = n.memory ? `(${fmtBytes(n.memory.usedBytes)} of ${fmtBytes(n.memory.totalBytes)}, ${fmtBytes(n.memory.availableBytes)} available)` : '';
    setBackend('proc-backend', 'processes');
    setBackend('cont-backend', 'containers');
    setBackend('disk-backend', 'disks');

    const pt = $('proc-table').tBodies[0];
    pt.replaceChildren(...(n.processes || []).map((p) => row([
      { text: p.pid, cls: 'num', col: 'pid' }, { text: p.comm, col: 'comm' }, { text: fmtNum(p.cpuPct), cls: 'num', col: 'cpu' }, { text: fmtBytes(p.rssBytes), cls: 'num', col: 'rss' },
    ], { 'data-pid': p.pid })));
    if (!pt.children.length) pt.append(row(['no busy processes this second']));

    const cont = n.containers;
    $('cont-na').hidden = !!cont;
    $('cont-na').textContent = cont ? '' : 'not available: containers are not measured on this host';
    $('cont-table').hidden = !cont;
    if (cont) {
      const ct = $('cont-table').tBodies[0];
      ct.replaceChildren(...cont.map((c) => row([c.name, { text: String(c.id).slice(0, 12), cls: 'mono' }, { text: fmtNum(c.cpuPct), cls: 'num' }], { 'data-container': c.id })));
      if (!ct.children.length) ct.append(row(['no containers running']));
    }

    $('tcp').textContent = n.tcp ? `${fmtNum(n.tcp.connections)} connections` : 'not available: TCP connections are not measured on this host';
    $('tcp').className = n.tcp ? '' : 'na';

    const disks = n.disks;
    $('disk-na').hidden = !!disks;
    $('disk-na').textContent = disks ? '' : 'not available: disk throughput is not measured on this host';
    $('disk-table').hidden = !disks;
    if (disks) {
      const dt = $('disk-table').tBodies[0];
      dt.replaceChildren(...disks.map((d) => row([d.name, { text: `${fmtBytes(d.readBytesPerSec)}/s`, cls: 'num' }, { text: `${fmtBytes(d.writeBytesPerSec)}/s`, cls: 'num' }])));
      if (!dt.children.length) dt.append(row(['no disks']));
    }

    const hw = n.hardware || {};
    renderHw('hw-gpu', hw.gpu);
    renderHw('hw-thermal', hw.thermal);
    renderHw('hw-power', hw.power);
  }

  // ---------------------------------------------------------------- tasks page

  function onTasks(d) {
    if (d.full) state.tasks.clear();
    for (const t of d.items || []) state.tasks.set(t.id, t);
    for (const id of d.removed || []) state.tasks.delete(id);
    updateKindOptions();
    if (dash.route === '/tasks') renderTasks();
    if (detail.id !== null && (d.full || (d.items || []).some((t) => t.id === detail.id) || (d.removed || []).includes(detail.id))) loadTask();
  }

  function updateKindOptions() {
    const sel = $('filter-kind');
    const have = new Set([...sel.options].map((o) => o.value));
    const kinds = [...new Set([...state.tasks.values()].map((t) => t.kind))].filter((k) => k && !have.has(k)).sort();
    for (const k of kinds) sel.append(el('option', k, { value: k }));
  }

  function renderTasks() {
    const fs = $('filter-state').value;
    const fk = $('filter-kind').value;
    const q = $('filter-text').value.trim().toLowerCase();
    const now = Date.now();
    const rows = [...state.tasks.values()]
      .filter((t) => (!fs || t.state === fs) && (!fk || t.kind === fk) &&
        (!q || t.id.toLowerCase().includes(q) || fmtLabels(t.labels).toLowerCase().includes(q)))
      .sort((a, b) => (b.createdAt || 0) - (a.createdAt || 0) || (a.id < b.id ? 1 : -1));
    const shown = rows.slice(0, 1000);
    $('tasks-table').tBodies[0].replaceChildren(...shown.map((t) => {
      const a = el('a', t.id, { href: `#/tasks/${encodeURIComponent(t.id)}` });
      const labels = fmtLabels(t.labels);
      if (labels) a.title = labels;
      return row([
        a,
        { text: t.state, col: 'state', cls: `state state-${t.state}` },
        { text: t.kind, col: 'kind' },
        { text: fmtDuration(taskDuration(t, now)), col: 'duration', cls: 'num' },
        { text: t.exitCode ?? '—', col: 'exit', cls: 'num' },
        { text: t.attempt, col: 'attempt', cls: 'num' },
        { text: fmtTime(t.createdAt), col: 'created' },
      ], { 'data-task-id': t.id });
    }));
    $('tasks-empty').hidden = rows.length > 0;
    $('tasks-count').textContent = `${rows.length} of ${state.tasks.size} tasks${rows.length > shown.length ? ` (first ${shown.length} shown)` : ''}`;
  }

  for (const id of ['filter-state', 'filter-kind', 'filter-text']) $(id).addEventListener('input', renderTasks);
  for (const s of TASK_STATES) $('filter-state').append(el('option', s, { value: s }));

  // ---------------------------------------------------------------- task detail page

  const detail = { id: null, record: null, loading: false, again: false, logAbort: null, logLines: [''], logOffset: null, logDirty: false };

  function openTask(id) {
    if (detail.id === id) return;
    closeTask();
    detail.id = id;
    detail.record = null;
    detail.logLines = [''];
    detail.logOffset = null;
    $('task-id').textContent = id;
    $('task-error').textContent = '';
    $('task-action-result').textContent = '';
    $('task-state').textContent = '…';
    $('task-log').textContent = '';
    $('task-spec').textContent = '';
    $('task-history').tBodies[0].replaceChildren();
    clearInfo();
    renderTaskActions();
    loadTask();
    followLog(id);
  }

  function closeTask() {
    detail.id = null;
    detail.record = null;
    if (detail.logAbort) detail.logAbort.abort();
    detail.logAbort = null;
  }

  /** Fetches the record (one request at a time; a request asked for meanwhile runs after it). */
  async function loadTask() {
    if (detail.loading) { detail.again = true; return; }
    const id = detail.id;
    if (id === null || !state.token) return;
    detail.loading = true;
    try {
      const res = await fetch(`${API}/v1/tasks/${encodeURIComponent(id)}`, { headers: authHeaders({ accept: 'application/json' }), cache: 'no-store' });
      if (detail.id !== id) return;
      if (res.status === 401) { showLogin(await errorMessage(res)); return; }
      if (!res.ok) {
        $('task-error').textContent = res.status === 404 ? `Task ${id} was not found (${await errorMessage(res)})` : await errorMessage(res);
        return;
      }
      const body = await res.json();
      detail.record = body.task || body; // the API answers { task: record }
      $('task-error').textContent = '';
      renderTask();
    } catch (e) {
      if (detail.id === id) $('task-error').textContent = `Could not load the task: ${e.message}`;
    } finally {
      detail.loading = false;
      if (detail.again) { detail.again = false; loadTask(); }
    }
  }

  function clearInfo() {
    const dl = $('task-info');
    while (dl.children.length > 2) dl.lastElementChild.remove();
  }

  function renderTask() {
    const r = detail.record;
    if (!r) return;
    document.title = `Task ${r.id} — smoothtask`;
    $('task-state').textContent = r.state;
    $('task-state').className = `state state-${r.state}`;
    clearInfo();
    const tm = r.timings || {};
    const info = [
      ['Kind', r.kind],
      ['Labels', fmtLabels(r.labels) || '—'],
      ['Attempt', r.attempt],
      ['Exit code', r.exitCode ?? '—'],
      ['Signal', r.signal ?? '—'],
      ['Created', fmtTime(tm.createdAt)],
      ['Started', fmtTime(tm.startedAt ?? tm.runningAt)],
      ['Ended', fmtTime(tm.endedAt)],
      ['Duration', fmtDuration(FINISHED.has(r.state) ? (tm.durationMs ?? taskDuration(r, Date.now())) : taskDuration(r, Date.now()))],
    ];
    if (r.error) info.push(['Error', `${r.error.code}: ${r.error.message}`]);
    const dl = $('task-info');
    for (const [k, v] of info) dl.append(el('dt', k), el('dd', v));
    $('task-history').tBodies[0].replaceChildren(...(r.history || []).map((h) => row([fmtTime(h.at), h.from, h.to, h.reason || ''])));
    $('task-spec').textContent = JSON.stringify(r.spec ?? null, null, 2);
    renderTaskActions();
  }

  function renderTaskActions() {
    const r = detail.record;
    const canSubmit = dash.scopes.includes('submit');
    $('task-cancel').hidden = !(canSubmit && r && !FINISHED.has(r.state));
    const art = $('task-artifacts');
    art.disabled = !(r && FINISHED.has(r.state));
    art.title = art.disabled ? 'Artifacts can be downloaded once the task has finished' : '';
  }

  $('task-cancel').addEventListener('click', async () => {
    const id = detail.id;
    const out = $('task-action-result');
    $('task-cancel').disabled = true;
    out.textContent = 'Cancelling…';
    try {
      const res = await fetch(`${API}/v1/tasks/${encodeURIComponent(id)}/cancel`, { method: 'POST', headers: authHeaders({ accept: 'application/json' }) });
      if (detail.id !== id) return;
      if (res.ok) {
        const body = await res.json().catch(() => null);
        const rec = body && (body.task || body); // { task: record }
        out.textContent = `Cancel requested: the task is ${rec && rec.state ? rec.state : 'stopping'}.`;
        if (rec && rec.id === id) { detail.record = rec; renderTask(); }
        loadTask();
      } else out.textContent = `Cancel failed: ${await errorMessage(res)}`;
    } catch (e) {
      out.textContent = `Cancel failed: ${e.message}`;
    } finally {
      $('task-cancel').disabled = false;
    }
  });

  $('task-artifacts').addEventListener('click', async () => {
    const id = detail.id;
    const out = $('task-action-result');
    out.textContent = 'Downloading artifacts…';
    try {
      const res = await fetch(`${API}/v1/tasks/${encodeURIComponent(id)}/artifacts`, { headers: authHeaders() });
      if (!res.ok) { out.textContent = `Download failed: ${await errorMessage(res)}`; return; }
      const blob = await res.blob();
      const url = URL.createObjectURL(blob);
      const a = el('a', null, { href: url, download: `${id}-artifacts.zip` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      out.textContent = `Downloaded ${fmtBytes(blob.size)}.`;
    } catch (e) {
      out.textContent = `Download failed: ${e.message}`;
    }
  });

  /** Follows the task log (SSE); keeps the last MAX_LOG_LINES lines; resumes from the last offset. */
  async function followLog(id) {
    let delay = 1000;
    while (detail.id === id && state.token) {
      const ac = new AbortController();
      detail.logAbort = ac;
      $('task-log-status').textContent = '(following)';
      let ended = false;
      try {
        const headers = authHeaders({ accept: 'text/event-stream' });
        if (detail.logOffset !== null) headers['last-event-id'] = detail.logOffset;
        const res = await fetch(`${API}/v1/tasks/${encodeURIComponent(id)}/logs?follow=true`, { headers, signal: ac.signal, cache: 'no-store' });
        if (res.status === 401) { showLogin(await errorMessage(res)); return; }
        if (!res.ok) {
          $('task-log-status').textContent = `(log not available: ${await errorMessage(res)})`;
          return;
        }
        await readSSE(res, (ev) => {
          if (detail.id !== id) return;
          if (ev.event === 'end') { ended = true; return; }
          if (ev.event !== 'log') return;
          if (ev.id !== null) detail.logOffset = ev.id;
          let text;
          try {
            const d = JSON.parse(ev.data);
            text = typeof d === 'string' ? d : d && typeof d.data === 'string' ? d.data : '';
          } catch { return; }
          appendLog(text);
          delay = 1000;
        });
      } catch {
        if (ac.signal.aborted) return;
      }
      if (detail.id !== id) return;
      if (ended) { $('task-log-status').textContent = '(task finished: end of log)'; return; }
      $('task-log-status').textContent = '(reconnecting…)';
      await sleep(delay);
      delay = Math.min(delay * 2, 10000);
    }
  }

  function appendLog(text) {
    const parts = text.split('\n');
    const lines = detail.logLines;
    lines[lines.length - 1] += parts[0];
    for (let i = 1; i < parts.length; i++) lines.push(parts[i]);
    if (lines.length > MAX_LOG_LINES + 1) lines.splice(0, lines.length - MAX_LOG_LINES - 1);
    if (!detail.logDirty) {
      detail.logDirty = true;
      requestAnimationFrame(() => {
        detail.logDirty = false;
        const pre = $('task-log');
        const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
        pre.textContent = detail.logLines.join('\n');
        if (atBottom) pre.scrollTop = pre.scrollHeight;
      });
    }
  }

  // ---------------------------------------------------------------- alerts page

  function renderAlerts() {
    const items = [...state.alerts].sort((a, b) =>
      (ALERT_ORDER[a.state] ?? 3) - (ALERT_ORDER[b.state] ?? 3) || (b.activeAt || 0) - (a.activeAt || 0));
    $('alerts-table').tBodies[0].replaceChildren(...items.map((a) => row([
      { text: a.rule, col: 'rule' },
      { text: a.state, col: 'state', cls: `state alert-${a.state}` },
      { text: fmtLabels(a.labels) || '—', col: 'labels' },
      { text: fmtNum(a.value, 3), col: 'value', cls: 'num' },
      { text: fmtTime(a.activeAt), col: 'active' },
      { text: fmtTime(a.firedAt), col: 'fired' },
      { text: fmtTime(a.resolvedAt), col: 'resolved' },
    ], { 'data-rule': a.rule, 'data-state': a.state })));
    $('alerts-empty').hidden = items.length > 0;
  }

  // ---------------------------------------------------------------- eBPF page

  function renderEbpf() {
    const e = state.ebpf;
    $('ebpf-waiting').hidden = !!e;
    if (!e) return;
    $('ebpf-reason').hidden = e.available;
    $('ebpf-reason').textContent = e.available ? '' : `eBPF not available: ${e.reason || 'no reason given'}`;
    $('ebpf-programs').tBodies[0].replaceChildren(...(e.programs || []).map((p) => row([
      { text: p.id, cls: 'num' }, p.name, p.type, { text: fmtNum(p.runCount), cls: 'num' }, { text: fmtNs(p.runTimeNs), cls: 'num' },
      { text: p.runCount && p.runTimeNs !== null ? fmtNs(p.runTimeNs / p.runCount) : '—', cls: 'num' },
    ], { 'data-prog-id': p.id })));
    if (!(e.programs || []).length) $('ebpf-programs').tBodies[0].append(row(['no programs loaded']));
    const maps = e.maps || [];
    $('ebpf-maps').tBodies[0].replaceChildren(...maps.map((m) => row([{ text: m.id, cls: 'num' }, m.name, m.type, { text: fmtBytes(m.bytes), cls: 'num' }], { 'data-map-id': m.id })));
    if (!maps.length) $('ebpf-maps').tBodies[0].append(row(['no maps']));
    $('ebpf-maps-total').textContent = fmtBytes(maps.reduce((s, m) => s + (m.bytes || 0), 0));
    const c = e.cache;
    $('ebpf-cache-na').hidden = !!c;
    $('ebpf-cache-na').textContent = c ? '' : 'not available: no program cache on this host';
    $('ebpf-cache').hidden = !c;
    if (c) {
      const total = (c.hits || 0) + (c.misses || 0);
      $('ebpf-cache').tBodies[0].replaceChildren(
        ...[['Hits', fmtNum(c.hits)], ['Misses', fmtNum(c.misses)], ['Hit rate', total ? `${((100 * c.hits) / total).toFixed(1)} %` : '—'],
          ['Entries', fmtNum(c.entries)], ['Size', fmtBytes(c.bytes)], ['Evictions', fmtNum(c.evictions)]]
          .map(([k, v]) => { const tr = el('tr'); tr.append(el('th', k, { scope: 'row' }), el('td', v, { class: 'num' })); return tr; }));
    }
    $('ebpf-dropped').textContent = e.droppedEvents === null || e.droppedEvents === undefined ? 'not available: dropped events are not counted on this host' : `${fmtNum(e.droppedEvents)} events dropped`;
    $('ebpf-dropped').className = e.droppedEvents === null || e.droppedEvents === undefined ? 'na' : '';
  }

  // ---------------------------------------------------------------- routing

  const PAGES = ['login', 'node', 'tasks', 'task', 'alerts', 'ebpf'];
  const TITLES = { login: 'Sign in', node: 'Node', tasks: 'Tasks', alerts: 'Alerts', ebpf: 'eBPF' };

  function route() {
    const hash = location.hash.replace(/^#/, '');
    let path = hash.startsWith('/') ? hash : '/node';
    let page = path.split('/')[1];
    let taskId = null;
    if (page === 'tasks' && path.length > '/tasks/'.length) {
      try { taskId = decodeURIComponent(path.slice('/tasks/'.length)); } catch { taskId = null; }
      page = taskId ? 'task' : 'tasks';
    }
    if (!TITLES[page] && page !== 'task') { page = 'node'; path = '/node'; }
    if (!state.token) page = 'login';
    dash.route = page === 'login' ? '/login' : path;

    for (const p of PAGES) $(`page-${p}`).hidden = p !== page;
    for (const a of document.querySelectorAll('nav a')) {
      const active = a.dataset.route === (page === 'task' ? 'tasks' : page);
      if (active) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
    document.title = page === 'task' ? `Task ${taskId} — smoothtask` : `${TITLES[page]} — smoothtask`;

    if (page === 'task') openTask(taskId); else closeTask();
    if (page === 'node') { renderNodeTables(); scheduleDraw(); }
    if (page === 'tasks') renderTasks();
    if (page === 'alerts') renderAlerts();
    if (page === 'ebpf') renderEbpf();
    if (page === 'login') $('login-token').focus();
  }

  // Live durations on the tasks page: only the duration cells of unfinished tasks change.
  setInterval(() => {
    if (dash.route !== '/tasks' || !state.token) return;
    const now = Date.now();
    for (const tr of $('tasks-table').tBodies[0].rows) {
      const t = state.tasks.get(tr.dataset.taskId);
      if (t && !FINISHED.has(t.state)) tr.querySelector('[data-col=duration]').textContent = fmtDuration(taskDuration(t, now));
    }
  }, 1000);

  /** Takes a `#token=<t>` fragment into sessionStorage and removes it from the URL; true if found. */
  function takeTokenFromHash() {
    const m = /^#token=([^&]*)/.exec(location.hash);
    if (!m) return false;
    let t = m[1];
    try { t = decodeURIComponent(t); } catch { /* keep raw */ }
    sessionStorage.setItem(TOKEN_KEY, t);
    history.replaceState(null, '', `${location.pathname}${location.search}#/node`);
    return true;
  }

  window.addEventListener('hashchange', () => {
    if (takeTokenFromHash()) signIn(sessionStorage.getItem(TOKEN_KEY));
    else route();
  });

  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('login-token').value.trim();
    $('login-token').value = '';
    if (t) signIn(t);
  });

  $('logout').addEventListener('click', () => showLogin(''));

  // ---------------------------------------------------------------- start

  function init() {
    takeTokenFromHash();
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) signIn(token);
    else route();
  }

  init();
})();
