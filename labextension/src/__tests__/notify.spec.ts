import { logScale, plural } from '../dom';
import { EdgeModel, finishedRuns, runMessage } from '../model';
import { IRun, Requester } from '../tokens';

function run(id: number, status: IRun['status'], extra: Partial<IRun> = {}): IRun {
  return { id, model: 'digits-rf', step: 'bench', status, progress: { done: 1, total: 1, message: 'predicting rpi4-1gb' },
           log: [], result: null, error: null, started: 100, finished: status === 'running' ? null : 104.4, ...extra };
}

describe('a run that ends', () => {
  it('is found once, when it was seen running', () => {
    expect(finishedRuns([run(1, 'running'), run(2, 'passed')], [run(1, 'failed'), run(2, 'passed')]).map(r => r.id)).toEqual([1]);
    expect(finishedRuns([run(1, 'failed')], [run(1, 'failed')])).toEqual([]);
    expect(finishedRuns([], [run(3, 'passed')])).toEqual([]);  // never seen running: no notification on reload
  });

  it('says how long it took, or the step\'s own message', () => {
    expect(runMessage(run(1, 'passed'))).toEqual({ kind: 'success', text: 'bench digits-rf passed in 4 s' });
    expect(runMessage(run(1, 'failed', { error: 'slo_p99_ms must be a finite number > 0' }))).toEqual(
      { kind: 'error', text: 'bench digits-rf failed: slo_p99_ms must be a finite number > 0' });
    expect(runMessage(run(1, 'cancelled')).kind).toBe('info');
  });

  it('is announced by the model after a poll', async () => {
    let runs = [run(5, 'running')];
    const request: Requester = async <T>(endPoint: string) => {
      if (endPoint === 'status') return { version: '0', store: '/s', engine: { available: true, message: '' }, monitor_source: null } as T;
      if (endPoint === 'models') return { models: [] } as T;
      if (endPoint === 'runs') return { runs } as T;
      if (endPoint === 'profiles') return { profiles: [] } as T;
      return { configured: false, message: '' } as T;
    };
    const model = new EdgeModel(request);
    const ended: IRun[] = [];
    model.runEnded.connect((_, r) => ended.push(r));
    await model.refresh();
    runs = [run(5, 'passed')];
    await model.refresh();
    await model.refresh();
    expect(ended.map(r => [r.id, r.status])).toEqual([[5, 'passed']]);
  });
});

describe('the bench chart\'s log scale', () => {
  it('shows 0.05 ms and a 20 ms SLO on one axis, with 1-2-5 ticks', () => {
    const { x, ticks } = logScale([0.05, 0.12, 20], 300);
    expect(ticks).toEqual([0.01, 0.1, 1, 10, 100].map(t => expect.closeTo(t, 6)));  // 4 decades: a tick each
    expect(x(0.05)).toBeGreaterThan(40);  // far from the left edge: visible, unlike on a linear 0-20 ms axis
    expect(x(20)).toBeLessThan(300);
    expect(x(0.12) - x(0.05)).toBeGreaterThan(20);
  });

  it('uses 1-2-5 ticks over two decades at most', () => {
    expect(logScale([0.3, 7], 200).ticks.map(t => Number(t.toPrecision(2)))).toEqual([0.1, 0.2, 0.5, 1, 2, 5, 10]);
  });

  it('counts in words', () => {
    expect(plural(1, 'device')).toBe('1 device');
    expect(plural(3, 'device')).toBe('3 devices');
  });
});
