// Agents overview: every agent of the account, searchable, sortable by any column,
// filterable by status, refreshed every 10 s without losing any of that or the scroll.
// Only the rows in and near the viewport are in the DOM (rows have one fixed height;
// spacer rows stand for the others): Chromium's table layout of 2,000 full rows alone
// takes over a second, a window of them a few milliseconds, whatever the account's
// size (bench/dashboard_render.js). The trend is an inline SVG polyline per row.
import { api } from './api.js';
import { ago, badge, esc, num } from './format.js';

const REFRESH_MS = 10_000;
const OVERSCAN = 30;  // rows rendered above and below the visible ones
const RANK = { active: 0, warning: 1, critical: 2, green: 0, amber: 1, red: 2 };
const COLUMNS = [
  ['name', 'Agent'], ['status', 'Status'], ['health', 'Health'], ['tokens', 'Token usage'],
  ['hallucination', 'Hallucination rate'], ['loops', 'Loops'], ['conflicts', 'Conflicts'],
  ['last', 'Last report'], ['trend', 'Trend 24 h'], ['ari', 'ARI open'],
];
const usage = (a) => (a.token_limit ? (100 * a.token_consumption) / a.token_limit : null);
const lastTrend = (a) => { for (let i = (a.trend || []).length - 1; i >= 0; i--) if (a.trend[i] != null) return a.trend[i]; return null; };
const SORT = {
  name: (a) => a.name.toLowerCase(), status: (a) => RANK[a.status], health: (a) => RANK[a.overall_health],
  tokens: usage, hallucination: (a) => a.hallucination_rate, loops: (a) => a.loop_frequency,
  conflicts: (a) => a.directive_conflicts, last: (a) => a._lastMs, trend: lastTrend, ari: (a) => a.open_interventions,
};

// An agent is stale when it has not reported for 3 of its usual intervals; the server
// says so too, and the page re-checks between refreshes as time passes.
export function isStale(a, now) {
  return Boolean(a.stale) || (a.usual_interval_s > 0 && now - a._lastMs > 3000 * a.usual_interval_s);
}

function sparkline(trend) {
  const pts = [];
  const n = (trend || []).length;
  for (let i = 0; i < n; i++) {
    const v = trend[i];
    if (v != null) pts.push(`${((i * 80) / Math.max(n - 1, 1)).toFixed(1)},${(22 - Math.min(Math.max(v, 0), 100) * 0.2).toFixed(1)}`);
  }
  if (!pts.length) return '<span class="muted">no data</span>';
  return `<svg class="spark" viewBox="0 0 80 24" width="80" height="24" role="img" aria-label="token usage, last 24 h"><polyline points="${pts.join(' ')}"/></svg>`;
}

function row(a, i, now) {
  const stale = isStale(a, now);
  const u = usage(a);
  return `<tr data-agent-id="${esc(a.agent_id)}" aria-rowindex="${i + 2}"${stale ? ' class="stale"' : ''}>`
    + `<td title="${esc(a.name)}"><a href="#/agents/${encodeURIComponent(a.agent_id)}">${esc(a.name)}</a><div class="sub">${a.name !== a.agent_id ? esc(a.agent_id) : '&nbsp;'}</div></td>`
    + `<td>${badge(a.status)}${stale ? ' ' + badge('stale') : ''}</td>`
    + `<td>${badge(a.overall_health)}</td>`
    + `<td class="n">${u == null ? '–' : num(u, 1) + ' %'}<div class="sub">${num(a.token_consumption)} / ${num(a.token_limit)}</div></td>`
    + `<td class="n">${num(a.hallucination_rate, 3)}</td><td class="n">${num(a.loop_frequency)}</td><td class="n">${num(a.directive_conflicts)}</td>`
    + `<td><time datetime="${esc(a.last_vitals_at)}" title="${esc(a.last_vitals_at)}">${ago(a.last_vitals_at, now)}</time></td>`
    + `<td>${sparkline(a.trend)}</td><td class="n">${a.open_interventions || 0}</td></tr>`;
}

