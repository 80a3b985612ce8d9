// The one uPlot wrapper: a time series with the health thresholds drawn as bands behind
// it, events as marker lines, episodes (ARI interventions) as shaded spans, and a
// forecast drawn ahead of the data with its confidence band. Times are epoch seconds.
// The chart element keeps what was drawn in el.__chartData (for tests and debugging).
import uPlot from './vendor/uPlot.esm.js';

export const COLORS = { line: '#1d4ed8', forecast: '#7c3aed', marker: '#0f766e', deploy: '#b45309', span: 'rgba(124,58,237,0.12)' };
const BAND = { green: 'rgba(22,163,74,0.10)', amber: 'rgba(217,119,6,0.14)', red: 'rgba(220,38,38,0.12)' };

function drawBands(u, bands) {
  const { ctx, bbox } = u;
  const [min, max] = [u.scales.y.min, u.scales.y.max];
  const y = (v) => u.valToPos(Math.min(Math.max(v, min), max), 'y', true);
  ctx.save();
  for (const [from, to, color] of [[min, bands.amber, BAND.green], [bands.amber, bands.red, BAND.amber], [bands.red, max, BAND.red]]) {
    if (to <= min || from >= max) continue;
    ctx.fillStyle = color;
    ctx.fillRect(bbox.left, y(to), bbox.width, y(from) - y(to));
  }
  ctx.restore();
}

function drawSpans(u, spans) {
  const { ctx, bbox } = u;
  ctx.save();
  ctx.fillStyle = COLORS.span;
  for (const s of spans) {
    const a = Math.max(u.valToPos(s.from, 'x', true), bbox.left);
    const b = Math.min(u.valToPos(s.to, 'x', true), bbox.left + bbox.width);
    if (b > a) ctx.fillRect(a, bbox.top, b - a, bbox.height);
  }
  ctx.restore();
}

function drawMarkers(u, markers) {
  const { ctx, bbox } = u;
  ctx.save();
  ctx.lineWidth = Math.max(1, devicePixelRatio);
  ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
  for (const m of markers) {
    const x = Math.round(u.valToPos(m.t, 'x', true));
    if (x < bbox.left || x > bbox.left + bbox.width) continue;
    ctx.strokeStyle = m.color || COLORS.marker;
    ctx.beginPath();
    ctx.moveTo(x, bbox.top);
    ctx.lineTo(x, bbox.top + bbox.height);
    ctx.stroke();
  }
  ctx.restore();
}

// Markers and spans get hover targets with a title (their label), placed over the plot.
function placeTargets(u, layer, markers, spans) {
  layer.textContent = '';
  const w = u.over.clientWidth;
  for (const s of spans) {
    const a = Math.max(u.valToPos(s.from, 'x'), 0), b = Math.min(u.valToPos(s.to, 'x'), w);
    if (b <= a) continue;
    const d = document.createElement('div');
    d.className = 'chart-span';
    d.title = s.label;
    d.style.left = a + 'px';
    d.style.width = Math.max(b - a, 2) + 'px';
    layer.append(d);
  }
  for (const m of markers) {
    const x = u.valToPos(m.t, 'x');
    if (x < 0 || x > w) continue;
    const d = document.createElement('div');
    d.className = 'chart-marker';
    d.title = m.label;
    d.style.left = x - 4 + 'px';
    layer.append(d);
  }
}

// The forecast's confidence band: the polygon through its high values and back along its lows.
function drawConfidence(u, f) {
  const { ctx } = u;
  ctx.save();
  ctx.fillStyle = 'rgba(124,58,237,0.15)';
  ctx.beginPath();
  f.x.forEach((t, i) => ctx[i ? 'lineTo' : 'moveTo'](u.valToPos(t, 'x', true), u.valToPos(f.hi[i], 'y', true)));
  for (let i = f.x.length - 1; i >= 0; i--) ctx.lineTo(u.valToPos(f.x[i], 'x', true), u.valToPos(f.lo[i], 'y', true));
  ctx.closePath();
  ctx.fill();
  ctx.restore();
}

