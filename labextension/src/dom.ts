/** DOM helpers shared by the side panel and the dashboard: text only through textContent (names and messages from
 * the store can never inject markup), verdict badges, and charts drawn as SVG elements colored by theme classes. */
import { IFeatureDrift } from './tokens';

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child);
  }
  return node;
}

export function verdictClass(verdict?: string | null): string {
  if (verdict === 'pass' || verdict === 'passed') {
    return 'eb-pass';
  }
  if (verdict === 'fail' || verdict === 'failed' || verdict === 'does not fit') {
    return 'eb-fail';
  }
  return verdict === 'uncertain' ? 'eb-warn' : '';
}

export function badge(text: string, verdict?: string | null, title = ''): HTMLElement {
  const node = el('span', { class: `eb-badge ${verdictClass(verdict)}`.trim() }, text);
  if (title) {
    node.title = title;
  }
  return node;
}

const SVG = 'http://www.w3.org/2000/svg';

export function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number> = {},
  ...children: (Node | string)[]
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    node.setAttribute(key, String(value));
  }
  for (const child of children) {
    node.append(child);
  }
  return node;
}

/** Positions on a log10 axis covering every value (and the SLO), with ticks at 1, 2, 5 x 10^k. */
export function logScale(values: number[], width: number): { x: (v: number) => number; ticks: number[] } {
  const positive = values.filter(v => v > 0 && Number.isFinite(v));
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...positive, 1))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...positive, lo * 10))));
  const span = Math.log10(hi) - Math.log10(lo);
  const ticks: number[] = [];
  const steps = span <= 2 ? [1, 2, 5] : [1]; // wider ranges: a tick per decade, so labels never overlap
  for (let decade = lo; decade < hi * 1.0001; decade *= 10) {
    for (const m of steps) {
      if (decade * m <= hi * 1.0001) {
        ticks.push(decade * m);
      }
    }
  }
  return { x: (v: number) => ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / span) * width, ticks };
}

export function formatMs(ms: number): string {
  return String(Number(ms >= 10 ? ms.toFixed(0) : ms >= 1 ? ms.toFixed(1) : ms >= 0.01 ? ms.toFixed(2) : ms.toPrecision(1)));
}

/** Reference (brand color) and window (warn color) shares per bin, as bars. */
export function driftBars(f: IFeatureDrift): HTMLElement {
  const box = el('div', { class: 'eb-bars', title: `${f.name}: reference and window shares per bin` });
  const top = Math.max(...f.reference, ...f.window, 1e-9);
  f.reference.forEach((r, i) => {
    for (const [value, kind] of [[r, 'eb-ref'], [f.window[i] ?? 0, 'eb-win']] as const) {
      const bar = el('span', { class: kind, title: `bin ${i}: ${(value * 100).toFixed(1)}%` });
      bar.style.height = `${Math.round((value / top) * 100)}%`;
      box.append(bar);
    }
  });
  return box;
}

/** "1 device", "3 devices". */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
