/** The model dashboard in the main area: card and schema, parity, the bench chart (log scale, intervals, SLO),
 * images per architecture, what was published and signed, sites and waves, the last drift report, the steps and
 * their run. Each empty section says what fills it. */
import { Widget } from '@lumino/widgets';

import { badge, driftBars, el, formatMs, logScale, plural, svg } from './dom';
import { EdgeModel } from './model';
import { IDeviceResult, IRun, Step } from './tokens';

function section(key: string, title: string, ...body: (Node | string)[]): HTMLElement {
  return el('section', { class: 'eb-section', 'data-eb': key }, el('h3', {}, title), ...body);
}

function hint(text: string): HTMLElement {
  return el('p', { class: 'eb-hint' }, text);
}

/** Predicted p99 interval per device on a log scale (so 0.05 ms and 20 ms both show), p50 as a dot, the SLO as a
 * dashed line. */
export function benchChart(devices: IDeviceResult[], sloMs: number | null): SVGSVGElement {
  const label = 120;
  const width = 300;
  const row = 22;
  const height = devices.length * row + 24;
  const values = devices.flatMap(d => [d.interval_p99_ms[0], d.interval_p99_ms[1], d.predicted_p50_ms]);
  const { x, ticks } = logScale(sloMs ? [...values, sloMs] : values, width);
  const chart = svg('svg', { class: 'eb-chart', width: label + width + 10, height, role: 'img',
                             'aria-label': 'predicted p99 latency per device, log scale' });
  for (const t of ticks) {
    chart.append(svg('line', { x1: label + x(t), x2: label + x(t), y1: 0, y2: height - 18, class: 'eb-grid' }),
                 svg('text', { x: label + x(t), y: height - 4, class: 'eb-axis', 'text-anchor': 'middle' }, formatMs(t)));
  }
  devices.forEach((d, i) => {
    const y = i * row + 12;
    const [lo, hi] = d.interval_p99_ms;
    chart.append(
      svg('text', { x: label - 6, y: y + 4, class: 'eb-axis', 'text-anchor': 'end' }, d.device),
      svg('rect', { x: label + x(lo), y: y - 5, width: Math.max(x(hi) - x(lo), 2), height: 10,
                    class: `eb-bar eb-bar-${d.verdict.replace(/ /g, '-')}` },
          svg('title', {}, `${d.device}: p99 ${formatMs(lo)}-${formatMs(hi)} ms, p50 ${formatMs(d.predicted_p50_ms)} ms, ${d.verdict}`)),
      svg('circle', { cx: label + x(d.predicted_p50_ms), cy: y, r: 3, class: 'eb-dot' })
    );
  });
  if (sloMs) {
    chart.append(svg('line', { x1: label + x(sloMs), x2: label + x(sloMs), y1: 0, y2: height - 18, class: 'eb-slo' },
                     svg('title', {}, `SLO p99 ${sloMs} ms`)));
  }
  return chart;
}

export class EdgeDashboard extends Widget {
  constructor(readonly model: EdgeModel) {
    super();
    this.id = 'edgebench-dashboard';
    this.title.label = 'Edge model';
    this.title.closable = true;
    this.addClass('eb-dashboard');
    this.node.tabIndex = -1;
    model.selectionChanged.connect(this.render, this);
    model.modelsChanged.connect(this.render, this);
    model.runsChanged.connect(this.renderRun, this);
    this.render();
  }

  private runBox = el('div', { class: 'eb-run', 'data-eb': 'run' });
  private picked = new Set<string>(['rpi4-1gb']); // the devices ticked, kept across renders
  private reloadedAfter: number | null = null;

  render(): void {
    const detail = this.model.detail;
    this.node.replaceChildren();
    if (!detail) {
      this.title.label = 'Edge model';
      this.node.append(hint('Select a model in the Edge panel to see its card, bench, images, sites and drift.'));
      return;
    }
    const { card, state } = detail;
    this.title.label = state.ref;
    const description = String(card.metadata?.description ?? card.metadata?.notes ?? '');
    const io = el('table', { class: 'eb-table' }, el('tr', {}, el('th', {}, ''), el('th', {}, 'name'), el('th', {}, 'type')));
    for (const [kind, specs] of [['in', card.inputs], ['out', card.outputs]] as const) {
      for (const t of specs) {
        io.append(el('tr', {}, el('td', {}, kind), el('td', { title: t.name }, t.name), el('td', {}, `${t.datatype} [${t.shape.join(', ')}]`)));
      }
    }
    this.node.append(
      el('h2', { 'data-eb': 'model-title', title: state.ref }, state.ref),
      el('p', {}, `${card.estimator}, ${(card.size_bytes / 1024).toFixed(1)} KiB, needs opsets ` +
         Object.entries(card.opset ?? {}).sort().map(([k, v]) => `${k} ${v}`).join(', ')),
      ...(description ? [el('p', { class: 'eb-description' }, description)] : []),
      el('div', { class: 'eb-grid2' },
         section('schema', 'Schema', io),
         section('parity', 'Parity', this.parity())),
      section('bench-section', 'Bench: predicted per device', this.bench()),
      this.steps(),
      el('div', { class: 'eb-grid2' },
         section('images', 'Images', this.images()),
         section('published', 'Published', this.published())),
      section('sites', 'Sites', ...this.sites()),
      section('drift', 'Drift', ...this.drift()),
      this.runBox
    );
    this.renderRun();
  }

