// One agent: a chart per vital over the chosen range with the health thresholds as
// bands, custom numeric metrics charted the same way, the latest metadata, the events
// (also marked on the charts), the ARI panel (interventions shaded on the charts as the
// span of their episode) and the agent's alert rules.
import { api, qs } from './api.js';
import { columns, lineChart } from './chart.js';
import { ago, badge, dateTime, esc, num } from './format.js';
import { rangePicker } from './range.js';
import { rulesSection } from './rules.js';
import { thresholds } from './thresholds.js';

const VITALS = [
  ['tokenUsagePercent', 'Token usage (% of limit)', (v) => `${+v.toFixed(1)} %`],
  ['tokenConsumption', 'Tokens consumed', (v) => num(v)],
  ['hallucinationRate', 'Hallucination rate', (v) => (+v.toFixed(3)).toString()],
  ['loopCount', 'Loops', (v) => num(v, 1)],
  ['conflictCount', 'Directive conflicts', (v) => num(v, 1)],
];
const BUILT_IN = new Set(VITALS.map((v) => v[0]));
const CHECKUPS = { auth: 'Directives', integ: 'Integrity', charge: 'Load' };

const OUTCOME_KIND = { improved: 'ok', unchanged: 'disabled', worse: 'critical' };

export async function agentPage(main, agentId) {
  const path = `/api/agents/${encodeURIComponent(agentId)}`;
  main.innerHTML = `
    <nav class="crumbs" aria-label="Breadcrumb"><a href="#/agents">Agents</a> / <span id="agent-crumb">${esc(agentId)}</span></nav>
    <header class="detail-head"><h1 id="agent-name">${esc(agentId)}</h1><div id="agent-summary" class="summary"></div></header>
    <p id="agent-error" class="error" role="alert"></p>
    <div id="agent-range"></div>
    <p class="legend-note muted"><span class="key-marker" aria-hidden="true"></span> dashed lines: events ·
      <span class="key-span" aria-hidden="true"></span> shaded: ARI interventions · bands: health green / amber / red</p>
    <section aria-labelledby="vitals-h"><h2 id="vitals-h">Vitals</h2><div id="vital-charts" class="charts"></div></section>
    <section aria-labelledby="custom-h"><h2 id="custom-h">Custom metrics</h2><div id="custom-charts" class="charts"></div></section>
    <section aria-labelledby="meta-h"><h2 id="meta-h">Metadata <span class="muted" id="meta-at"></span></h2><div id="agent-metadata"></div></section>
    <section aria-labelledby="events-h"><h2 id="events-h">Events</h2><div id="agent-events"></div></section>
    <section aria-labelledby="ari-h"><h2 id="ari-h">ARI</h2><div id="agent-ari"></div></section>
    <section id="agent-alerts"></section>`;
  const $ = (s) => main.querySelector(s);
  let charts = [];
  let ctl = null;
  const clear = () => { for (const c of charts) c.destroy(); charts = []; };

  async function header() {
    const { agents } = await api('/api/agents');
    const a = agents.find((x) => x.agent_id === agentId);
    if (!a) throw new Error(`No agent ${agentId} for this API key`);
    $('#agent-name').textContent = $('#agent-crumb').textContent = a.name;
    $('#agent-summary').innerHTML = `${badge(a.status)} health ${badge(a.overall_health)}
      <span>last report <time datetime="${esc(a.last_vitals_at)}" title="${esc(a.last_vitals_at)}">${ago(a.last_vitals_at)}</time></span>
      <span class="muted">id ${esc(a.agent_id)}</span>`;
  }

  function chartCard(root, metric, label) {
    const card = document.createElement('figure');
    card.className = 'chart-card';
    card.innerHTML = `<figcaption>${esc(label)} <span class="muted chart-note"></span></figcaption><div class="chart" data-metric="${esc(metric)}"></div>`;
    root.append(card);
    return card;
  }

  async function draw(range) {
    if (ctl) ctl.abort();
    ctl = new AbortController();
    const signal = ctl.signal;
    const span = { start: Math.round(range.start), end: Math.round(range.end) };
    $('#agent-error').textContent = '';
    try {
      const [limits, names, events, ari] = await Promise.all([
        thresholds(), api(`${path}/metric-names${qs(span)}`, { signal }),
        api(`${path}/events${qs({ ...span, limit: 500 })}`, { signal }), api(`${path}/ari${qs({ limit: 100 })}`, { signal }),
      ]);
      const custom = names.metrics.filter((m) => !BUILT_IN.has(m));
      const wanted = VITALS.map(([m, label, fmt]) => ({ m, label, fmt, root: '#vital-charts' }))
        .concat(custom.map((m) => ({ m, label: m, fmt: undefined, root: '#custom-charts' })));
      const series = await Promise.all(wanted.map((w) => api(`${path}/metrics${qs({ metric: w.m, ...span })}`, { signal })));
      const markers = events.events.map((e) => ({ t: Date.parse(e.recorded_at) / 1000, label: `${e.event_type}${e.details ? ': ' + e.details : ''} (${dateTime(e.recorded_at)})` }));
      const now = Date.now() / 1000;
      const spans = ari.interventions.map((i) => ({ from: Date.parse(i.created_at) / 1000, to: i.closed_at ? Date.parse(i.closed_at) / 1000 : now,
                                                   label: `${i.name}: ${i.description} (${i.severity}, ${i.status})` }));
      clear();
      $('#vital-charts').textContent = $('#custom-charts').textContent = '';
      wanted.forEach((w, i) => {
        const card = chartCard($(w.root), w.m, w.label);
        const { x, y } = columns(series[i].data);
        card.querySelector('.chart-note').textContent = `${series[i].granularity} buckets, mean`;
        charts.push(lineChart(card.querySelector('.chart'), { label: w.label, x, y, format: w.fmt, bands: limits[w.m] || null,
                                                              markers, spans, xRange: [span.start / 1000, span.end / 1000] }));
      });
      if (!custom.length) $('#custom-charts').innerHTML = '<p class="muted">No numeric custom metric in this range.</p>';
      showEvents(events.events);
      showAri(ari);
    } catch (err) {
      if (err.name !== 'AbortError') $('#agent-error').textContent = err.message;
    }
  }

  function showEvents(events) {
    $('#agent-events').innerHTML = events.length ? `<div class="table-scroll"><table id="events-table">
      <thead><tr><th scope="col">When</th><th scope="col">Type</th><th scope="col">Details</th><th scope="col">Metadata</th></tr></thead>
      <tbody>${events.map((e) => `<tr><td><time datetime="${esc(e.recorded_at)}">${esc(dateTime(e.recorded_at))}</time></td><td class="event-type"><code>${esc(e.event_type)}</code></td>
        <td>${esc(e.details || '')}</td><td><code class="json">${esc(JSON.stringify(e.metadata))}</code></td></tr>`).join('')}</tbody></table></div>`
      : '<p class="muted">No event in this range.</p>';
  }

  // Whether it worked (docs/ari.md, Outcomes): the verdict, then each watched metric's
  // mean over the snapshots before the episode and after it.
  function outcome(i) {
    if (!i.outcome) return '<span class="muted">not measured yet</span>';
    const d = typeof i.outcome_details === 'string' ? JSON.parse(i.outcome_details) : (i.outcome_details || {});
    const figures = (d.watched || []).map((m) => {
      const f = (d.metrics || {})[m];
      return f ? `<div class="muted">${esc(m)}: ${num(f.before, 2)} → ${num(f.after, 2)}</div>` : '';
    }).join('');
    return badge(i.outcome, OUTCOME_KIND[i.outcome] || i.outcome) + figures;
  }

  function showAri(ari) {
    if (!ari.ready) { $('#agent-ari').innerHTML = `<p class="muted">${esc(ari.message)}</p>`; return; }
    const s = ari.stats;
    $('#agent-ari').innerHTML = `
      <div class="ari-top">
        <div><h3>Checkups</h3><ul class="checkups">${Object.entries(ari.checkups).map(([k, c]) => `<li data-checkup="${esc(k)}"><span>${esc(CHECKUPS[k] || k)}</span> ${badge(c.text, c.result)}</li>`).join('') || '<li class="muted">none yet</li>'}</ul></div>
        <dl class="stats"><div><dt>Interventions today</dt><dd id="ari-today">${num(s.interventions_today)}</dd></div>
          <div><dt>Tokens saved (estimate)</dt><dd id="ari-saved">${num(s.tokens_saved)}</dd></div>
          <div><dt>Tokens saved (measured)</dt><dd id="ari-saved-measured">${num(s.tokens_saved_measured)}</dd></div>
          <div><dt>Conflicts resolved</dt><dd id="ari-resolved">${num(s.conflicts_resolved)}</dd></div></dl>
      </div>
      <h3>Interventions <span class="muted">newest first</span></h3>
      ${ari.interventions.length ? `<div class="table-scroll"><table id="interventions-table">
        <thead><tr><th scope="col">Opened</th><th scope="col">Closed</th><th scope="col">Protocol</th><th scope="col">Description</th><th scope="col">Severity</th><th scope="col">Tokens saved (estimate)</th><th scope="col">Outcome</th><th scope="col">Tokens saved (measured)</th></tr></thead>
        <tbody>${ari.interventions.map((i) => `<tr data-intervention-id="${esc(i.id)}"><td>${esc(dateTime(i.created_at))}</td><td>${i.closed_at ? esc(dateTime(i.closed_at)) : badge('open')}</td>
          <td>${esc(i.protocol)} · ${esc(i.name)}</td><td class="description">${esc(i.description)}</td><td>${badge(i.severity)}</td><td class="n">${num(i.tokens_saved)}</td>
          <td class="outcome">${outcome(i)}</td><td class="n">${i.tokens_saved_measured == null ? '–' : num(i.tokens_saved_measured)}</td></tr>`).join('')}</tbody></table></div>`
        : '<p class="muted">No intervention.</p>'}`;
  }

  async function metadata() {
    const { vitals } = await api(`${path}/vitals?limit=1`);
    const v = vitals[0];
    if (!v) return;
    $('#meta-at').textContent = `of the last report, ${dateTime(v.recorded_at)}`;
    const entries = Object.entries(v.metadata);
    $('#agent-metadata').innerHTML = (entries.length ? `<div class="table-scroll"><table id="metadata-table"><thead><tr><th scope="col">Key</th><th scope="col">Value</th></tr></thead>
      <tbody>${entries.map(([k, val]) => `<tr><th scope="row"><code>${esc(k)}</code></th><td>${typeof val === 'object' && val !== null ? `<code class="json">${esc(JSON.stringify(val))}</code>` : esc(val)}${typeof val === 'number' ? ' <span class="muted">(charted)</span>' : ''}</td></tr>`).join('')}</tbody></table></div>`
      : '<p class="muted">No metadata.</p>')
      + `<details><summary>Raw JSON</summary><pre id="metadata-json">${esc(JSON.stringify(v.metadata, null, 2))}</pre></details>`;
  }

  const picker = rangePicker($('#agent-range'), '24h', draw);
  try {
    await Promise.all([header(), metadata(), draw(picker.current()),
      rulesSection($('#agent-alerts'), { base: `${path}/alerts`, metrics: [...BUILT_IN] })]);
  } catch (err) {
    $('#agent-error').textContent = err.message;
  }
  return () => { if (ctl) ctl.abort(); clear(); };
}