/**
 * lineChart(el, {label, x, y, bands?, markers?, spans?, forecast?: {x, y, lo, hi}, format?, yMin?})
 * Returns {destroy, update(opts)}.
 */
export function lineChart(el, opts) {
  let u = null;
  let resize = null;
  const layer = document.createElement('div');
  layer.className = 'chart-targets';

  function build(o) {
    const fmt = o.format || ((v) => (Math.abs(v) >= 100 ? v.toFixed(0) : +v.toPrecision(3)).toString());
    const fx = o.forecast ? o.forecast.x : [];
    const n = o.x.length;
    const x = fx.length ? o.x.concat(fx) : o.x;
    const pad = (arr, before, after) => new Array(before).fill(null).concat(arr, new Array(after).fill(null));
    const data = [x, pad(o.y, 0, fx.length)];
    const series = [{}, { label: o.label, stroke: COLORS.line, width: 2, value: (_, v) => (v == null ? '–' : fmt(v)) }];
    // Buckets finer than the reports (an agent every 5 min on 1m buckets) leave most of
    // them empty: no line joins them, so each value is drawn as a dot. Gaps are not
    // bridged, since a gap means nothing was reported.
    let filled = 0;
    for (const v of o.y) if (v != null) filled++;
    if (filled && filled < o.y.length / 2) series[1].points = { show: true, size: 6, fill: COLORS.line, stroke: COLORS.line };
    let band = null;
    if (fx.length) {
      // The forecast starts at the last real point, so its line continues from the data.
      let last = n - 1;
      while (last >= 0 && o.y[last] == null) last--;
      const ahead = pad(o.forecast.y, n, 0);
      if (last >= 0) ahead[last] = o.y[last];
      data.push(ahead);
      series.push({ label: 'forecast', stroke: COLORS.forecast, width: 2, dash: [6, 4], spanGaps: true,
                    value: (_, v) => (v == null ? '–' : fmt(v)) });
      band = o.forecast;
    }
    const markers = o.markers || [];
    const spans = o.spans || [];
    const range = (self, min, max) => {
      let lo = o.yMin ?? Math.min(min ?? 0, 0), hi = max ?? 1;
      if (o.bands) hi = Math.max(hi, o.bands.red * 1.25);  // the red band is always in sight
      if (band) hi = Math.max(hi, ...band.hi);
      if (hi <= lo) hi = lo + 1;
      return [lo, hi + (hi - lo) * 0.05];
    };
    const width = Math.max(el.clientWidth, 240);
    u = new uPlot({
      width, height: o.height || 200,
      series,
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true, range: o.xRange ? () => o.xRange : undefined }, y: { range } },
      axes: [{}, { values: (self, ticks) => ticks.map(fmt), size: 72 }],
      hooks: {
        drawClear: [(self) => { if (o.bands) drawBands(self, o.bands); drawSpans(self, spans); if (band) drawConfidence(self, band); }],
        draw: [(self) => { drawMarkers(self, markers); placeTargets(self, layer, markers, spans); }],
      },
    }, data, el);
    u.over.append(layer);
    el.__chartData = data;
    el.__chartMarks = { markers: markers.map((m) => m.t), spans: spans.map((sp) => [sp.from, sp.to]) };
    el.__uplot = u;
    el.dataset.points = String(o.y.filter((v) => v != null).length);
    resize = new ResizeObserver(() => {
      const w = Math.max(el.clientWidth, 240);
      if (u && Math.abs(w - u.width) > 1) u.setSize({ width: w, height: u.height });
    });
    resize.observe(el);
  }

  function destroy() {
    if (resize) resize.disconnect();
    if (u) u.destroy();
    u = null;
  }

  build(opts);
  return { destroy, update(o) { destroy(); build(o); } };
}

/** The series of an api answer ({data: [{timestamp, value}]}) as uPlot columns. */
export function columns(data) {
  const x = new Array(data.length), y = new Array(data.length);
  for (let i = 0; i < data.length; i++) { x[i] = Date.parse(data[i].timestamp) / 1000; y[i] = data[i].value; }
  return { x, y };
}