  private parity(): HTMLElement {
    const parity = this.model.detail?.card.parity;
    if (!parity) {
      return hint('No parity report: the model was imported from ONNX without a reference model.');
    }
    const list = el('ul', { class: 'eb-plain' });
    for (const o of parity.outputs) {
      list.append(el('li', {}, o.label_agreement !== null && o.label_agreement !== undefined
        ? `${o.name}: labels agree on ${(o.label_agreement * 100).toFixed(2)}%`
        : `${o.name}: max abs diff ${o.max_abs_diff === null ? '-' : o.max_abs_diff.toPrecision(3)}`));
    }
    return el('div', {}, badge(parity.passed ? 'pass' : 'fail', parity.passed ? 'pass' : 'fail'),
              ` on ${plural(parity.rows, 'sample row')}` + (parity.held_out_rows ? ` and ${plural(parity.held_out_rows, 'held-out row')}` : ''),
              list);
  }

  private bench(): HTMLElement {
    const bench = this.model.detail?.bench;
    if (!bench?.devices?.length) {
      return el('p', { 'data-eb': 'bench', class: 'eb-hint' }, 'Not benched yet: pick devices below and Bench.');
    }
    const slo = bench.slo?.p99_ms ?? null;
    const against = [slo ? `p99 ${slo} ms` : null, bench.slo?.ram_mb ? `RAM ${bench.slo.ram_mb} MB` : null].filter(Boolean);
    const table = el('table', { 'data-eb': 'bench', class: 'eb-table' });
    table.append(el('tr', {}, el('th', {}, 'device'), el('th', {}, 'p99 ms'), el('th', {}, 'RAM MB'), el('th', {}, 'verdict'), el('th', {}, 'why')));
    for (const d of bench.devices) {
      table.append(el('tr', { 'data-eb-device': d.device },
                      el('td', { title: d.device }, d.device),
                      el('td', {}, `${formatMs(d.interval_p99_ms[0])}-${formatMs(d.interval_p99_ms[1])}`),
                      el('td', {}, `${d.ram_needed_mb.toFixed(0)}/${d.usable_ram_mb.toFixed(0)}`),
                      el('td', {}, badge(d.verdict, d.verdict)),
                      el('td', { class: 'eb-why' }, d.reasons.join('; ') || '-')));
    }
    return el('div', {}, hint(against.length ? `Against the SLO ${against.join(', ')}.` :
                              'No SLO was given: every verdict is "pass"; set p99 and RAM below.'),
              benchChart(bench.devices, slo), table);
  }

