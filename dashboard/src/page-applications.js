// Applications overview: status, environment and the last 24 h (uptime, response time,
// error rate) of every application of the account.
import { api } from './api.js';
import { badge, esc, num, pct } from './format.js';

async function all() {
  const apps = [];
  for (let page = 1; ; page++) {
    const body = await api(`/v1/applications?page=${page}&per_page=100`);
    apps.push(...body.applications);
    if (apps.length >= body.total || !body.applications.length) return apps;
  }
}

// The 24 h figures come with each application's detail: a few at a time.
async function details(apps, limit = 6) {
  const out = new Array(apps.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, apps.length) }, async () => {
    while (next < apps.length) { const i = next++; out[i] = await api(`/v1/applications/${encodeURIComponent(apps[i].id)}`); }
  }));
  return out;
}

export async function applicationsPage(main) {
  main.innerHTML = `<h1>Applications</h1>
    <p id="apps-error" class="error" role="alert"></p>
    <div class="table-scroll"><table id="apps-table">
      <thead><tr><th scope="col">Application</th><th scope="col">Status</th><th scope="col">Environment</th><th scope="col">Uptime 24 h</th>
        <th scope="col">Response time 24 h</th><th scope="col">Error rate 24 h</th></tr></thead><tbody></tbody></table></div>
    <p id="apps-empty" class="muted" hidden>No application yet: create one with POST /v1/applications.</p>`;
  try {
    const apps = await details(await all());
    main.querySelector('#apps-empty').hidden = apps.length > 0;
    main.querySelector('#apps-table tbody').innerHTML = apps.map((a) => `<tr data-app-id="${esc(a.id)}">
      <td><a href="#/applications/${encodeURIComponent(a.id)}">${esc(a.name)}</a><div class="sub">${esc(a.id)}</div></td>
      <td>${badge(a.status)}</td><td>${esc(a.environment)}</td><td class="n">${pct(a.metrics.uptime, 2)}</td>
      <td class="n">${a.metrics.response_time == null ? '–' : num(a.metrics.response_time, 1) + ' ms'}</td>
      <td class="n">${a.metrics.error_rate == null ? '–' : pct(a.metrics.error_rate * 100, 2)}</td></tr>`).join('');
  } catch (err) {
    main.querySelector('#apps-error').textContent = err.message;
  }
}
