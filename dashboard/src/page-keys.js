// The signed-in account's API keys: list, create (the key is shown once) and revoke.
import { api, whoami } from './api.js';
import { badge, dateTime, esc } from './format.js';

export async function keysPage(main) {
  main.innerHTML = `
    <h1>API keys</h1>
    <p id="keys-account" class="muted"></p>
    <p id="keys-ro" class="note" hidden>read-only key: creating and revoking keys needs a full key of the account.</p>
    <form id="key-form" class="inline-form">
      <fieldset id="key-fields">
        <legend>New key</legend>
        <label><input id="key-read-only" type="checkbox"> read-only (can read, cannot change anything)</label>
        <button id="key-create" type="submit">Create key</button>
      </fieldset>
      <p id="key-error" class="error" role="alert"></p>
    </form>
    <div id="key-created" class="created" hidden>
      <p><strong>Your new key</strong>: copy it now, it is shown only once.</p>
      <code id="key-new" class="key"></code>
      <button id="key-copy" type="button">Copy</button> <span id="key-copied" role="status"></span>
    </div>
    <div class="table-scroll">
      <table id="keys-table">
        <caption class="sr-only">Keys of the account</caption>
        <thead><tr><th scope="col">Key</th><th scope="col">Kind</th><th scope="col">Created</th><th scope="col">Status</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
        <tbody></tbody>
      </table>
    </div>
    <p id="keys-error" class="error" role="alert"></p>`;
  const $ = (s) => main.querySelector(s);
  let me;

  async function load() {
    me = await whoami(true);
    $('#keys-account').textContent = `Account ${me.email} · at most ${me.max_active_keys} active keys`;
    $('#keys-ro').hidden = !me.read_only;
    $('#key-fields').disabled = me.read_only;
    $('#keys-table tbody').innerHTML = me.keys.map((k) => {
      const current = k.key_id === me.current_key_id;
      let action = '';
      if (k.active && current) action = '<span class="muted">signed in with this key</span>';
      else if (k.active) action = `<button type="button" class="revoke" data-key="${esc(k.key_id)}" ${me.read_only ? 'disabled title="read-only key"' : ''}>Revoke</button>`;
      return `<tr data-key-id="${esc(k.key_id)}"><td><code>${esc(k.masked)}</code></td><td>${k.read_only ? 'read-only' : 'full'}</td>
        <td>${esc(dateTime(k.created_at))}</td>
        <td>${k.active ? badge('active') : badge('revoked ' + dateTime(k.revoked_at), 'disabled')}</td><td class="actions">${action}</td></tr>`;
    }).join('');
  }

  $('#key-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    $('#key-error').textContent = '';
    try {
      const created = await api('/api/keys', { method: 'POST', body: { email: me.email, read_only: $('#key-read-only').checked } });
      $('#key-new').textContent = created.key;
      $('#key-copied').textContent = '';
      $('#key-created').hidden = false;
      await load();
    } catch (err) { $('#key-error').textContent = err.message; }
  });

  $('#key-copy').addEventListener('click', async () => {
    const text = $('#key-new').textContent;
    try {
      await navigator.clipboard.writeText(text);
      $('#key-copied').textContent = 'Copied';
    } catch {
      // No clipboard permission (e.g. plain http on another host): select it for Ctrl+C.
      getSelection().selectAllChildren($('#key-new'));
      $('#key-copied').textContent = 'Selected: press Ctrl+C to copy';
    }
  });

  // Revoking asks once more in place (no window.confirm, which blocks the page).
  $('#keys-table').addEventListener('click', async (e) => {
    const btn = e.target.closest('button');
    if (!btn) return;
    const cell = btn.closest('td');
    if (btn.classList.contains('revoke')) {
      cell.innerHTML = `<span>Revoke it?</span> <button type="button" class="confirm-revoke" data-key="${esc(btn.dataset.key)}">Yes, revoke</button> <button type="button" class="cancel-revoke">Cancel</button>`;
    } else if (btn.classList.contains('cancel-revoke')) {
      await load();
    } else if (btn.classList.contains('confirm-revoke')) {
      $('#keys-error').textContent = '';
      try {
        await api(`/api/keys/${encodeURIComponent(btn.dataset.key)}`, { method: 'DELETE' });
      } catch (err) { $('#keys-error').textContent = err.message; }
      await load();
    }
  });

  try { await load(); } catch (err) { $('#keys-error').textContent = err.message; }
}
