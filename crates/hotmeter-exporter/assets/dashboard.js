// hotmeter dashboard: polls /dashboard/history once a second and draws
// plain SVG charts. Every label value, help text and source field reaches
// the page through textContent or SVG text nodes, never as markup.
'use strict';
(function () {
  const SVG = 'http://www.w3.org/2000/svg';
  const H = 180, L = 46, R = 8, T = 8, B = 20;
  const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];
  const WARN = '#c77700', CRIT = '#c62828';

  // ---- data: one time axis, every series' points aligned to it ----
  const store = { times: [], series: new Map(), capacity: 900, samples: 0, last: null, window: 30 };

  function merge(h) {
    const n = h.times.length;
    const before = store.times.length;
    store.capacity = h.capacity;
    store.samples = h.samples;
    for (const t of h.times) store.times.push(t);
    const seen = new Set();
    for (const s of h.series) {
      seen.add(s.id);
      let e = store.series.get(s.id);
      if (!e) {
        e = { meta: s, values: [], rate: [], quantiles: {} };
        store.series.set(s.id, e);
      }
      e.meta = s;
      append(e.values, s.values, before, n);
      append(e.rate, s.rate, before, n);
      for (const q of Object.keys(s.quantiles || {})) {
        if (!e.quantiles[q]) e.quantiles[q] = [];
        append(e.quantiles[q], s.quantiles[q], before, n);
      }
    }
    for (const [id, e] of store.series) {
      if (!seen.has(id)) {
        append(e.values, null, before, n);
        append(e.rate, null, before, n);
        for (const q of Object.keys(e.quantiles)) append(e.quantiles[q], null, before, n);
      }
    }
    const extra = store.times.length - store.capacity;
    if (extra > 0) {
      store.times.splice(0, extra);
      for (const e of store.series.values()) {
        e.values.splice(0, extra);
        e.rate.splice(0, extra);
        for (const q of Object.keys(e.quantiles)) e.quantiles[q].splice(0, extra);
      }
    }
    if (n > 0) store.last = h.times[n - 1];
  }

  // Pads `arr` to `before` points, then appends `add` (or n nulls).
  function append(arr, add, before, n) {
    while (arr.length < before) arr.push(null);
    for (let i = 0; i < n; i++) arr.push(add ? add[i] : null);
  }

  // ---- picking series: names match with or without a namespace prefix ----
  function matches(name, base) { return name === base || name.endsWith('_' + base); }
  function family(base) {
    const out = [];
    for (const e of store.series.values()) if (!e.meta.aggregate && matches(e.meta.name, base)) out.push(e);
    return out;
  }
  function histogram(base) {
    const members = family(base);
    if (members.length === 1) return members[0];
    for (const e of store.series.values()) if (e.meta.aggregate && matches(e.meta.name, base)) return e;
    return null;
  }
  function combine(arrays, f) {
    const n = store.times.length;
    const out = new Array(n).fill(null);
    for (let i = 0; i < n; i++) {
      let any = false, acc = null;
      for (const a of arrays) {
        const v = a[i];
        if (v === null || v === undefined) continue;
        acc = any ? f(acc, v) : v;
        any = true;
      }
      out[i] = acc;
    }
    return out;
  }
  const sum = (arrays) => combine(arrays, (a, b) => a + b);
  const max = (arrays) => combine(arrays, (a, b) => Math.max(a, b));
  const scale = (arr, k) => arr.map((v) => (v === null ? null : v * k));
  function groupBy(list, label, key) {
    const groups = new Map();
    for (const e of list) {
      const g = e.meta.labels[label] === undefined ? '' : e.meta.labels[label];
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push(e[key]);
    }
    return [...groups.keys()].sort().map((g) => ({ name: g, values: sum(groups.get(g)) }));
  }
  function ratio(num, den, k) {
    return num.map((v, i) => (v === null || den[i] === null || den[i] <= 0 ? null : (k * v) / den[i]));
  }

  // ---- the fixed panels: shown when their metrics exist ----
  const PANELS = [
    { id: 'writes', title: 'Checkpoint writes/s', unit: '/s', needs: ['checkpoint_writes_total'],
      lines: [{ value: 80, label: 'plan migration 80/s', color: WARN }, { value: 100, label: 'migrate 100/s', color: CRIT }],
      data: () => [{ name: 'writes/s', values: sum(family('checkpoint_writes_total').map((e) => e.values)) }] },
    { id: 'errors', title: 'Checkpoint write errors', unit: '%', needs: ['checkpoint_writes_total'],
      lines: [{ value: 1, label: '1%', color: CRIT }],
      data: () => {
        const all = family('checkpoint_writes_total');
        const err = sum(all.filter((e) => e.meta.labels.status === 'error').map((e) => e.values));
        const total = sum(all.map((e) => e.values));
        return [{ name: 'failed writes %', values: ratio(err.map((v, i) => (v === null && total[i] !== null ? 0 : v)), total, 100) }];
      } },
    { id: 'p99', title: 'P99 checkpoint write latency', unit: 'ms', needs: ['checkpoint_write_duration_seconds'],
      lines: [{ value: 100, label: '100 ms', color: CRIT }],
      data: () => quantiles('checkpoint_write_duration_seconds', ['0.99'], 1000) },
    { id: 'observations', title: 'Observations/s by memory space', unit: '/s', needs: ['streaming_observations_total'],
      data: () => groupBy(family('streaming_observations_total'), 'memory_space', 'values') },
    { id: 'rejections', title: 'Rejected observations', unit: '%', needs: ['streaming_observations_total'],
      data: () => {
        const rejected = sum(family('streaming_observations_rejected_total').map((e) => e.values));
        const accepted = sum(family('streaming_observations_total').map((e) => e.values));
        const offered = accepted.map((v, i) => (v === null ? null : v + (rejected[i] || 0)));
        return [{ name: 'rejected %', values: ratio(rejected.map((v, i) => (v === null && accepted[i] !== null ? 0 : v)), offered, 100) }];
      } },
    { id: 'queue', title: 'Queue depth by priority', unit: '', needs: ['streaming_queue_depth'],
      data: () => groupBy(family('streaming_queue_depth'), 'priority', 'values') },
    { id: 'backpressure', title: 'Backpressure state (0 normal, 1 warning, 2 critical, 3 overloaded)', unit: '', needs: ['streaming_backpressure_state'],
      fixedMax: 3, data: () => [{ name: 'state', values: max(family('streaming_backpressure_state').map((e) => e.values)) }] },
    { id: 'utilisation', title: 'Worker utilisation', unit: '%', needs: ['streaming_worker_utilization'],
      data: () => groupBy(family('streaming_worker_utilization'), 'worker_id', 'values') },
    { id: 'batches', title: 'Batches and steals/s', unit: '/s', needs: ['streaming_batches_processed_total'],
      data: () => [
        { name: 'batches/s', values: sum(family('streaming_batches_processed_total').map((e) => e.values)) },
        { name: 'steals/s', values: sum(family('streaming_work_stolen_total').map((e) => e.values)) },
      ] },
    { id: 'batch_size', title: 'Batch size (observations)', unit: '', needs: ['streaming_batch_size'],
      data: () => quantiles('streaming_batch_size', ['0.5', '0.99'], 1) },
    { id: 'observation_latency', title: 'Observation latency, enqueue to processed', unit: 'ms', needs: ['streaming_observation_latency_seconds'],
      data: () => quantiles('streaming_observation_latency_seconds', ['0.5', '0.99', '0.999'], 1000) },
    { id: 'queue_wait', title: 'Queue wait P99 by priority', unit: 'ms', needs: ['streaming_queue_wait_time_seconds'],
      data: () => family('streaming_queue_wait_time_seconds').map((e) => ({ name: e.meta.labels.priority || '', values: scale(e.quantiles['0.99'] || [], 1000), bound: isBound(e) })) },
    { id: 'recall_latency', title: 'Recall latency', unit: 'ms', needs: ['streaming_recall_latency_seconds'],
      data: () => quantiles('streaming_recall_latency_seconds', ['0.5', '0.99'], 1000) },
  ];

  // A classic histogram's quantile is the bound of its bucket: "at most".
  function isBound(e) { return e.meta.quantiles_are_bounds === true; }
  function quantiles(base, qs, k) {
    const e = histogram(base);
    if (!e) return [];
    return qs.map((q) => ({ name: 'P' + String(Number(q) * 100), values: scale(e.quantiles[q] || [], k), bound: isBound(e) }));
  }

  // ---- drawing ----
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const k of Object.keys(attrs)) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fmt(v, unit) {
    if (v === null || v === undefined || !isFinite(v)) return '–';
    const a = Math.abs(v);
    let s;
    if (a >= 1e6) s = (v / 1e6).toFixed(2) + 'M';
    else if (a >= 1e4) s = (v / 1e3).toFixed(1) + 'k';
    else if (a >= 100) s = v.toFixed(0);
    else if (a >= 10) s = v.toFixed(1);
    else if (a > 0 && a < 0.01) s = v.toPrecision(2);
    else s = v.toFixed(2);
    return unit ? s + (unit === '%' || unit === '/s' ? '' : ' ') + unit : s;
  }
  // A value that is a bucket's bound reads "≤ 5.00 ms", never as if measured.
  function atMost(line, text) { return line.bound && text !== '–' ? '≤ ' + text : text; }
  // Tick labels that tell every tick apart and say its value exactly: as
  // `fmt` writes values when that does, else with the fewest decimals that
  // do (two decimals would read a range of 0.02 as 0.02, 0.01, 0.01, 0.01,
  // 0.00, and one of 0.03 as 0.00 on every tick).
  function tickLabels(values) {
    const step = Math.abs(values[1] - values[0]) || 1;
    const exact = (labels) => labels.every((l, i) => Math.abs(Number(l) - values[i]) <= step * 1e-6);
    const plain = values.map((v) => fmt(v, ''));
    const large = Math.max(...values.map(Math.abs)) >= 10; // fmt's "120.0k" and the like
    if (new Set(plain).size === plain.length && (large || exact(plain))) return plain;
    for (let d = 0; d <= 12; d++) {
      const fixed = values.map((v) => v.toFixed(d));
      if (exact(fixed)) return fixed;
    }
    return plain;
  }
  function clock(ms) {
    const d = new Date(ms);
    return [d.getHours(), d.getMinutes(), d.getSeconds()].map((x) => String(x).padStart(2, '0')).join(':');
  }
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }
  function latestOf(values) {
    for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null && values[i] !== undefined) return values[i];
    return null;
  }

  // Draws `lines` ([{name, values}]) and threshold `marks` into `chart`;
  // returns how many points were drawn.
  function draw(chart, lines, marks, unit, fixedMax) {
    chart.replaceChildren();
    // Drawn at the chart's own width, so text is never stretched.
    const W = Math.max(240, Math.round(chart.getBoundingClientRect().width) || 600);
    chart.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    const times = store.times;
    // The axis spans 0 and every value: a gauge may be negative.
    let top = 0, bottom = 0, points = 0;
    for (const l of lines) {
      for (const v of l.values) {
        if (v !== null && isFinite(v)) { top = Math.max(top, v); bottom = Math.min(bottom, v); points++; }
      }
    }
    for (const m of marks) top = Math.max(top, m.value);
    if (fixedMax !== undefined) top = Math.max(fixedMax, top);
    else if (top > 0 || bottom === 0) top = niceMax(top * 1.1);
    if (bottom < 0) bottom = -niceMax(-bottom * 1.1);
    const t0 = times.length ? times[0] : 0, t1 = times.length ? times[times.length - 1] : 1;
    const x = (t) => L + ((W - L - R) * (t - t0)) / Math.max(1, t1 - t0);
    const y = (v) => H - B - ((H - B - T) * (v - bottom)) / (top - bottom);
    const ticks = [0, 1, 2, 3, 4].map((i) => bottom + ((top - bottom) * i) / 4);
    const labels = tickLabels(ticks);
    ticks.forEach((v, i) => {
      chart.appendChild(svg('line', { class: 'axis', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      chart.appendChild(svg('text', { class: 'tick y', x: L - 4, y: y(v) + 4, 'text-anchor': 'end' }, labels[i]));
    });
    if (times.length > 1) {
      for (const t of [t0, (t0 + t1) / 2, t1]) {
        const anchor = t === t0 ? 'start' : t === t1 ? 'end' : 'middle';
        chart.appendChild(svg('text', { class: 'tick', x: x(t), y: H - 4, 'text-anchor': anchor }, clock(t)));
      }
    }
    for (const m of marks) {
      chart.appendChild(svg('line', { class: 'threshold', x1: L, x2: W - R, y1: y(m.value), y2: y(m.value), stroke: m.color }));
      chart.appendChild(svg('text', { class: 'threshold-label', x: W - R - 2, y: y(m.value) - 3, 'text-anchor': 'end', fill: m.color }, m.label));
    }
    lines.forEach((l, n) => {
      let d = '', pen = false;
      l.values.forEach((v, i) => {
        if (v === null || !isFinite(v) || i >= times.length) { pen = false; return; }
        d += (pen ? 'L' : 'M') + x(times[i]).toFixed(1) + ' ' + y(v).toFixed(1);
        pen = true;
      });
      if (d) chart.appendChild(svg('path', { class: 'line', d: d, stroke: COLORS[n % COLORS.length] }));
    });
    if (points === 0) chart.appendChild(svg('text', { class: 'empty', x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'waiting for data'));
    return points;
  }

  function legend(ul, lines, unit) {
    ul.replaceChildren();
    lines.forEach((l, n) => {
      const li = el('li');
      const sw = svg('svg', { viewBox: '0 0 10 10' });
      sw.appendChild(svg('rect', { width: 10, height: 10, fill: COLORS[n % COLORS.length] }));
      li.appendChild(sw);
      li.appendChild(el('span', 'name', l.name === '' ? '(none)' : l.name));
      li.appendChild(el('span', 'value', atMost(l, fmt(latestOf(l.values), unit))));
      ul.appendChild(li);
    });
  }

  function panel(id, title) {
    const s = el('section', 'panel');
    s.dataset.panel = id;
    s.appendChild(el('h2', '', title));
    s.appendChild(el('div', 'latest'));
    s.appendChild(svg('svg', { class: 'chart', viewBox: '0 0 600 ' + H, preserveAspectRatio: 'none', role: 'img', 'aria-label': title }));
    s.appendChild(el('ul', 'legend'));
    return s;
  }

  // Fills a panel's chart, legend and headline; records what it drew in
  // data-points and data-latest for people and tests.
  function show(section, lines, marks, unit, fixedMax) {
    const points = draw(section.querySelector('svg.chart'), lines, marks, unit, fixedMax);
    legend(section.querySelector('.legend'), lines, unit);
    const latest = lines.length ? latestOf(lines[0].values) : null;
    const head = section.querySelector('.latest');
    head.textContent = lines.length === 1 ? atMost(lines[0], fmt(latest, unit)) : '';
    head.classList.remove('warn', 'crit');
    for (const m of marks) if (latest !== null && latest > m.value) head.classList.add(m.color === CRIT ? 'crit' : 'warn');
    section.dataset.points = String(points);
    section.dataset.latest = latest === null ? '' : String(latest);
  }

  const container = document.getElementById('panels');
  const sections = new Map();
  function renderPanels() {
    for (const p of PANELS) {
      if (!sections.has(p.id)) {
        const s = panel(p.id, p.title);
        sections.set(p.id, s);
        container.appendChild(s);
      }
      const s = sections.get(p.id);
      const present = p.needs.every((n) => family(n).length > 0);
      s.classList.toggle('hidden', !present);
      s.dataset.present = present ? '1' : '0';
      if (present) show(s, p.data(), p.lines || [], p.unit, p.fixedMax);
    }
  }

  // ---- any metric ----
  const metricSelect = document.getElementById('metric');
  const quantileSelect = document.getElementById('quantile');
  const explore = document.getElementById('explore');
  function renderExplore() {
    const names = new Map();
    for (const e of store.series.values()) if (!e.meta.aggregate) names.set(e.meta.name, e.meta);
    const sorted = [...names.keys()].sort();
    if (metricSelect.options.length !== sorted.length) {
      const keep = metricSelect.value;
      metricSelect.replaceChildren();
      for (const n of sorted) {
        const o = el('option', '', n + ' (' + names.get(n).type + ')');
        o.value = n;
        metricSelect.appendChild(o);
      }
      if (keep && names.has(keep)) metricSelect.value = keep;
    }
    const name = metricSelect.value;
    const meta = names.get(name);
    if (!meta) return;
    document.getElementById('metric-help').textContent = meta.help;
    const quantiled = meta.type === 'histogram' || meta.type === 'summary';
    quantileSelect.hidden = !quantiled;
    const members = [...store.series.values()].filter((e) => !e.meta.aggregate && e.meta.name === name);
    if (quantiled) {
      const qs = Object.keys(members[0].quantiles);
      if (quantileSelect.dataset.for !== name) {
        quantileSelect.replaceChildren();
        for (const q of qs) {
          const o = el('option', '', 'P' + String(Number(q) * 100));
          o.value = q;
          quantileSelect.appendChild(o);
        }
        quantileSelect.value = qs.includes('0.99') ? '0.99' : qs[qs.length - 1];
        quantileSelect.dataset.for = name;
      }
    }
    const q = quantileSelect.value;
    const unit = meta.type === 'counter' ? '/s' : '';
    const lines = members.slice(0, COLORS.length).map((e) => ({
      name: Object.keys(e.meta.labels).map((k) => k + '="' + e.meta.labels[k] + '"').join(', ') || name,
      values: quantiled ? e.quantiles[q] || [] : e.values,
      bound: quantiled && isBound(e),
    }));
    show(explore, lines, [], unit);
  }
  metricSelect.addEventListener('change', renderExplore);
  quantileSelect.addEventListener('change', renderExplore);

  // ---- the application's sources (SLO report, decision, anything JSON) ----
  const sourceBox = document.getElementById('sources');
  const sourcePanels = [];
  function cell(tr, tag, text, cls) { tr.appendChild(el(tag, cls || '', text)); }
  function pct(v) { return typeof v === 'number' ? (v * 100).toFixed(2) + '%' : '–'; }
  function renderSlos(body, data) {
    const table = el('table');
    const head = el('tr');
    for (const h of ['objective', 'target', 'current', 'budget left', '']) cell(head, 'th', h);
    table.appendChild(head);
    for (const s of data.slos) {
      const tr = el('tr');
      cell(tr, 'td', String(s.description || s.name));
      cell(tr, 'td', pct(s.objective), 'num');
      cell(tr, 'td', s.indicator === 'latency' && typeof s.current === 'number' ? fmt(s.current * 1000, 'ms') : pct(s.current), 'num');
      cell(tr, 'td', pct(s.error_budget_remaining), 'num');
      cell(tr, 'td', s.met ? 'met' : 'violated', s.met ? 'ok' : 'bad');
      table.appendChild(tr);
    }
    body.appendChild(el('div', 'latest', data.met + ' of ' + data.total + ' met'));
    body.appendChild(table);
    return data.slos.length;
  }
  function renderDecision(body, data) {
    if (data.verdict === null || data.verdict === undefined) {
      body.appendChild(el('p', 'help', String(data.note || 'no decision yet')));
      return 0;
    }
    const v = String(data.verdict);
    body.appendChild(el('div', 'verdict ' + (/NOW/.test(v) ? 'bad' : /PLAN/.test(v) ? 'warn' : 'ok'), v));
    const ul = el('ul', 'reasons');
    for (const r of data.reasons || []) ul.appendChild(el('li', '', String(r)));
    body.appendChild(ul);
    if (data.justification) body.appendChild(el('p', 'help', String(data.justification)));
    if (data.timestamp) body.appendChild(el('p', 'help', 'decided ' + String(data.timestamp)));
    return 1;
  }
  function renderFields(body, data) {
    const table = el('table');
    let rows = 0;
    for (const k of Object.keys(data || {})) {
      const tr = el('tr');
      cell(tr, 'th', k);
      const v = data[k];
      cell(tr, 'td', typeof v === 'string' ? v : JSON.stringify(v));
      table.appendChild(tr);
      rows++;
    }
    body.appendChild(table);
    return rows;
  }
  async function pollSources() {
    for (const p of sourcePanels) {
      try {
        const r = await fetch(p.path, { cache: 'no-store', credentials: 'same-origin' });
        if (!r.ok) throw new Error(p.path + ': HTTP ' + r.status);
        const data = await r.json();
        const body = el('div');
        const rows = data && Array.isArray(data.slos) ? renderSlos(body, data)
          : data && 'verdict' in data ? renderDecision(body, data) : renderFields(body, data);
        p.body.replaceWith(body);
        p.body = body;
        p.section.dataset.points = String(rows);
      } catch (e) {
        p.body.textContent = String(e.message || e);
        p.section.dataset.points = '0';
      }
    }
  }
  async function loadSources() {
    const r = await fetch('/dashboard/sources', { cache: 'no-store', credentials: 'same-origin' });
    if (!r.ok) throw new Error('/dashboard/sources: HTTP ' + r.status);
    const list = (await r.json()).sources || [];
    for (const s of list) {
      const path = String(s.path);
      // Only this origin's paths.
      if (!path.startsWith('/') || path.startsWith('//')) continue;
      const section = el('section', 'panel');
      section.dataset.panel = 'source:' + path;
      section.appendChild(el('h2', '', String(s.title)));
      const body = el('div');
      section.appendChild(body);
      sourceBox.appendChild(section);
      sourcePanels.push({ path: path, section: section, body: body });
    }
  }

  // ---- the loop ----
  const status = document.getElementById('status');
  const windowSelect = document.getElementById('window');
  windowSelect.addEventListener('change', () => {
    store.window = Number(windowSelect.value);
    store.times = [];
    store.series = new Map();
    store.last = null;
  });
  let failures = 0, ticks = 0;
  async function poll() {
    try {
      let url = '/dashboard/history?window=' + store.window;
      if (store.last !== null) url += '&since=' + store.last;
      const r = await fetch(url, { cache: 'no-store', credentials: 'same-origin' });
      if (!r.ok) throw new Error('history: HTTP ' + r.status);
      merge(await r.json());
      renderPanels();
      renderExplore();
      if (ticks % 2 === 0) await pollSources();
      ticks++;
      status.classList.remove('failed');
      status.textContent = 'live · ' + store.samples + ' samples (up to ' + store.capacity + ') · ' +
        store.series.size + ' series · updated ' + (store.last ? clock(store.last) : '–');
      document.body.dataset.samples = String(store.times.length);
      document.body.dataset.ready = '1';
    } catch (e) {
      failures++;
      status.classList.add('failed');
      status.textContent = 'not updating: ' + String(e.message || e);
    }
    document.body.dataset.failures = String(failures);
    setTimeout(poll, 1000);
  }
  loadSources().catch((e) => { status.textContent = String(e.message || e); }).finally(poll);
})();
