// SQL over the account's own data (POST /v1/sql, docs/sql.md): a query box, the answer as a
// table, the engine's error next to the box, and the same answer as a CSV download. A
// read-only key may use it: the query only reads.
import { api, session } from './api.js';
import { esc } from './format.js';

// The account's tables (docs/sql.md), offered as a starting query each.
const TABLES = ['app_metrics', 'app_metrics_1h', 'vitals', 'events', 'agents', 'interventions', 'agent_vitals_1h',
                'deployments', 'insights', 'alert_transitions', 'alert_deliveries'];
const EXAMPLE = 'SELECT metric, count() AS points, avg(value) AS mean\nFROM app_metrics\n'
  + 'WHERE timestamp > now() - INTERVAL 1 DAY\nGROUP BY metric\nORDER BY metric';

export async function sqlPage(main) {
  main.innerHTML = `
    <h1>SQL</h1>
    <p class="muted">One read-only <code>SELECT</code> over this account's data, at most 100,000 rows and 10 s.
      Tables: ${TABLES.map((t) => `<button type="button" class="linkish sql-table" data-table="${t}">${t}</button>`).join(' ')}
      and the others in the project's <code>docs/sql.md</code>.</p>
    <form id="sql-form">
      <label for="sql-query">Query</label>
      <textarea id="sql-query" rows="7" spellcheck="false" aria-describedby="sql-error"></textarea>
      <p id="sql-error" class="error" role="alert"></p>
      <div class="toolbar">
        <button id="sql-run" type="submit">Run</button>
        <button id="sql-csv" type="button">Download CSV</button>
        <span id="sql-status" class="muted" role="status"></span>
      </div>
    </form>
    <div class="table-scroll">
      <table id="sql-result" hidden>
        <caption class="sr-only">The query's answer</caption>
        <thead></thead><tbody></tbody>
      </table>
    </div>`;
  const $ = (s) => main.querySelector(s);
  const box = $('#sql-query');
  box.value = sessionStorage.getItem('sophra.sql') || EXAMPLE;

  function showError(err) {
    $('#sql-error').textContent = err.message;
    box.setAttribute('aria-invalid', 'true');
    box.focus();
  }
  function clearError() {
    $('#sql-error').textContent = '';
    box.removeAttribute('aria-invalid');
  }

  async function run() {
    clearError();
    sessionStorage.setItem('sophra.sql', box.value);
    $('#sql-status').textContent = 'Running…';
    try {
      const answer = await api('/v1/sql', { method: 'POST', body: { query: box.value } });
      const table = $('#sql-result');
      table.tHead.innerHTML = `<tr>${answer.meta.map((c) => `<th scope="col" title="${esc(c.type)}">${esc(c.name)}</th>`).join('')}</tr>`;
      table.tBodies[0].innerHTML = answer.data.map((row) => `<tr>${row.map((v) => `<td>${esc(
        v === null ? 'NULL' : typeof v === 'object' ? JSON.stringify(v) : String(v))}</td>`).join('')}</tr>`).join('');
      table.hidden = false;
      const s = answer.statistics;
      $('#sql-status').textContent = `${answer.rows.toLocaleString('en')} row${answer.rows === 1 ? '' : 's'} · `
        + `${s.rows_read.toLocaleString('en')} read · ${(s.elapsed * 1000).toFixed(0)} ms`;
    } catch (err) {
      $('#sql-status').textContent = '';
      showError(err);
    }
  }

  // The CSV comes from the api as it is (format csv), so it is the engine's own CSV.
  async function download() {
    clearError();
    try {
      const res = await fetch('/v1/sql', {
        method: 'POST', body: JSON.stringify({ query: box.value, format: 'csv' }),
        headers: { Authorization: 'Bearer ' + session.key, 'Content-Type': 'application/json' },
      });
      if (!res.ok) throw new Error((await res.json().catch(() => ({}))).message || `HTTP ${res.status}`);
      const url = URL.createObjectURL(await res.blob());
      const a = Object.assign(document.createElement('a'), { href: url, download: 'sophra-query.csv' });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (err) { showError(err); }
  }

  $('#sql-form').addEventListener('submit', (e) => { e.preventDefault(); run(); });
  $('#sql-csv').addEventListener('click', download);
  box.addEventListener('keydown', (e) => {  // Ctrl/Cmd+Enter runs, as in most SQL editors
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); }
  });
  main.addEventListener('click', (e) => {
    const t = e.target.closest('.sql-table');
    if (!t) return;
    box.value = `SELECT *\nFROM ${t.dataset.table}\nLIMIT 100`;
    run();
  });
}
