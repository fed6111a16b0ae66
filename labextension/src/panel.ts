/** The "Edge" side panel: the index of stored models. One line per model with its state badges, a filter, a
 * toolbar, keyboard reachable (arrows, Enter); a model opens in the dashboard in the main area. */
import { Widget } from '@lumino/widgets';

import { badge, el } from './dom';
import { EdgeModel } from './model';
import { IModelState } from './tokens';

const EMPTY_CODE = 'import edgebench as eb\neb.export_model(model, X_sample, name="digits-rf")';

export class EdgePanel extends Widget {
  constructor(readonly model: EdgeModel, private readonly open: (name: string) => void) {
    super();
    this.id = 'edgebench-panel';
    this.title.caption = 'Edge: models, devices, images';
    this.addClass('eb-panel');
    const refresh = el('button', { class: 'jp-Button jp-mod-styled eb-tool', title: 'Refresh', 'data-eb': 'refresh' }, 'Refresh');
    refresh.addEventListener('click', () => void this.model.refresh());
    const openButton = el('button', { class: 'jp-Button jp-mod-styled jp-mod-accept eb-tool', 'data-eb': 'open' }, 'Open');
    openButton.addEventListener('click', () => this.model.selected && this.open(this.model.selected));
    this.filter.addEventListener('input', () => this.renderList());
    this.node.append(el('div', { class: 'eb-toolbar' }, el('h2', {}, 'Models'), refresh, openButton),
                     this.engineNote, this.errorNote, this.filter, this.list);
    model.modelsChanged.connect(this.renderList, this);
    model.selectionChanged.connect(this.renderList, this);
    model.runsChanged.connect(this.renderList, this);
    model.errorChanged.connect((_, message) => {
      this.errorNote.textContent = message ?? '';
    });
    this.list.addEventListener('keydown', event => this.onKey(event));
    this.renderList();
  }

  private engineNote = el('div', { class: 'eb-engine', 'data-eb': 'engine' });
  private errorNote = el('div', { class: 'eb-error', 'data-eb': 'error', role: 'alert' });
  private filter = el('input', { type: 'search', placeholder: 'Filter models', 'aria-label': 'Filter models', 'data-eb': 'filter', class: 'jp-mod-styled' });
  private list = el('ul', { class: 'eb-models', role: 'listbox', 'aria-label': 'Stored models' });

  private renderEngine(): void {
    const status = this.model.status;
    this.engineNote.replaceChildren();
    if (!status) {
      return;
    }
    if (status.engine.available) {
      this.engineNote.append(el('span', { title: status.store }, 'Docker Engine ready'));
      return;
    }
    // one line; the engine's own message on demand
    this.engineNote.append(el('details', { class: 'eb-off' }, el('summary', {}, 'No Docker Engine: build, test and publish are off'),
                              el('p', {}, status.engine.message)));
  }

  renderList(): void {
    this.renderEngine();
    const { models } = this.model;
    this.list.replaceChildren();
    if (!models.length) {
      this.list.append(el('li', { class: 'eb-empty', 'data-eb': 'empty' }, el('p', {}, 'No models yet. Export one from a notebook:'),
                          el('code', {}, EMPTY_CODE)));
      return;
    }
    const text = (this.filter as HTMLInputElement).value.trim().toLowerCase();
    for (const m of models.filter(m => !text || m.ref.toLowerCase().includes(text))) {
      const selected = m.name === this.model.selected;
      const row = el('li', { class: 'eb-model', 'data-eb-model': m.name, title: m.ref, role: 'option', tabindex: '0',
                             'aria-selected': String(selected) });
      row.classList.toggle('eb-selected', selected);
      const running = this.model.runFor(m.name)?.status === 'running';
      row.append(el('span', { class: 'eb-model-name' }, m.ref), this.badges(m, running));
      row.addEventListener('click', () => this.choose(m.name));
      this.list.append(row);
    }
  }

  private choose(name: string): void {
    void this.model.select(name);
    this.open(name);
  }

  private onKey(event: KeyboardEvent): void {
    const rows = Array.from(this.list.querySelectorAll<HTMLElement>('.eb-model'));
    const at = rows.indexOf(document.activeElement as HTMLElement);
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      rows[Math.max(0, Math.min(rows.length - 1, at + (event.key === 'ArrowDown' ? 1 : -1)))]?.focus();
      event.preventDefault();
    } else if (event.key === 'Enter' && at >= 0) {
      this.choose(rows[at].dataset.ebModel ?? '');
    }
  }

  private badges(m: IModelState, running: boolean): HTMLElement {
    const box = el('span', { class: 'eb-badges' });
    if (running) {
      box.append(badge('running', 'uncertain'));
    }
    box.append(badge(`parity ${m.parity ?? 'n/a'}`, m.parity));
    for (const [device, verdict] of Object.entries(m.bench?.devices ?? {})) {
      box.append(badge(`${device}: ${verdict}`, verdict));
    }
    for (const [platform, image] of Object.entries(m.images ?? {})) {
      const arch = platform.replace('linux/', '');
      const test = image.test;
      box.append(test ? badge(`${arch} image test ${test.status}${test.emulated ? ' (emulated)' : ''}`, test.status)
                      : badge(`${arch} image built`, 'pass'));
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

  dispose(): void {
    this.model.dispose();
    super.dispose();
  }
}