  private steps(): HTMLElement {
    const box = el('section', { class: 'eb-section', 'data-eb': 'steps' }, el('h3', {}, 'Steps'));
    const p99 = el('input', { type: 'number', min: '0', step: 'any', value: '20', 'data-eb': 'slo-p99', class: 'jp-mod-styled' });
    const ram = el('input', { type: 'number', min: '0', step: 'any', value: '256', 'data-eb': 'slo-ram', class: 'jp-mod-styled' });
    const destination = el('input', { type: 'text', placeholder: 'REGISTRY/REPO or oci-archive:FILE.tar', 'data-eb': 'destination', class: 'jp-mod-styled' });
    const signKey = el('input', { type: 'text', placeholder: 'keys/cosign.key (optional)', 'data-eb': 'sign-key', class: 'jp-mod-styled' });
    box.append(el('div', { class: 'eb-form' }, el('label', {}, 'SLO p99 ms'), p99, el('label', {}, 'SLO RAM MB'), ram,
                  el('label', {}, 'Publish to'), destination, el('label', {}, 'Sign with'), signKey));
    const devices = el('fieldset', { class: 'eb-devices' }, el('legend', {}, 'Devices'));
    for (const p of this.model.profiles) {
      const pick = el('input', { type: 'checkbox', value: p.name, 'data-eb-pick': p.name }) as HTMLInputElement;
      pick.checked = this.picked.has(p.name);
      pick.addEventListener('change', () => (pick.checked ? this.picked.add(p.name) : this.picked.delete(p.name)));
      devices.append(el('label', { title: p.title }, pick, p.name));
    }
    box.append(devices);
    const engine = this.model.status?.engine;
    const state = this.model.detail?.state;
    const actions = el('div', { class: 'eb-actions' });
    const reasons = el('p', { class: 'eb-hint', 'data-eb': 'disabled-why' });
    const why: string[] = [];
    const button = (step: Step, enabled: boolean, reason: string, params: () => Record<string, unknown>) => {
      const b = el('button', { class: 'jp-Button jp-mod-styled jp-mod-accept', 'data-eb-step': step }, step[0].toUpperCase() + step.slice(1));
      b.disabled = !enabled;
      b.title = enabled ? `${step} ${state?.ref ?? ''}` : reason;
      if (!enabled && !why.includes(reason)) {
        why.push(reason);
      }
      b.addEventListener('click', () => void this.model.startRun(step, params()));
      actions.append(b);
    };
    const noEngine = engine && !engine.available ? 'Build, test and publish need a Docker Engine' : '';
    const picked = () => Array.from(devices.querySelectorAll('input:checked')).map(i => (i as HTMLInputElement).value);
    button('bench', true, '', () => ({
      devices: picked(),
      slo_p99_ms: Number((p99 as HTMLInputElement).value) || null,
      slo_ram_mb: Number((ram as HTMLInputElement).value) || null,
      seconds: 1
    }));
    const images = Object.values(state?.images ?? {});
    button('build', !noEngine, noEngine, () => ({ devices: picked() }));
    button('test', !noEngine && images.length > 0, noEngine || 'Test needs a built image: Build first', () => ({}));
    button('publish', !noEngine && images.some(i => i.test?.status === 'passed'), noEngine || 'Publish needs a tested image: Test first', () => ({
      destination: (destination as HTMLInputElement).value,
      ...((signKey as HTMLInputElement).value ? { sign: (signKey as HTMLInputElement).value } : {})
    }));
    reasons.textContent = why.join('. ');
    box.append(actions, reasons);
    return box;
  }

  private images(): HTMLElement {
    const images = Object.entries(this.model.detail?.state.images ?? {});
    if (!images.length) {
      return hint('No image yet: Build makes one per architecture of the devices picked.');
    }
    const list = el('ul', { class: 'eb-plain' });
    for (const [platform, image] of images) {
      const test = image.test;
      list.append(el('li', { 'data-eb-image': platform }, `${platform}: ${(image.size_bytes / 2 ** 20).toFixed(0)} MiB `,
                     test ? badge(`test ${test.status}${test.emulated ? ' (emulated)' : ''}`, test.status) : badge('not tested')));
    }
    return list;
  }

  private published(): HTMLElement {
    const published = this.model.detail?.state.published;
    if (!published) {
      return hint('Not published: Publish pushes the tested images to a registry or an archive.');
    }
    return el('div', {}, el('p', { class: 'eb-digest', title: published.digest }, published.digest),
              el('p', {}, published.signed ? badge(`signed, verified: ${published.attestations.join(', ')}`, 'pass') : badge('unsigned')),
              el('p', { class: 'eb-hint' }, published.references.join(', ')));
  }

  /** Sites and waves (when the server names a sites file and a GitOps repository), with Promote and Roll back. */
  private sites(): HTMLElement[] {
    const deploy = this.model.deploy;
    if (!deploy?.configured) {
      return [hint(deploy?.message ?? 'Sites appear when the server knows a sites file and a GitOps repository.')];
    }
    const table = el('table', { class: 'eb-table' });
    table.append(el('tr', {}, el('th', {}, 'site'), el('th', {}, 'wave'), el('th', {}, 'runs'), el('th', {}, 'answer')));
    for (const s of deploy.sites ?? []) {
      const answer = el('td', { title: s.answer }, s.healthy === null ? s.answer : s.healthy ? 'healthy' : 'not healthy');
      table.append(el('tr', { 'data-eb-site': s.site }, el('td', { title: `${s.profile}, ${s.target}` }, s.site),
                      el('td', {}, String(s.wave)), el('td', { title: s.desired ?? '' }, s.desired ? s.desired.slice(7, 19) : '-'), answer));
    }
    const key = el('input', { type: 'text', placeholder: 'keys/cosign.pub', 'data-eb': 'promote-key', class: 'jp-mod-styled' });
    const actions = el('div', { class: 'eb-actions' }, el('label', {}, 'Public key'), key);
    for (const wave of deploy.waves ?? []) {
      for (const step of ['promote', 'rollback'] as const) {
        const b = el('button', { class: 'jp-Button jp-mod-styled', 'data-eb-step': step, 'data-eb-wave': String(wave) },
                     `${step === 'promote' ? 'Promote' : 'Roll back'} wave ${wave}`);
        b.addEventListener('click', () => void this.model.startRun(step, {
          wave, ...((key as HTMLInputElement).value ? { key: (key as HTMLInputElement).value } : {})
        }));
        actions.append(b);
      }
    }
    return [table, actions];
  }

