// The account's token budgets (docs/budgets.md): each one's use of its period or window
// with the worker's freshness and, once forecast, when it runs out; one form to create a
// budget, delete in place. The api validates; its 400 names the field and the form
// shows the message next to it.
import { api, readOnly } from './api.js';
import { ago, badge, dateTime, esc, num, pct } from './format.js';

const WARN_PERCENT = 80;  // the row says "warning" from here, as the alerts on a budget default to

const covers = (b) => (b.scope === 'agent' ? `agent ${b.agent_id}` : b.scope === 'group' ? `${b.tag} = ${b.tag_value}` : 'whole account');
const period = (b) => (b.period === 'rolling' ? `rolling ${b.window}` : `per ${b.period}`);

function state(b) {
  if (b.exhausted) return badge('exhausted', 'critical');
  if (b.percent_used >= WARN_PERCENT) return badge(`over ${WARN_PERCENT} %`, 'warning');
  return badge('ok', 'ok');
}

function forecast(b) {
  if (b.exhausted) return 'exhausted';
  if (!b.forecast_exhaustion_at) return '<span class="muted">not at this pace</span>';
  const lo = b.forecast_exhaustion_lower, hi = b.forecast_exhaustion_upper;
  const range = lo || hi ? `<div class="muted">between ${esc(lo ? dateTime(lo) : 'now')} and ${esc(hi ? dateTime(hi) : 'later')}</div>` : '';
  return `<time datetime="${esc(b.forecast_exhaustion_at)}">${esc(dateTime(b.forecast_exhaustion_at))}</time>${range}`;
}

