/** The "Edge" side panel: the model list, the selected model's view, and its run. Plain DOM, text only
 * through textContent, so names and messages from the store can never inject markup. */
import { Widget } from '@lumino/widgets';

import { EdgeModel } from './model';
import { IFeatureDrift, IModelState, IRun, Step } from './tokens';

const EMPTY_CODE = 'import edgebench as eb\neb.export_model(model, X_sample, name="digits-rf")';

function el<K extends keyof HTMLElementTagNameMap>(
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

function badge(text: string, verdict?: string | null): HTMLElement {
  const kind =
    verdict === 'pass' || verdict === 'passed'
      ? 'eb-pass'
      : verdict === 'fail' || verdict === 'failed' || verdict === 'does not fit'
        ? 'eb-fail'
        : verdict === 'uncertain'
          ? 'eb-warn'
          : '';
  return el('span', { class: `eb-badge ${kind}`.trim() }, text);
}

/** Reference (brand color) and window (warn color) shares per bin, as bars: plain elements, no markup. */
function bars(f: IFeatureDrift): HTMLElement {
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

export class EdgePanel extends Widget {
  constructor(readonly model: EdgeModel) {
    super();
    this.id = 'edgebench-panel';
    this.title.caption = 'Edge: models, devices, images';
    this.addClass('eb-panel');
    this.node.append(this.header, this.engineNote, this.errorNote, this.list, this.view);
    this.header.textContent = 'Edge models';
    model.modelsChanged.connect(this.renderList, this);
    model.selectionChanged.connect(this.renderView, this);
    model.runsChanged.connect(this.renderRun, this);
    model.errorChanged.connect((_, message) => {
      this.errorNote.textContent = message ?? '';
    });
    this.renderList();
    this.renderView();
  }

  private header = el('h2');
  private engineNote = el('div', { class: 'eb-engine' });
  private errorNote = el('div', { class: 'eb-error', 'data-eb': 'error' });
  private list = el('div');
  private view = el('div', { class: 'eb-view' });
  private runBox = el('div', { class: 'eb-run', 'data-eb': 'run' });
  private reloadedAfter: number | null = null;

  private renderList(): void {
    const { status, models } = this.model;
    if (status) {
      this.engineNote.textContent = status.engine.available
        ? `Docker Engine ready. Store: ${status.store}`
        : `Build, test and publish are unavailable: ${status.engine.message}`;
      this.engineNote.classList.toggle('eb-off', !status.engine.available);
    }
    this.list.replaceChildren();
    if (!models.length) {
      this.list.append(
        el('div', { class: 'eb-empty', 'data-eb': 'empty' }, el('p', {}, 'No models yet. Export one from a notebook:'),
           el('code', {}, EMPTY_CODE))
      );
      return;
    }
    const ul = el('ul', { class: 'eb-models' });
    for (const m of models) {
      const row = el('li', { class: 'eb-model', 'data-eb-model': m.name, title: m.ref });
      row.classList.toggle('eb-selected', m.name === this.model.selected);
      row.append(el('span', { class: 'eb-model-name' }, m.ref), this.badges(m));
      row.addEventListener('click', () => void this.model.select(m.name));
      ul.append(row);
    }
    this.list.append(ul);
  }

  private badges(m: IModelState): HTMLElement {
    const box = el('div', { class: 'eb-badges' });
    box.append(badge(`parity ${m.parity ?? 'n/a'}`, m.parity));
    for (const [device, verdict] of Object.entries(m.bench?.devices ?? {})) {
      box.append(badge(`${device}: ${verdict}`, verdict));
    }
    for (const [platform, image] of Object.entries(m.images ?? {})) {
      const arch = platform.replace('linux/', '');
      const test = image.test;
      box.append(
        test
          ? badge(`${arch} image test ${test.status}${test.emulated ? ' (emulated)' : ''}`, test.status)
          : badge(`${arch} image built`, 'pass')
      );
    }
    if (m.drift) {
      box.append(badge(m.drift.alarms.length ? `drift: ${m.drift.alarms.join(', ')}` : 'no drift',
                       m.drift.alarms.length ? 'fail' : 'pass'));
    }
    if (m.published) {
      box.append(badge(`published ${m.published.digest?.slice(0, 19) ?? ''}`, 'pass'));
      if (m.published.signed) {
        box.append(badge(`signed, verified (${m.published.attestations.join(', ')})`, 'pass'));
      }
    }
    return box;
  }

  private renderView(): void {
    this.renderList();
    this.view.replaceChildren();
    const detail = this.model.detail;
    if (!detail) {
      return;
    }
    const { card, state } = detail;
    const description = String(card.metadata?.description ?? card.metadata?.notes ?? '');
    this.view.append(
      el('h2', { 'data-eb': 'model-title', title: state.ref }, state.ref),
      el('p', {}, `${card.estimator}, ${(card.size_bytes / 1024).toFixed(1)} KiB, parity ${state.parity ?? 'n/a'}`)
    );
    if (description) {
      this.view.append(el('p', { class: 'eb-description' }, description));
    }
    const io = el('table');
    for (const [kind, specs] of [['in', card.inputs], ['out', card.outputs]] as const) {
      for (const t of specs) {
        io.append(el('tr', {}, el('td', {}, kind), el('td', {}, t.name), el('td', {}, `${t.datatype} [${t.shape.join(', ')}]`)));
      }
    }
    this.view.append(io, this.benchTable(), this.form(), this.sites(), this.drift(), this.runBox);
    this.renderRun();
  }

  private benchTable(): HTMLElement {
    const bench = this.model.detail?.bench;
    if (!bench?.devices?.length) {
      return el('p', { 'data-eb': 'bench' }, 'Not benched yet.');
    }
    const table = el('table', { 'data-eb': 'bench' });
    table.append(el('tr', {}, el('th', {}, 'device'), el('th', {}, 'p99 ms'), el('th', {}, 'RAM MB'), el('th', {}, 'verdict')));
    for (const d of bench.devices) {
      const verdict = el('td', {}, badge(d.verdict, d.verdict));
      verdict.title = d.reasons.join('; ');
      table.append(
        el(
          'tr',
          { 'data-eb-device': d.device },
          el('td', { title: d.device }, d.device),
          el('td', {}, `${d.interval_p99_ms[0].toFixed(3)}-${d.interval_p99_ms[1].toFixed(3)}`),
          el('td', {}, `${d.ram_needed_mb.toFixed(0)}/${d.usable_ram_mb.toFixed(0)}`),
          verdict
        )
      );
    }
    return table;
  }

  private form(): HTMLElement {
    const box = el('div');
    const p99 = el('input', { type: 'number', min: '0', step: 'any', value: '20', 'data-eb': 'slo-p99' });
    const ram = el('input', { type: 'number', min: '0', step: 'any', value: '256', 'data-eb': 'slo-ram' });
    const destination = el('input', { type: 'text', placeholder: 'REGISTRY/REPO or oci-archive:FILE.tar', 'data-eb': 'destination' });
    const signKey = el('input', { type: 'text', placeholder: 'keys/cosign.key (optional)', 'data-eb': 'sign-key' });
    box.append(el('div', { class: 'eb-form' }, 'SLO p99 ms', p99, 'SLO RAM MB', ram, 'Publish to', destination, 'Sign with', signKey));
    const devices = el('div', { class: 'eb-devices' });
    for (const p of this.model.profiles) {
      const box = el('input', { type: 'checkbox', value: p.name, 'data-eb-pick': p.name });
      (box as HTMLInputElement).checked = p.name === 'rpi4-1gb';
      devices.append(el('label', { title: p.title }, box, p.name));
    }
    box.append(devices);
    const engine = this.model.status?.engine;
    const state = this.model.detail?.state;
    const actions = el('div', { class: 'eb-actions' });
    const button = (step: Step, enabled: boolean, why: string, params: () => Record<string, unknown>) => {
      const b = el('button', { class: 'jp-mod-styled', 'data-eb-step': step }, step[0].toUpperCase() + step.slice(1));
      b.disabled = !enabled;
      b.title = enabled ? `${step} ${state?.ref ?? ''}` : why;
      b.addEventListener('click', () => void this.model.startRun(step, params()));
      actions.append(b);
    };
    const noEngine = engine && !engine.available ? engine.message : '';
    const picked = () => Array.from(devices.querySelectorAll('input:checked')).map(i => (i as HTMLInputElement).value);
    button('bench', true, '', () => ({
      devices: picked(),
      slo_p99_ms: Number((p99 as HTMLInputElement).value) || null,
      slo_ram_mb: Number((ram as HTMLInputElement).value) || null,
      seconds: 1
    }));
    const images = Object.values(state?.images ?? {});
    // build: one image per architecture of the picked devices; test and publish: every image built
    button('build', !noEngine, noEngine, () => ({ devices: picked() }));
    button('test', !noEngine && images.length > 0, noEngine || 'build the image first', () => ({}));
    button('publish', !noEngine && images.some(i => i.test?.status === 'passed'), noEngine || 'test the image first', () => ({
      destination: (destination as HTMLInputElement).value,
      ...((signKey as HTMLInputElement).value ? { sign: (signKey as HTMLInputElement).value } : {})
    }));
    box.append(actions);
    return box;
  }

  /** Sites and waves (when the server names a sites file and a GitOps repository), with Promote and Rollback. */
  private sites(): HTMLElement {
    const deploy = this.model.deploy;
    const box = el('div', { class: 'eb-sites', 'data-eb': 'sites' });
    if (!deploy?.configured) {
      box.append(el('p', { class: 'eb-hint' }, deploy?.message ?? ''));
      return box;
    }
    const table = el('table');
    table.append(el('tr', {}, el('th', {}, 'site'), el('th', {}, 'wave'), el('th', {}, 'runs'), el('th', {}, 'answer')));
    for (const s of deploy.sites ?? []) {
      const answer = el('td', { title: s.answer }, s.healthy === null ? s.answer : s.healthy ? 'healthy' : 'not healthy');
      table.append(
        el('tr', { 'data-eb-site': s.site }, el('td', { title: `${s.profile}, ${s.target}` }, s.site), el('td', {}, String(s.wave)),
           el('td', { title: s.desired ?? '' }, s.desired ? s.desired.slice(7, 19) : '-'), answer)
      );
    }
    box.append(el('h3', {}, 'Sites'), table);
    const key = el('input', { type: 'text', placeholder: 'keys/cosign.pub', 'data-eb': 'promote-key' });
    const actions = el('div', { class: 'eb-actions' }, 'Public key', key);
    for (const wave of deploy.waves ?? []) {
      for (const step of ['promote', 'rollback'] as const) {
        const b = el('button', { class: 'jp-mod-styled', 'data-eb-step': step, 'data-eb-wave': String(wave) },
                     `${step === 'promote' ? 'Promote' : 'Roll back'} wave ${wave}`);
        b.addEventListener('click', () => void this.model.startRun(step, {
          wave, ...((key as HTMLInputElement).value ? { key: (key as HTMLInputElement).value } : {})
        }));
        actions.append(b);
      }
    }
    box.append(actions);
    return box;
  }

  /** The last drift report: the verdict, the most shifted features of its last window with reference vs window
   * shares per bin, and Check drift (a monitor run). */
  private drift(): HTMLElement {
    const report = this.model.detail?.drift;
    const box = el('div', { class: 'eb-drift', 'data-eb': 'drift' }, el('h3', {}, 'Drift'));
    if (report) {
      const last = report.windows[report.windows.length - 1];
      box.append(el('p', { 'data-eb': 'drift-summary' }, badge(report.drift ? 'drift' : last.judged ? 'no drift' : 'no verdict',
                                                                report.drift ? 'fail' : last.judged ? 'pass' : 'uncertain'),
                    ` ${report.summary}`));
      const table = el('table');
      table.append(el('tr', {}, el('th', {}, 'feature'), el('th', {}, 'PSI'), el('th', {}, 'out of range'), el('th', {}, 'bins')));
      for (const f of [...last.features].sort((a, b) => b.psi - a.psi).slice(0, 8)) {
        table.append(el('tr', { 'data-eb-feature': f.name, class: f.drifted ? 'eb-drifted' : '' },
                        el('td', { title: `p (Holm) ${f.p_adjusted.toPrecision(2)}` }, f.name), el('td', {}, f.psi.toFixed(3)),
                        el('td', {}, `${(f.out_of_range * 100).toFixed(1)}%`), el('td', {}, bars(f))));
      }
      box.append(table, el('p', { class: 'eb-hint' }, `${last.rows} rows in the last of ${report.windows.length} window(s) of ${report.window_seconds} s from ${report.source}`));
    } else {
      box.append(el('p', { class: 'eb-hint' }, 'No drift report yet.'));
    }
    const source = el('input', { type: 'text', placeholder: this.model.status?.monitor_source ?? 'http://prometheus:9090, .../metrics or a spool', 'data-eb': 'drift-source' });
    const window = el('input', { type: 'text', value: '1h', 'data-eb': 'drift-window' });
    const check = el('button', { class: 'jp-mod-styled', 'data-eb-step': 'monitor' }, 'Check drift');
    check.addEventListener('click', () => void this.model.startRun('monitor', {
      window: (window as HTMLInputElement).value,
      ...((source as HTMLInputElement).value ? { source: (source as HTMLInputElement).value } : {})
    }));
    box.append(el('div', { class: 'eb-form' }, 'Counts from', source, 'Window', window), el('div', { class: 'eb-actions' }, check));
    return box;
  }

  private renderRun(): void {
    const name = this.model.selected;
    this.runBox.replaceChildren();
    const run: IRun | undefined = name ? this.model.runFor(name) : undefined;
    if (!run) {
      return;
    }
    const progress = el('progress', { max: String(Math.max(run.progress.total, 1)), value: String(run.progress.done) });
    this.runBox.append(
      el('div', { 'data-eb': 'run-status', 'data-eb-status': run.status }, `${run.step} ${run.status}: ${run.progress.message}`),
      progress
    );
    if (run.status === 'running') {
      const cancel = el('button', { class: 'jp-mod-styled', 'data-eb': 'cancel' }, 'Cancel');
      cancel.addEventListener('click', () => void this.model.cancelRun(run.id));
      this.runBox.append(cancel);
    }
    if (run.error) {
      this.runBox.append(el('div', { class: 'eb-error', 'data-eb': 'run-error' }, run.error));
    }
    this.runBox.append(el('pre', { class: 'eb-log' }, run.log.slice(-40).join('\n')));
    if (run.status !== 'running' && run.id !== this.reloadedAfter) {
      this.reloadedAfter = run.id;  // once per finished run: show its bench table, image, verdicts
      void this.model.select(name);
    }
  }

  dispose(): void {
    this.model.dispose();
    super.dispose();
  }
}