export async function agentsPage(main) {
  main.innerHTML = `
    <h1>Agents</h1>
    <div class="toolbar">
      <label>Search <input id="agent-search" type="search" placeholder="name or id" autocomplete="off"></label>
      <label>Status <select id="agent-status">
        <option value="">all</option><option value="active">active</option><option value="warning">warning</option>
        <option value="critical">critical</option><option value="stale">stale</option></select></label>
      <span id="agents-count" role="status" class="muted"></span>
      <span id="agents-updated" class="muted"></span>
    </div>
    <p id="agents-error" class="error" role="alert"></p>
    <div class="table-scroll" id="agents-scroll">
      <table id="agents-table">
        <thead><tr>${COLUMNS.map(([k, label]) => `<th scope="col" data-col="${k}"><button type="button" data-sort="${k}">${label}<span class="sort" aria-hidden="true"></span></button></th>`).join('')}</tr></thead>
        <tbody></tbody>
      </table>
    </div>
    <p id="agents-empty" class="muted" hidden></p>`;
  const $ = (s) => main.querySelector(s);
  // rowH: the fixed row height of app.css (#agents-table tbody tr), checked on first paint
  const state = { sort: 'status', dir: -1, q: '', status: '', agents: [], shown: [], first: -1, last: -1, rowH: 56,
                  at: null, timer: null, ctl: null };

  // Filter and sort every agent; then paint the window of them in view.
  function render() {
    const now = Date.now();
    const q = state.q.toLowerCase();
    const key = SORT[state.sort];
    const shown = state.agents.filter((a) => (!q || a.name.toLowerCase().includes(q) || a.agent_id.toLowerCase().includes(q))
      && (!state.status || (state.status === 'stale' ? isStale(a, now) : a.status === state.status)));
    shown.sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === y || (x == null && y == null)) return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
      if (x == null) return 1;  // no value sorts last in both directions
      if (y == null) return -1;
      return (x < y ? -1 : 1) * state.dir;
    });
    state.shown = shown;
    paint(true);
    for (const th of main.querySelectorAll('th[data-col]')) {
      const on = th.dataset.col === state.sort;
      th.setAttribute('aria-sort', on ? (state.dir > 0 ? 'ascending' : 'descending') : 'none');
      th.querySelector('.sort').textContent = on ? (state.dir > 0 ? ' ▲' : ' ▼') : '';
    }
    $('#agents-table').setAttribute('aria-rowcount', String(shown.length + 1));
    $('#agents-count').textContent = `${shown.length} of ${state.agents.length} agents`;
    const empty = $('#agents-empty');
    empty.hidden = shown.length > 0;
    empty.textContent = state.agents.length ? 'No agent matches.' : 'No agent has reported yet: send vitals with POST /api/vitals.';
  }

  // The rows from the first one above the viewport (less OVERSCAN) to the last below
  // it (plus OVERSCAN); spacers of the others' height keep the page's scroll height.
  function paint(force) {
    const tbody = $('#agents-table tbody');
    const n = state.shown.length;
    const h = state.rowH;
    const top = -tbody.getBoundingClientRect().top;
    const first = Math.min(Math.max(0, Math.floor(top / h) - OVERSCAN), Math.max(0, n - 1));
    const last = Math.min(n, first + Math.ceil(innerHeight / h) + 2 * OVERSCAN);
    if (!force && first === state.first && last === state.last) return;
    state.first = first;
    state.last = last;
    const now = Date.now();
    let html = '<tr class="spacer" aria-hidden="true"><td colspan="10"></td></tr>';
    for (let i = first; i < last; i++) html += row(state.shown[i], i, now);
    html += '<tr class="spacer" aria-hidden="true"><td colspan="10"></td></tr>';
    tbody.innerHTML = html;
    tbody.firstElementChild.firstElementChild.style.height = `${first * h}px`;
    tbody.lastElementChild.firstElementChild.style.height = `${(n - last) * h}px`;
  }

  let frame = 0;
  const onScroll = () => { if (!frame) frame = requestAnimationFrame(() => { frame = 0; paint(false); }); };

  async function refresh() {
    state.ctl = new AbortController();
    try {
      const body = await api('/api/dashboard/agents', { signal: state.ctl.signal });
      performance.mark('sophra:agents:data');
      for (const a of body.agents) a._lastMs = Date.parse(a.last_vitals_at);
      state.agents = body.agents;
      state.at = body.generated_at;
      render();
      $('#agents-table').offsetHeight;  // lay the table out now, so the measure includes it
      const drawn = $('#agents-table tbody tr[data-agent-id]');
      if (drawn && drawn.offsetHeight && drawn.offsetHeight !== state.rowH) { state.rowH = drawn.offsetHeight; paint(true); }
      performance.mark('sophra:agents:rendered');
      performance.measure('sophra:agents:render', 'sophra:agents:data', 'sophra:agents:rendered');
      $('#agents-updated').textContent = `updated ${new Date(state.at).toLocaleTimeString('en-GB')}`;
      $('#agents-error').textContent = '';
    } catch (err) {
      if (err.name !== 'AbortError') $('#agents-error').textContent = err.message;
    }
  }

  $('#agent-search').addEventListener('input', (e) => { state.q = e.target.value.trim(); render(); });
  $('#agent-status').addEventListener('change', (e) => { state.status = e.target.value; render(); });
  $('#agents-table thead').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-sort]');
    if (!b) return;
    if (state.sort === b.dataset.sort) state.dir = -state.dir;
    else { state.sort = b.dataset.sort; state.dir = b.dataset.sort === 'name' ? 1 : -1; }
    render();
  });

  await refresh();
  state.timer = setInterval(refresh, REFRESH_MS);
  addEventListener('scroll', onScroll, { passive: true });
  addEventListener('resize', onScroll);
  return () => {
    clearInterval(state.timer);
    if (state.ctl) state.ctl.abort();
    removeEventListener('scroll', onScroll);
    removeEventListener('resize', onScroll);
  };
}