export async function budgetsPage(main) {
  const ro = readOnly();
  const field = (name, label, input) => `<div class="field" data-field="${name}"><label for="budget-${name}">${label}</label>${input}<p class="field-error" id="budget-${name}-error"></p></div>`;
  main.innerHTML = `
    <h1>Token budgets</h1>
    <p class="muted">Tokens the agents report (<code>tokenConsumption</code>), counted by the worker against each budget. The agents see their budget in every vitals answer.</p>
    <div class="table-scroll"><table id="budgets-table">
      <caption class="sr-only">Budgets of the account</caption>
      <thead><tr><th scope="col">Budget</th><th scope="col">Covers</th><th scope="col">Period</th><th scope="col">Used</th><th scope="col">Limit</th>
        <th scope="col">Use</th><th scope="col">State</th><th scope="col">Runs out</th><th scope="col">Since</th><th scope="col">Counted up to</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody></tbody></table></div>
    <p id="budgets-empty" class="muted" hidden>No budget yet.</p>
    <p id="budgets-error" class="error" role="alert"></p>
    ${ro ? '<p class="note" id="budget-ro">read-only key: creating and deleting budgets needs a full key.</p>' : ''}
    <form id="budget-form" class="rule-form" novalidate>
      <fieldset id="budget-fields"><legend>New budget</legend>
      ${field('name', 'Name (optional)', '<input id="budget-name" autocomplete="off">')}
      ${field('scope', 'Covers', '<select id="budget-scope"><option value="agent">one agent</option><option value="group">an agent group (a metadata tag)</option><option value="account">the whole account</option></select>')}
      ${field('agent_id', 'Agent id', '<input id="budget-agent_id" autocomplete="off">')}
      ${field('tag', 'Tag (metadata key)', '<input id="budget-tag" autocomplete="off" placeholder="team">')}
      ${field('tag_value', 'Tag value', '<input id="budget-tag_value" autocomplete="off" placeholder="support">')}
      ${field('limit', 'Limit (tokens)', '<input id="budget-limit" inputmode="numeric" autocomplete="off">')}
      ${field('period', 'Period', '<select id="budget-period"><option>day</option><option>week</option><option>month</option><option>rolling</option></select>')}
      ${field('window', 'Rolling window', '<input id="budget-window" autocomplete="off" value="24h">')}
      <div class="form-buttons"><button id="budget-create" type="submit">Create budget</button></div>
      <p id="budget-error" class="error" role="alert"></p>
      </fieldset>
    </form>`;
  const $ = (s) => main.querySelector(s);
  const dis = ro ? 'disabled title="read-only key"' : '';
  if (ro) $('#budget-fields').disabled = true;

  // Only the inputs the chosen scope and period use are shown.
  function shape() {
    const scope = $('#budget-scope').value;
    main.querySelector('[data-field="agent_id"]').hidden = scope !== 'agent';
    for (const f of ['tag', 'tag_value']) main.querySelector(`[data-field="${f}"]`).hidden = scope !== 'group';
    main.querySelector('[data-field="window"]').hidden = $('#budget-period').value !== 'rolling';
  }
  $('#budget-scope').addEventListener('change', shape);
  $('#budget-period').addEventListener('change', shape);
  shape();

  async function load() {
    const budgets = (await api('/api/budgets')).budgets;
    $('#budgets-empty').hidden = budgets.length > 0;
    $('#budgets-table tbody').innerHTML = budgets.map((b) => `<tr data-budget-id="${esc(b.id)}">
      <td>${esc(b.name)}</td><td>${esc(covers(b))}</td><td>${esc(period(b))}</td>
      <td class="n">${num(b.used)}</td><td class="n">${num(b.limit)}</td>
      <td class="budget-use"><meter min="0" max="100" low="${WARN_PERCENT}" high="99.99" optimum="0" value="${Math.min(b.percent_used, 100)}" aria-label="${esc(pct(b.percent_used, 2))} used"></meter> <span class="budget-percent">${esc(pct(b.percent_used, 2))}</span></td>
      <td class="budget-state">${state(b)}</td><td class="budget-forecast">${forecast(b)}</td>
      <td>${esc(dateTime(b.since))}${b.resets_at ? `<div class="muted">resets ${esc(dateTime(b.resets_at))}</div>` : ''}</td>
      <td class="budget-as-of">${b.as_of ? esc(ago(b.as_of)) : '<span class="muted">nothing yet</span>'}</td>
      <td class="actions"><button type="button" class="budget-delete" data-id="${esc(b.id)}" ${dis}>Delete</button></td></tr>`).join('');
  }

  function clearErrors() {
    for (const p of main.querySelectorAll('.field-error')) p.textContent = '';
    for (const i of main.querySelectorAll('[aria-invalid]')) i.removeAttribute('aria-invalid');
    $('#budget-error').textContent = '';
  }

  function showError(err) {
    const box = err.field && main.querySelector(`.field[data-field="${CSS.escape(err.field)}"]`);
    if (!box || box.hidden) { $('#budget-error').textContent = err.message; return; }
    box.querySelector('.field-error').textContent = err.message;
    const input = box.querySelector('input, select');
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', box.querySelector('.field-error').id);
    input.focus();
  }

  function body() {
    const scope = $('#budget-scope').value, periodValue = $('#budget-period').value;
    const raw = $('#budget-limit').value.trim();
    const out = { scope, period: periodValue, limit: /^\d+$/.test(raw) ? Number(raw) : raw };  // as typed: the api says what is wrong
    const name = $('#budget-name').value.trim();
    if (name) out.name = name;
    if (scope === 'agent') out.agent_id = $('#budget-agent_id').value.trim();
    if (scope === 'group') { out.tag = $('#budget-tag').value.trim(); out.tag_value = $('#budget-tag_value').value; }
    if (periodValue === 'rolling') out.window = $('#budget-window').value.trim();
    return out;
  }

  $('#budget-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors();
    try {
      await api('/api/budgets', { method: 'POST', body: body() });
      $('#budget-form').reset();
      shape();
      await load();
    } catch (err) { showError(err); }
  });

  // Deleting asks once more in place (no window.confirm, which blocks the page).
  $('#budgets-table').addEventListener('click', async (e) => {
    const btn = e.target.closest('button');
    if (!btn) return;
    const cell = btn.closest('td');
    if (btn.classList.contains('budget-delete')) {
      cell.innerHTML = `<span>Delete it?</span> <button type="button" class="confirm-delete" data-id="${esc(btn.dataset.id)}">Yes, delete</button> <button type="button" class="cancel-delete">Cancel</button>`;
    } else if (btn.classList.contains('cancel-delete')) {
      await load();
    } else if (btn.classList.contains('confirm-delete')) {
      $('#budgets-error').textContent = '';
      try {
        await api(`/api/budgets/${encodeURIComponent(btn.dataset.id)}`, { method: 'DELETE' });
      } catch (err) { $('#budgets-error').textContent = err.message; }
      await load();
    }
  });

  // The worker's counts move while the page is open: refresh them as the overview does.
  const timer = setInterval(() => load().catch((err) => { $('#budgets-error').textContent = err.message; }), 10_000);
  try { await load(); } catch (err) { $('#budgets-error').textContent = err.message; }
  return () => clearInterval(timer);
}
