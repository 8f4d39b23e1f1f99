// The rendered shot beside its plate: a frame scrubber and a before/after split, fed by object URLs
// of frames fetched with the key (cached, so scrubbing back and forth fetches each frame once).
import { blob } from "./api.js";

const SHOWABLE = /\.(png|jpe?g|webp|gif|bmp)$/i;

/** The frame number in a name: the last run of digits before the extension ("sh010.1004.png" -> 1004). */
export function frameNumber(name) {
  const match = /(\d+)(?!.*\d)/.exec(name.replace(/\.[^.]+$/, ""));
  return match ? Number(match[1]) : null;
}

export const showable = (name) => SHOWABLE.test(name);

export class Viewer {
  constructor(root) {
    this.$ = (id) => root.querySelector(`#${id}`);
    this.frames = []; // [{name, after: url, before: url or null}]
    this.urls = new Map();
    this.$("split").addEventListener("input", () => this.split(this.$("split").value));
    this.$("frame").addEventListener("input", () => this.show(Number(this.$("frame").value)));
    const compare = this.$("compare");
    const drag = (e) => {
      const box = compare.getBoundingClientRect();
      const percent = Math.round(Math.min(Math.max((e.clientX - box.left) / box.width, 0), 1) * 100);
      this.$("split").value = percent;
      this.split(percent);
    };
    compare.addEventListener("pointerdown", (e) => { compare.setPointerCapture(e.pointerId); drag(e); });
    compare.addEventListener("pointermove", (e) => { if (compare.hasPointerCapture(e.pointerId)) drag(e); });
    this.split(50);
  }

  /** frames: [{name, after, before}], each a URL fetched with the key (before: null when there is no plate). */
  load(frames) {
    for (const url of this.urls.values()) URL.revokeObjectURL(url);
    this.urls.clear();
    this.frames = frames;
    const slider = this.$("frame");
    slider.max = Math.max(frames.length - 1, 0);
    slider.value = 0;
    return frames.length ? this.show(0) : Promise.resolve();
  }

  split(percent) {
    this.$("after").style.clipPath = `inset(0 0 0 ${percent}%)`;
    this.$("divider").style.left = `${percent}%`;
  }

  async url(source) {
    if (!this.urls.has(source)) {
      this.urls.set(source, URL.createObjectURL(await blob(source)));
    }
    return this.urls.get(source);
  }

  async show(index) {
    const frame = this.frames[index];
    this.$("frame-label").textContent = `Frame ${index + 1} / ${this.frames.length} · ${frame.name}`;
    const [after, before] = await Promise.all([this.url(frame.after), frame.before ? this.url(frame.before) : null]);
    if (Number(this.$("frame").value) !== index) return; // the user scrubbed on meanwhile
    this.$("after").src = after;
    this.$("before").hidden = !before;
    if (before) this.$("before").src = before;
  }
}
