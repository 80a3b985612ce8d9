// Alert rules of one subject (an application under /v1, an agent under /api): the list
// with each rule's state, its history on demand, and one form to create or edit a rule.
// The api validates; its 400 names the offending field and the form shows the message
// next to that field.
import { api, readOnly } from './api.js';
import { badge, dateTime, esc, num } from './format.js';

const OPERATORS = ['>', '>=', '<', '<=', '==', '!='];
const AGGREGATIONS = ['mean', 'p95', 'max', 'min', 'sum', 'count'];

const condition = (c) => `${c.aggregation} of ${c.metric} over ${c.window} ${c.operator} ${c.threshold}`;
const target = (a) => (a.type === 'email' ? a.recipients.join(', ') : a.type === 'slack' ? a.channel : a.url);

function formHtml(metrics) {
  const opts = (list, sel) => list.map((v) => `<option${v === sel ? ' selected' : ''}>${esc(v)}</option>`).join('');
  const field = (name, label, input) => `<div class="field" data-field="${name}"><label for="rule-${name.replace(/\W/g, '-')}">${label}</label>${input}<p class="field-error" id="rule-${name.replace(/\W/g, '-')}-error"></p></div>`;
  return `
    <form id="rule-form" class="rule-form" novalidate>
      <fieldset id="rule-fields"><legend id="rule-legend">New alert rule</legend>
      ${field('name', 'Name', '<input id="rule-name" autocomplete="off">')}
      ${field('condition.metric', 'Metric', `<input id="rule-condition-metric" list="rule-metrics" autocomplete="off" value="${esc(metrics[0])}"><datalist id="rule-metrics">${metrics.map((m) => `<option value="${esc(m)}">`).join('')}</datalist>`)}
      ${field('condition.aggregation', 'Aggregation', `<select id="rule-condition-aggregation">${opts(AGGREGATIONS, 'mean')}</select>`)}
      ${field('condition.window', 'Window', '<input id="rule-condition-window" value="5m" autocomplete="off">')}
      ${field('condition.operator', 'Operator', `<select id="rule-condition-operator">${opts(OPERATORS, '>')}</select>`)}
      ${field('condition.threshold', 'Threshold', '<input id="rule-condition-threshold" inputmode="decimal" autocomplete="off">')}
      ${field('for', 'For (pending before firing)', '<input id="rule-for" value="0m" autocomplete="off">')}
      ${field('repeat_interval', 'Remind every', '<input id="rule-repeat_interval" value="4h" autocomplete="off">')}
      ${field('actions.type', 'Notify by', `<select id="rule-actions-type">${opts(['email', 'slack', 'webhook'], 'email')}</select>`)}
      ${field('actions', 'To (emails, comma separated · #channel · URL)', '<input id="rule-actions" autocomplete="off">')}
      <div class="field"><label><input id="rule-enabled" type="checkbox" checked> enabled</label></div>
      <div class="form-buttons"><button id="rule-save" type="submit">Create rule</button> <button id="rule-cancel" type="button" hidden>Cancel edit</button></div>
      <p id="rule-error" class="error" role="alert"></p>
      </fieldset>
    </form>`;
}

