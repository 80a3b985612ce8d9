// Hash routes (#/agents/<id>), so the api serves one index.html and nothing else needs
// to know the dashboard's paths. A page is mount(...params) -> optional cleanup (stop
// polling, abort requests, destroy charts) run when the route changes.
export function router(routes, fallback) {
  let cleanup = null;
  let generation = 0;
  async function go() {
    const mine = ++generation;
    if (cleanup) { const c = cleanup; cleanup = null; c(); }
    const hash = location.hash || fallback;
    for (const [pattern, mount] of routes) {
      const m = hash.match(pattern);
      if (!m) continue;
      const c = (await mount(...m.slice(1).map(decodeURIComponent))) || null;
      if (mine !== generation) { if (c) c(); } else cleanup = c;  // left while it was mounting
      return;
    }
    location.replace(fallback);
  }
  window.addEventListener('hashchange', go);
  return go;
}
