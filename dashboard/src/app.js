// Entry point: the routes, the header (who is signed in, sign out) and the guard that
// sends a visitor without a key to #/sign-in.
import { router } from './router.js';
import { session, whoami } from './api.js';
import { signInPage } from './page-sign-in.js';
import { agentsPage } from './page-agents.js';
import { agentPage } from './page-agent.js';
import { applicationsPage } from './page-applications.js';
import { applicationPage } from './page-application.js';
import { keysPage } from './page-keys.js';
import { sqlPage } from './page-sql.js';
import { budgetsPage } from './page-budgets.js';

const main = document.getElementById('main');
const $ = (id) => document.getElementById(id);

async function header(section) {
  const signedIn = Boolean(session.key);
  $('nav').hidden = $('who').hidden = !signedIn;
  if (!signedIn) return;
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === section) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const me = await whoami();
  $('who-email').textContent = me.email;
  $('who-ro').hidden = !me.read_only;
}

// Pages behind a key: without one, sign in first; with one, fill the header first.
function guarded(section, page) {
  return async (...params) => {
    if (!session.key) { location.replace('#/sign-in'); return null; }
    try {
      await header(section);
    } catch (err) {
      main.innerHTML = '';
      main.append(Object.assign(document.createElement('p'), { className: 'error', role: 'alert', textContent: err.message }));
      return null;
    }
    return page(main, ...params);
  };
}

const go = router([
  [/^#\/sign-in$/, async () => { await header(null); return signInPage(main); }],
  [/^#\/agents$/, guarded('agents', agentsPage)],
  [/^#\/agents\/(.+)$/, guarded('agents', agentPage)],
  [/^#\/applications$/, guarded('applications', applicationsPage)],
  [/^#\/applications\/(.+)$/, guarded('applications', applicationPage)],
  [/^#\/budgets$/, guarded('budgets', budgetsPage)],
  [/^#\/sql$/, guarded('sql', sqlPage)],
  [/^#\/keys$/, guarded('keys', keysPage)],
], session.key ? '#/agents' : '#/sign-in');

function signOut() {
  session.signOut();
  if (location.hash === '#/sign-in') go(); else location.hash = '#/sign-in';
}
$('sign-out').addEventListener('click', signOut);
window.addEventListener('sophra:signed-out', signOut);  // the api refused the session's key
go();
