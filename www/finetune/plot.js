// The live loss plot: training loss per step (red) and validation loss at
// its steps (blue) on one canvas, axes scaled to the data.

export function drawLoss(canvas, history) {
  const ctx = canvas.getContext('2d');
  const { width: w, height: h } = canvas;
  const pad = { l: 48, r: 12, t: 10, b: 24 };
  ctx.clearRect(0, 0, w, h);
  const train = history.map((s) => [s.step, s.loss]);
  const val = history.filter((s) => Number.isFinite(s.valLoss)).map((s) => [s.step, s.valLoss]);
  const all = train.concat(val).map((p) => p[1]).filter(Number.isFinite);
  if (!all.length) return;
  const lo = Math.min(...all), hi = Math.max(...all);
  const span = hi - lo || 1;
  const steps = Math.max(1, ...train.map((p) => p[0]));
  const x = (s) => pad.l + (s / steps) * (w - pad.l - pad.r);
  const y = (v) => pad.t + (1 - (v - lo) / span) * (h - pad.t - pad.b);
  ctx.strokeStyle = '#999';
  ctx.fillStyle = '#555';
  ctx.font = '11px sans-serif';
  ctx.beginPath();
  ctx.moveTo(pad.l, pad.t);
  ctx.lineTo(pad.l, h - pad.b);
  ctx.lineTo(w - pad.r, h - pad.b);
  ctx.stroke();
  for (const v of [lo, (lo + hi) / 2, hi]) ctx.fillText(v.toFixed(2), 4, y(v) + 4);
  ctx.fillText('step', w - pad.r - 24, h - 6);
  ctx.fillText(String(steps), x(steps) - 10, h - 8);
  const line = (pts, color, dots) => {
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    pts.forEach(([s, v], i) => (i ? ctx.lineTo(x(s), y(v)) : ctx.moveTo(x(s), y(v))));
    ctx.stroke();
    if (dots) for (const [s, v] of pts) ctx.fillRect(x(s) - 2, y(v) - 2, 4, 4);
  };
  line(train, '#c0392b', false);
  line(val, '#2471a3', true);
}
