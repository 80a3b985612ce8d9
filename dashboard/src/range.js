// The time range picker of the detail pages: 1 h, 24 h, 7 d, 30 d or a custom span.
import { fromLocalInput, toLocalInput } from './format.js';

export const SPANS = { '1h': 3_600_000, '24h': 86_400_000, '7d': 7 * 86_400_000, '30d': 30 * 86_400_000 };

export function rangePicker(root, initial, onChange) {
  const id = root.id || 'range';
  root.innerHTML = `<fieldset class="range"><legend>Range</legend>
    ${[...Object.keys(SPANS), 'custom'].map((k) => `<label class="pill"><input type="radio" name="${id}-span" value="${k}"${k === initial ? ' checked' : ''}> ${k === 'custom' ? 'custom' : k.replace('h', ' h').replace('d', ' d')}</label>`).join('')}
    <span class="custom" hidden>
      <label>From <input type="datetime-local" class="range-from"></label>
      <label>To <input type="datetime-local" class="range-to"></label>
      <button type="button" class="range-apply">Apply</button>
    </span>
    <span class="range-error error" role="alert"></span></fieldset>`;
  let span = initial;
  let custom = null;
  const $ = (s) => root.querySelector(s);

  function current() {
    if (span === 'custom' && custom) return { ...custom, span };
    const end = Date.now();
    return { start: end - SPANS[span === 'custom' ? '24h' : span], end, span };
  }

  root.addEventListener('change', (e) => {
    if (e.target.name !== `${id}-span`) return;
    span = e.target.value;
    $('.custom').hidden = span !== 'custom';
    if (span === 'custom') {
      const r = custom || current();
      $('.range-from').value = toLocalInput(r.start);
      $('.range-to').value = toLocalInput(r.end);
      return;  // drawn once the span is applied
    }
    onChange(current());
  });
  $('.range-apply').addEventListener('click', () => {
    const start = fromLocalInput($('.range-from').value), end = fromLocalInput($('.range-to').value);
    $('.range-error').textContent = '';
    if (!(start < end)) { $('.range-error').textContent = 'From must be before To'; return; }
    custom = { start, end };
    onChange(current());
  });
  return { current };
}
