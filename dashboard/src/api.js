// Every call to the api goes through here: the signed-in key (session storage, so it is
// gone with the tab) as a Bearer header, and one error shape for the pages to show:
// {status, error, message, field}, as the api answers it.
const KEY = 'sophra.key';

export class ApiError extends Error {
  constructor(status, body) {
    super(body.message || body.error || `HTTP ${status}`);
    this.status = status;
    this.error = body.error || `HTTP ${status}`;
    this.field = body.field || null;
  }
}

let account = null;  // GET /api/keys of the signed-in key, fetched once per sign-in

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  signIn(key, info) { sessionStorage.setItem(KEY, key); account = info; },
  signOut() { sessionStorage.removeItem(KEY); account = null; },
};

export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? '?' + s : '';
}

export async function api(path, { method = 'GET', body, key = session.key, signal } = {}) {
  const headers = {};
  if (key) headers.Authorization = 'Bearer ' + key;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, { error: 'Network error', message: 'The api did not answer; is the server running?' });
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    // The session's key was revoked or is unknown: forget it, the app goes to sign-in.
    if (res.status === 401 && key && key === session.key) window.dispatchEvent(new Event('sophra:signed-out'));
    throw new ApiError(res.status, data);
  }
  return data;
}

/** The signed-in account: {email, current_key_id, read_only, keys}. */
export async function whoami(refresh = false) {
  if (!account || refresh) account = await api('/api/keys');
  return account;
}

export function readOnly() { return Boolean(account && account.read_only); }
