// Loss curves drawn on a canvas: one line per loss term, step on x, log10 of the loss on y.
const TOTAL = "#f2a541"; // the total loss: the page's accent colour, drawn thicker and listed first
const COLOURS = ["#4fc3f7", "#9ccc65", "#ef5350", "#ba68c8", "#ffee58", "#26a69a", "#8d6e63", "#90a4ae"];
const PAD = { left: 52, right: 12, top: 12, bottom: 28 };

export class LossChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.series = new Map(); // term -> [[step, loss], ...]
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  clear() {
    this.series.clear();
    this.draw();
  }

  /** Add one step's losses ({total: 0.1, l1: 0.05, ...}); a step seen before is ignored. */
  add(step, losses) {
    for (const [term, value] of Object.entries(losses || {})) {
      if (!Number.isFinite(value) || value <= 0) continue;
      const points = this.series.get(term) || [];
      if (points.length && points[points.length - 1][0] >= step) continue;
      points.push([step, value]);
      this.series.set(term, points);
    }
    this.draw();
  }

  get points() {
    let n = 0;
    for (const points of this.series.values()) n += points.length;
    return n;
  }

  draw() {
    const { canvas } = this;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || canvas.width;
    const height = canvas.clientHeight || canvas.height;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = g.strokeStyle = "#8a8f98";
    const all = [...this.series.values()].flat();
    if (!all.length) {
      g.fillText("waiting for the first training step", PAD.left, height / 2);
      return;
    }
    const steps = all.map((p) => p[0]);
    const logs = all.map((p) => Math.log10(p[1]));
    const x0 = Math.min(...steps), x1 = Math.max(...steps, x0 + 1);
    let y0 = Math.floor(Math.min(...logs)), y1 = Math.ceil(Math.max(...logs));
    if (y1 === y0) y1 += 1;
    const plotW = width - PAD.left - PAD.right, plotH = height - PAD.top - PAD.bottom;
    const x = (step) => PAD.left + ((step - x0) / (x1 - x0)) * plotW;
    const y = (loss) => PAD.top + (1 - (Math.log10(loss) - y0) / (y1 - y0)) * plotH;

    g.strokeRect(PAD.left, PAD.top, plotW, plotH);
    g.textAlign = "right";
    for (let e = y0; e <= y1; e++) {
      const yy = y(10 ** e);
      g.fillText(`1e${e}`, PAD.left - 4, yy + 4);
      g.globalAlpha = 0.25;
      g.beginPath(); g.moveTo(PAD.left, yy); g.lineTo(PAD.left + plotW, yy); g.stroke();
      g.globalAlpha = 1;
    }
    g.textAlign = "center";
    g.fillText(String(x0), x(x0), height - 10);
    g.fillText(`step ${x1}`, x(x1) - 20, height - 10);

    let i = 0;
    g.textAlign = "left";
    const terms = [...this.series.keys()].sort((a, b) => (b === "total") - (a === "total") || a.localeCompare(b));
    for (const term of terms) {
      const points = this.series.get(term);
      const colour = term === "total" ? TOTAL : COLOURS[(i - (this.series.has("total") ? 1 : 0)) % COLOURS.length];
      g.strokeStyle = g.fillStyle = colour;
      g.lineWidth = term === "total" ? 2 : 1.25;
      g.beginPath();
      points.forEach(([step, loss], k) => (k ? g.lineTo(x(step), y(loss)) : g.moveTo(x(step), y(loss))));
      if (points.length === 1) g.arc(x(points[0][0]), y(points[0][1]), 2, 0, 2 * Math.PI);
      g.stroke();
      const last = points[points.length - 1][1];
      g.fillText(`${term} ${last.toPrecision(3)}`, PAD.left + 8, PAD.top + 14 + 14 * i);
      i += 1;
    }
    g.lineWidth = 1;
  }
}
