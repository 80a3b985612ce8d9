// One application: a chart per metric at the chosen range, granularity and stat, the
// prediction for the chosen horizon drawn ahead of the data with its confidence band,
// deployments marked on the charts with their verdict, insights and alert rules.
import { api, qs } from './api.js';
import { COLORS, columns, lineChart } from './chart.js';
import { badge, dateTime, esc, num, pct } from './format.js';
import { rangePicker } from './range.js';
import { rulesSection } from './rules.js';

const METRICS = [
  ['response_time', 'Response time (ms)', (v) => `${num(v, 1)} ms`],
  ['error_rate', 'Error rate', (v) => pct(v * 100, 2)],
  ['throughput', 'Throughput (requests/min)', (v) => num(v, 1)],
];
const STATS = ['mean', 'p50', 'p95', 'p99', 'min', 'max', 'sum', 'count'];

export async function applicationPage(main, appId) {
  const path = `/v1/applications/${encodeURIComponent(appId)}`;
  main.innerHTML = `
    <nav class="crumbs" aria-label="Breadcrumb"><a href="#/applications">Applications</a> / <span id="app-crumb">${esc(appId)}</span></nav>
    <header class="detail-head"><h1 id="app-name">${esc(appId)}</h1><div id="app-summary" class="summary"></div></header>
    <p id="app-error" class="error" role="alert"></p>
    <div id="app-range"></div>
    <div class="toolbar">
      <label>Granularity <select id="app-granularity"><option value="">auto</option><option>1m</option><option>5m</option><option>1h</option><option>1d</option></select></label>
      <label>Stat <select id="app-stat">${STATS.map((s) => `<option>${s}</option>`).join('')}</select></label>
      <label>Forecast <select id="app-horizon"><option value="">none</option><option>1h</option><option>6h</option><option selected>24h</option><option>7d</option></select></label>
      <span id="app-granularity-error" class="field-error" role="alert"></span>
    </div>
    <p class="legend-note muted"><span class="key-deploy" aria-hidden="true"></span> dashed lines: deployments ·
      <span class="key-forecast" aria-hidden="true"></span> forecast, shaded ±10 % (hover a point for its confidence)</p>
    <div id="app-charts" class="charts"></div>
    <section aria-labelledby="forecast-h"><h2 id="forecast-h">Forecast</h2><div id="app-forecast"></div></section>
    <section aria-labelledby="deploy-h"><h2 id="deploy-h">Deployments</h2><div id="app-deployments"></div></section>
    <section aria-labelledby="insights-h"><h2 id="insights-h">Insights <span class="muted">newest first</span></h2><div id="app-insights"></div></section>
    <section id="app-alerts"></section>`;
  const $ = (s) => main.querySelector(s);
  let charts = [];
  let ctl = null;
  const clear = () => { for (const c of charts) c.destroy(); charts = []; };

  async function header() {
    const a = await api(path);
    $('#app-name').textContent = $('#app-crumb').textContent = a.name;
    const m = a.metrics;
    $('#app-summary').innerHTML = `${badge(a.status)} <span>${esc(a.environment)}</span>
      <span>uptime 24 h <strong>${pct(m.uptime, 2)}</strong></span>
      <span>response time <strong>${m.response_time == null ? '–' : num(m.response_time, 1) + ' ms'}</strong></span>
      <span>error rate <strong>${m.error_rate == null ? '–' : pct(m.error_rate * 100, 2)}</strong></span>`;
  }

  async function draw(range = picker.current()) {
    if (ctl) ctl.abort();
    ctl = new AbortController();
    const signal = ctl.signal;
    const span = { start: Math.round(range.start), end: Math.round(range.end) };
    const granularity = $('#app-granularity').value, stat = $('#app-stat').value, horizon = $('#app-horizon').value;
    $('#app-error').textContent = $('#app-granularity-error').textContent = '';
    $('#app-granularity').removeAttribute('aria-invalid');
    try {
      const [series, forecasts, deployments] = await Promise.all([
        Promise.all(METRICS.map(([m]) => api(`${path}/metrics${qs({ metric: m, ...span, granularity, stat })}`, { signal }))),
        Promise.all(METRICS.map(([m]) => (horizon ? api(`${path}/predictions${qs({ metric: m, horizon })}`, { signal }) : null))),
        api(`${path}/deployments`, { signal }),
      ]);
      const markers = deployments.deployments.map((d) => ({ t: Date.parse(d.started_at) / 1000, color: COLORS.deploy,
        label: `deploy ${d.version}: ${d.status.replace('_', ' ')}${d.reason ? ' — ' + d.reason : ''}` }));
      clear();
      $('#app-charts').textContent = '';
      METRICS.forEach(([m, label, fmt], i) => {
        const card = document.createElement('figure');
        card.className = 'chart-card';
        card.innerHTML = `<figcaption>${esc(label)} <span class="muted">${esc(stat)} per ${esc(series[i].granularity)}</span></figcaption><div class="chart" data-metric="${m}" data-granularity="${esc(series[i].granularity)}"></div>`;
        $('#app-charts').append(card);
        const { x, y } = columns(series[i].data);
        const p = forecasts[i] && forecasts[i].predictions;
        const forecast = p && p.length && stat === 'mean' ? {
          x: p.map((f) => Date.parse(f.timestamp) / 1000), y: p.map((f) => f.predicted_value),
          // each prediction's interval [lower, upper] holds the bucket mean with probability `confidence`
          hi: p.map((f) => f.upper), lo: p.map((f) => f.lower),
        } : null;
        const xRange = [span.start / 1000, Math.max(span.end / 1000, forecast ? forecast.x[forecast.x.length - 1] : 0)];
        charts.push(lineChart(card.querySelector('.chart'), { label, x, y, format: fmt, markers, forecast, xRange }));
      });
      showForecast(forecasts, horizon, stat);
      showDeployments(deployments.deployments);
    } catch (err) {
      if (err.name === 'AbortError') return;
      if (err.field === 'granularity') {
        $('#app-granularity-error').textContent = err.message;
        $('#app-granularity').setAttribute('aria-invalid', 'true');
      } else $('#app-error').textContent = err.message;
    }
  }

  function showForecast(forecasts, horizon, stat) {
    if (!horizon) { $('#app-forecast').innerHTML = '<p class="muted">No forecast chosen.</p>'; return; }
    const note = stat === 'mean' ? '' : '<p class="muted">Forecasts are of bucket means: drawn on the charts when the stat is mean.</p>';
    $('#app-forecast').innerHTML = note + METRICS.map(([m, label, fmt], i) => {
      const p = forecasts[i].predictions;
      if (!p.length) return `<p><strong>${esc(label)}</strong>: <span class="muted">not enough history (${forecasts[i].basis.buckets} buckets with data; 3 needed)</span></p>`;
      return `<details class="forecast" data-metric="${m}"><summary><strong>${esc(label)}</strong>: next ${esc(horizon)},
        ${p.length} × ${esc(forecasts[i].basis.granularity)} from ${fmt(p[0].predicted_value)} to ${fmt(p[p.length - 1].predicted_value)}</summary>
        <div class="table-scroll"><table><thead><tr><th scope="col">Bucket</th><th scope="col">Predicted</th><th scope="col">Confidence (within ±10 %)</th></tr></thead>
        <tbody>${p.map((f) => `<tr><td>${esc(dateTime(f.timestamp))}</td><td class="n">${fmt(f.predicted_value)}</td><td class="n">${pct(f.confidence * 100, 0)}</td></tr>`).join('')}</tbody></table></div></details>`;
    }).join('');
  }

  function showDeployments(list) {
    $('#app-deployments').innerHTML = list.length ? `<div class="table-scroll"><table id="deployments-table">
      <thead><tr><th scope="col">Version</th><th scope="col">Verdict</th><th scope="col">Reason</th><th scope="col">Started</th><th scope="col">Completed</th><th scope="col">Changes</th></tr></thead>
      <tbody>${list.map((d) => `<tr data-deployment-id="${esc(d.id)}"><td><code>${esc(d.version)}</code></td><td class="verdict">${badge(d.status.replace('_', ' '), d.status)}</td>
        <td class="reason">${esc(d.reason || '')}</td><td>${esc(dateTime(d.started_at))}</td><td>${esc(dateTime(d.completed_at))}</td><td>${d.changes.map(esc).join('<br>')}</td></tr>`).join('')}</tbody></table></div>`
      : '<p class="muted">No deployment.</p>';
  }

  async function insights() {
    const { insights: list } = await api(`${path}/insights`);
    $('#app-insights').innerHTML = list.length ? `<ul class="insights">${list.map((i) => `<li data-insight-id="${esc(i.id)}">
      ${badge(i.severity)} <strong class="insight-title">${esc(i.title)}</strong> <span class="muted">${esc(i.type)} · ${esc(dateTime(i.timestamp))}</span>
      <p>${esc(i.description)}</p><p class="muted">Recommendation: ${esc(i.recommendation)}</p></li>`).join('')}</ul>`
      : '<p class="muted">No insight.</p>';
  }

  const picker = rangePicker($('#app-range'), '24h', draw);
  for (const id of ['#app-granularity', '#app-stat', '#app-horizon']) $(id).addEventListener('change', () => draw());
  try {
    await Promise.all([header(), draw(), insights(),
      rulesSection($('#app-alerts'), { base: `${path}/alerts`, metrics: METRICS.map((m) => m[0]) })]);
  } catch (err) {
    $('#app-error').textContent = err.message;
  }
  return () => { if (ctl) ctl.abort(); clear(); };
}