  /** The last drift report: verdict, the most shifted features with their bars, and Check drift. */
  private drift(): HTMLElement[] {
    const report = this.model.detail?.drift;
    const parts: HTMLElement[] = [];
    if (report) {
      const last = report.windows[report.windows.length - 1];
      parts.push(el('p', { 'data-eb': 'drift-summary' },
                    badge(report.drift ? 'drift' : last.judged ? 'no drift' : 'no verdict', report.drift ? 'fail' : last.judged ? 'pass' : 'uncertain'),
                    ` ${report.summary}`));
      const table = el('table', { class: 'eb-table' });
      table.append(el('tr', {}, el('th', {}, 'feature'), el('th', {}, 'PSI'), el('th', {}, 'out of range'), el('th', {}, 'reference / window')));
      for (const f of [...last.features].sort((a, b) => b.psi - a.psi).slice(0, 8)) {
        table.append(el('tr', { 'data-eb-feature': f.name, class: f.drifted ? 'eb-drifted' : '' },
                        el('td', { title: `p (Holm) ${f.p_adjusted.toPrecision(2)}` }, f.name), el('td', {}, f.psi.toFixed(3)),
                        el('td', {}, `${(f.out_of_range * 100).toFixed(1)}%`), el('td', {}, driftBars(f))));
      }
      parts.push(table, hint(`${plural(last.rows, 'row')} in the last of ${plural(report.windows.length, 'window')} of ${report.window_seconds} s from ${report.source}`));
    } else {
      parts.push(hint('No drift report yet: Check drift reads the sites\' counts (Prometheus, /metrics or a spool).'));
    }
    const source = el('input', { type: 'text', placeholder: this.model.status?.monitor_source ?? 'http://prometheus:9090, .../metrics or a spool', 'data-eb': 'drift-source', class: 'jp-mod-styled' });
    const window = el('input', { type: 'text', value: '1h', 'data-eb': 'drift-window', class: 'jp-mod-styled' });
    const check = el('button', { class: 'jp-Button jp-mod-styled jp-mod-accept', 'data-eb-step': 'monitor' }, 'Check drift');
    check.addEventListener('click', () => void this.model.startRun('monitor', {
      window: (window as HTMLInputElement).value,
      ...((source as HTMLInputElement).value ? { source: (source as HTMLInputElement).value } : {})
    }));
    parts.push(el('div', { class: 'eb-form' }, el('label', {}, 'Counts from'), source, el('label', {}, 'Window'), window),
               el('div', { class: 'eb-actions' }, check));
    return parts;
  }

  private renderRun(): void {
    const name = this.model.selected;
    this.runBox.replaceChildren();
    const run: IRun | undefined = name ? this.model.runFor(name) : undefined;
    if (!run) {
      return;
    }
    const running = run.status === 'running';
    const text = running ? `${run.step}: ${run.progress.message}` : `${run.step} ${run.status}`;
    this.runBox.append(el('div', { 'data-eb': 'run-status', 'data-eb-status': run.status }, text));
    if (running) {
      this.runBox.append(el('progress', { max: String(Math.max(run.progress.total, 1)), value: String(run.progress.done) }));
      const cancel = el('button', { class: 'jp-Button jp-mod-styled jp-mod-warn', 'data-eb': 'cancel' }, 'Cancel');
      cancel.addEventListener('click', () => void this.model.cancelRun(run.id));
      this.runBox.append(cancel);
    }
    if (run.error) {
      this.runBox.append(el('div', { class: 'eb-error', 'data-eb': 'run-error' }, run.error));
    }
    const log = el('details', {}, el('summary', {}, 'Log'), el('pre', { class: 'eb-log' }, run.log.slice(-40).join('\n')));
    (log as HTMLDetailsElement).open = true;
    this.runBox.append(log);
    if (!running && run.id !== this.reloadedAfter) {
      this.reloadedAfter = run.id; // once per finished run: show its bench table, image, verdicts
      void this.model.select(name);
    }
  }
}