export function rulesSection(root, { base, metrics }) {
  const ro = readOnly();
  root.innerHTML = `
    <h2>Alert rules</h2>
    <div class="table-scroll"><table class="rules-table">
      <thead><tr><th scope="col">Rule</th><th scope="col">Condition</th><th scope="col">State</th><th scope="col">Since</th><th scope="col">Last value</th><th scope="col">Notifies</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody></tbody></table></div>
    <p class="rules-empty muted" hidden>No alert rule yet.</p>
    <div class="rule-history" hidden></div>
    ${ro ? '<p class="note" id="rule-ro">read-only key: creating and editing alert rules needs a full key.</p>' : ''}
    ${formHtml(metrics)}`;
  const $ = (s) => root.querySelector(s);
  let rules = [];
  let editing = null;
  if (ro) $('#rule-fields').disabled = true;
  const dis = ro ? 'disabled title="read-only key"' : '';
  // Silenced: still evaluated and shown, but nothing is delivered until then.
  const silenced = (r) => r.silenced_until && Date.parse(r.silenced_until) > Date.now();

  async function load() {
    rules = (await api(base)).alerts;
    $('.rules-empty').hidden = rules.length > 0;
    $('tbody').innerHTML = rules.map((r) => `<tr data-rule-id="${esc(r.id)}">
      <td>${esc(r.name)}${r.enabled ? '' : ' <span class="muted">(disabled)</span>'}</td><td><code>${esc(condition(r.condition))}</code></td>
      <td class="rule-state">${badge(r.state.replace('_', ' '), r.state)}</td><td>${esc(dateTime(r.since))}</td><td class="n">${r.value == null ? '–' : num(r.value, 4)}</td>
      <td>${r.actions.map((a) => `${esc(a.type)}: ${esc(target(a))}`).join('<br>')}</td>
      <td class="actions"><button type="button" class="rule-history-btn" data-id="${esc(r.id)}">History</button>
        <button type="button" class="rule-edit" data-id="${esc(r.id)}" ${dis}>Edit</button>
        <button type="button" class="rule-silence" data-id="${esc(r.id)}" ${dis}>${silenced(r) ? 'Unsilence' : 'Silence 1 h'}</button>
        <button type="button" class="rule-delete" data-id="${esc(r.id)}" ${dis}>Delete</button>
        ${silenced(r) ? `<div class="muted rule-silenced">silenced until ${esc(dateTime(r.silenced_until))}</div>` : ''}</td></tr>`).join('');
  }

  function clearErrors() {
    for (const p of root.querySelectorAll('.field-error')) p.textContent = '';
    for (const i of root.querySelectorAll('[aria-invalid]')) i.removeAttribute('aria-invalid');
    $('#rule-error').textContent = '';
  }

  // The api's field is a path like "condition.window" or "actions.0.email.recipients.1":
  // the message goes next to the form field that is the longest prefix of it.
  function showError(err) {
    const fields = [...root.querySelectorAll('.field[data-field]')].map((d) => d.dataset.field);
    const path = (err.field || '').replace(/^for_$/, 'for');
    const match = fields.filter((f) => path === f || path.startsWith(f + '.')).sort((a, b) => b.length - a.length)[0];
    if (!match) { $('#rule-error').textContent = err.message; return; }
    const box = root.querySelector(`.field[data-field="${match}"]`);
    box.querySelector('.field-error').textContent = err.message;
    const input = box.querySelector('input, select');
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', box.querySelector('.field-error').id);
    input.focus();
  }

  function action() {
    const type = $('#rule-actions-type').value, to = $('#rule-actions').value.trim();
    if (type === 'email') return { type, recipients: to ? to.split(',').map((s) => s.trim()).filter(Boolean) : [] };
    if (type === 'slack') return { type, channel: to };
    return { type, url: to };
  }

  function body() {
    const raw = $('#rule-condition-threshold').value.trim();
    const n = Number(raw);
    return {
      name: $('#rule-name').value.trim(),
      condition: {
        metric: $('#rule-condition-metric').value.trim(), operator: $('#rule-condition-operator').value,
        // Not a number: sent as typed, so the api's own message says what is wrong.
        threshold: raw !== '' && Number.isFinite(n) ? n : raw,
        window: $('#rule-condition-window').value.trim(), aggregation: $('#rule-condition-aggregation').value,
      },
      actions: [action()],
      enabled: $('#rule-enabled').checked,
      for: $('#rule-for').value.trim(),
      repeat_interval: $('#rule-repeat_interval').value.trim(),
    };
  }

  function edit(rule) {
    editing = rule;
    clearErrors();
    $('#rule-legend').textContent = rule ? `Edit “${rule.name}”` : 'New alert rule';
    $('#rule-save').textContent = rule ? 'Save changes' : 'Create rule';
    $('#rule-cancel').hidden = !rule;
    const r = rule || { name: '', condition: { metric: metrics[0], operator: '>', threshold: '', window: '5m', aggregation: 'mean' },
                        actions: [{ type: 'email', recipients: [] }], enabled: true, for: '0m', repeat_interval: '4h' };
    $('#rule-name').value = r.name;
    for (const k of ['metric', 'operator', 'threshold', 'window', 'aggregation']) $(`#rule-condition-${k}`).value = r.condition[k];
    $('#rule-actions-type').value = r.actions[0].type;
    $('#rule-actions').value = target(r.actions[0]);
    $('#rule-enabled').checked = r.enabled;
    $('#rule-for').value = r.for;
    $('#rule-repeat_interval').value = r.repeat_interval;
    if (rule) $('#rule-name').focus();
  }

  $('#rule-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors();
    const b = body();
    try {
      if (editing) {
        // Actions are sent only when changed: the stored webhook secret is never shown back.
        const same = JSON.stringify(b.actions[0]) === JSON.stringify({ ...editing.actions[0], secret: undefined });
        if (same) delete b.actions;
        await api(`${base}/${encodeURIComponent(editing.id)}`, { method: 'PATCH', body: b });
      } else {
        await api(base, { method: 'POST', body: b });
      }
      edit(null);
      await load();
      $('#rule-error').textContent = '';
    } catch (err) { showError(err); }
  });
  $('#rule-cancel').addEventListener('click', () => edit(null));

  root.querySelector('.rules-table').addEventListener('click', async (e) => {
    const btn = e.target.closest('button');
    if (!btn) return;
    const rule = rules.find((r) => r.id === btn.dataset.id);
    if (btn.classList.contains('rule-edit')) edit(rule);
    const url = `${base}/${encodeURIComponent(rule.id)}`;
    try {
      if (btn.classList.contains('rule-silence')) {
        const until = silenced(rule) ? null : new Date(Date.now() + 3_600_000).toISOString();
        await api(`${url}/silence`, { method: 'POST', body: { until } });
        await load();
      }
      if (btn.classList.contains('rule-delete') && window.confirm(`Delete the alert rule “${rule.name}”?`)) {
        await api(url, { method: 'DELETE' });
        if (editing && editing.id === rule.id) edit(null);
        await load();
      }
    } catch (err) { $('#rule-error').textContent = err.message; }
    if (btn.classList.contains('rule-history-btn')) {
      const box = $('.rule-history');
      box.hidden = false;
      box.innerHTML = `<h3>History of “${esc(rule.name)}”</h3><p class="muted">Loading…</p>`;
      try {
        const h = await api(`${base}/${encodeURIComponent(rule.id)}/history`);
        box.innerHTML = `<h3>History of “${esc(rule.name)}”</h3>` + (h.transitions.length ? `<div class="table-scroll"><table class="history-table">
          <thead><tr><th scope="col">At</th><th scope="col">From</th><th scope="col">To</th><th scope="col">Value</th><th scope="col">Threshold</th><th scope="col">Notified</th></tr></thead>
          <tbody>${h.transitions.map((t) => `<tr><td>${esc(dateTime(t.at))}</td><td>${esc(t.previous_state)}</td><td>${badge(t.state.replace('_', ' '), t.state)}</td>
            <td class="n">${t.value == null ? '–' : num(t.value, 4)}</td><td class="n">${num(t.threshold, 4)}</td><td>${esc(t.notify || '–')}</td></tr>`).join('')}</tbody></table></div>`
          : '<p class="muted">No state change yet.</p>');
      } catch (err) { box.innerHTML = `<p class="error" role="alert">${esc(err.message)}</p>`; }
    }
  });

  edit(null);
  return load();
}
