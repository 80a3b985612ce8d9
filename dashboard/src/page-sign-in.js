// Sign in with an API key: checked with GET /api/keys, then kept in session storage.
import { api, session } from './api.js';

export function signInPage(main) {
  main.innerHTML = `
    <section class="narrow">
      <h1>Sign in</h1>
      <p>Sign in with one of your account's API keys. It stays in this tab only and is forgotten when you sign out or close it.</p>
      <form id="sign-in-form" novalidate>
        <label for="sign-in-key">API key</label>
        <input id="sign-in-key" name="key" type="password" autocomplete="off" required placeholder="sk_live_…" aria-describedby="sign-in-error">
        <button id="sign-in" type="submit">Sign in</button>
        <p id="sign-in-error" class="error" role="alert"></p>
      </form>
      <p>No key yet? <a id="get-key" href="/onboarding.html">Get a key</a>.</p>
    </section>`;
  const form = main.querySelector('#sign-in-form');
  const error = main.querySelector('#sign-in-error');
  const input = main.querySelector('#sign-in-key');
  input.focus();
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const key = input.value.trim();
    error.textContent = '';
    if (!key) { error.textContent = 'Enter an API key'; return; }
    try {
      const info = await api('/api/keys', { key });
      session.signIn(key, info);
      location.hash = '#/agents';
    } catch (err) {
      error.textContent = err.status === 401 ? 'This key is unknown or revoked.' : err.message;
    }
  });
}
