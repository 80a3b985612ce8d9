// Formatting shared by the pages. Everything shown from the api goes through esc().
const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => ESC[c]);

export function ago(iso, now = Date.now()) {
  if (!iso) return 'never';
  const s = Math.round((now - Date.parse(iso)) / 1000);
  if (s < 0) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

// One formatter per precision: toLocaleString would build a new one per call, which
// costs more than the rest of a 2,000-row table together.
const FORMATS = [];
export function num(v, digits = 0) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  const f = FORMATS[digits] || (FORMATS[digits] = new Intl.NumberFormat('en-US', { maximumFractionDigits: digits }));
  return f.format(v);
}

export const pct = (v, digits = 1) => (v === null || v === undefined ? '–' : `${num(v, digits)} %`);
export const dateTime = (iso) => (iso ? new Date(iso).toLocaleString('en-GB', { hour12: false }) : '–');

// Status is said with a word and an icon, never by colour alone.
const ICONS = {
  active: '●', ok: '✓', green: '●', success: '✓',
  warning: '▲', warn: '▲', amber: '▲', pending: '◔', in_progress: '◔', medium: '▲',
  critical: '✖', fail: '✖', red: '✖', firing: '✖', failed: '✖', rolled_back: '↺', high: '✖',
  stale: '◌', no_data: '?', disabled: '–', low: '●', open: '◔', closed: '✓',
  inactive: '–', maintenance: '◔',
};
export function badge(word, kind = word) {
  return `<span class="badge b-${esc(kind)}"><span aria-hidden="true">${ICONS[kind] || '•'}</span> ${esc(word)}</span>`;
}

export function el(html) {
  const t = document.createElement('template');
  t.innerHTML = html.trim();
  return t.content.firstElementChild;
}

/** <input type=datetime-local> value (local time) for an epoch ms, and back. */
export function toLocalInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}
export const fromLocalInput = (v) => (v ? new Date(v).getTime() : NaN);
