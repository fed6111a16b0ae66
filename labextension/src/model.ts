/** The panel's state: models, the selected model's detail, runs; signals when any of them changes. */
import { ISignal, Signal } from '@lumino/signaling';

import { IDeploy, IModelDetail, IModelState, IProfile, IRun, IStatus, Requester, Step } from './tokens';

/** Runs that were running in ``before`` and have ended in ``after``: what a notification announces. */
export function finishedRuns(before: IRun[], after: IRun[]): IRun[] {
  const running = new Set(before.filter(r => r.status === 'running').map(r => r.id));
  return after.filter(r => running.has(r.id) && r.status !== 'running');
}

/** The notification for an ended run: "bench digits-rf passed in 4 s", or the step's own message. */
export function runMessage(run: IRun): { kind: 'success' | 'error' | 'info'; text: string } {
  const took = run.finished && run.started ? ` in ${Math.max(1, Math.round(run.finished - run.started))} s` : '';
  if (run.status === 'passed') {
    return { kind: 'success', text: `${run.step} ${run.model} passed${took}` };
  }
  if (run.status === 'cancelled') {
    return { kind: 'info', text: `${run.step} ${run.model} cancelled` };
  }
  return { kind: 'error', text: `${run.step} ${run.model} failed: ${run.error ?? 'see its log'}` };
}

export class EdgeModel {
  constructor(private readonly request: Requester) {}

  status: IStatus | null = null;
  models: IModelState[] = [];
  profiles: IProfile[] = [];
  runs: IRun[] = [];
  selected: string | null = null;
  detail: IModelDetail | null = null;
  deploy: IDeploy | null = null;
  error: string | null = null;

  get modelsChanged(): ISignal<this, void> {
    return this._modelsChanged;
  }
  get runsChanged(): ISignal<this, void> {
    return this._runsChanged;
  }
  get selectionChanged(): ISignal<this, void> {
    return this._selectionChanged;
  }
  get errorChanged(): ISignal<this, string | null> {
    return this._errorChanged;
  }
  /** A run seen running has ended (passed, failed or cancelled). */
  get runEnded(): ISignal<this, IRun> {
    return this._runEnded;
  }

  /** The run in progress (or the latest one) for a model. */
  runFor(name: string): IRun | undefined {
    return this.runs.find(r => r.model === name);
  }

  /** Fetch status, models and runs; signal only what changed. */
  async refresh(): Promise<void> {
    try {
      const [status, models, runs, deploy] = await Promise.all([
        this.request<IStatus>('status'),
        this.request<{ models: IModelState[] }>('models'),
        this.request<{ runs: IRun[] }>('runs'),
        this.request<IDeploy>('deploy').catch(error => ({ configured: false, message: String(error.message ?? error) }))
      ]);
      if (!this.profiles.length) {
        this.profiles = (await this.request<{ profiles: IProfile[] }>('profiles')).profiles;
      }
      const modelsChanged =
        JSON.stringify([status, models.models, deploy]) !== JSON.stringify([this.status, this.models, this.deploy]);
      const runsChanged = JSON.stringify(runs.runs) !== JSON.stringify(this.runs);
      const ended = finishedRuns(this.runs, runs.runs);
      this.status = status;
      this.models = models.models;
      this.deploy = deploy;
      this.runs = runs.runs;
      if (this.selected && !this.models.some(m => m.name === this.selected)) {
        await this.select(null);
      } else if (this.selected && modelsChanged) {
        await this.loadDetail();
      }
      if (modelsChanged) {
        this._modelsChanged.emit();
      }
      if (runsChanged) {
        this._runsChanged.emit();
      }
      for (const run of ended) {
        this._runEnded.emit(run);
      }
      this.setError(null);
    } catch (error) {
      this.setError(String((error as Error).message ?? error));
    }
  }

  async select(name: string | null): Promise<void> {
    this.selected = name;
    this.detail = null;
    if (name) {
      await this.loadDetail();
    }
    this._selectionChanged.emit();
  }

  private async loadDetail(): Promise<void> {
    if (!this.selected) {
      return;
    }
    try {
      this.detail = await this.request<IModelDetail>(`models/${encodeURIComponent(this.selected)}`);
      this._selectionChanged.emit();
    } catch (error) {
      this.setError(String((error as Error).message ?? error));
    }
  }

  /** Start a step on the selected model; the server runs it outside the request. */
  async startRun(step: Step, params: Record<string, unknown> = {}): Promise<IRun | null> {
    if (!this.selected) {
      this.setError('select a model first');
      return null;
    }
    try {
      const run = await this.request<IRun>('runs', {
        method: 'POST',
        body: JSON.stringify({ model: this.selected, step, params })
      });
      this.runs = [run, ...this.runs.filter(r => r.id !== run.id)];
      this._runsChanged.emit();
      this.setError(null);
      return run;
    } catch (error) {
      this.setError(String((error as Error).message ?? error));
      return null;
    }
  }

  async cancelRun(id: number): Promise<void> {
    try {
      const run = await this.request<IRun>(`runs/${id}`, { method: 'DELETE' });
      this.runs = this.runs.map(r => (r.id === id ? run : r));
      this._runsChanged.emit();
    } catch (error) {
      this.setError(String((error as Error).message ?? error));
    }
  }

  /** Poll every `ms` (faster while a run is active) until `dispose`. */
  startPolling(ms = 3000): void {
    const tick = async () => {
      await this.refresh();
      const active = this.runs.some(r => r.status === 'running');
      this._timer = setTimeout(tick, active ? Math.min(ms, 700) : ms);
    };
    void tick();
  }

  dispose(): void {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    Signal.clearData(this);
  }

  private setError(message: string | null): void {
    if (message !== this.error) {
      this.error = message;
      this._errorChanged.emit(message);
    }
  }

  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _modelsChanged = new Signal<this, void>(this);
  private _runsChanged = new Signal<this, void>(this);
  private _selectionChanged = new Signal<this, void>(this);
  private _errorChanged = new Signal<this, string | null>(this);
  private _runEnded = new Signal<this, IRun>(this);
}
