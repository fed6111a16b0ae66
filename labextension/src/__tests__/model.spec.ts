import { EdgeModel } from '../model';
import { IModelState, IRun, Requester } from '../tokens';

function state(name: string): IModelState {
  return {
    name, version: 1, ref: `${name}:1`, estimator: 'RandomForestClassifier', size_bytes: 1024, created: '',
    parity: 'pass', bench: null, images: {}, image: null, image_test: null, published: null, drift: null
  };
}

function fakeServer(models: IModelState[], runs: IRun[] = []) {
  const calls: { endPoint: string; init?: { method?: string; body?: string } }[] = [];
  const request: Requester = async <T>(endPoint: string, init?: { method?: string; body?: string }) => {
    calls.push({ endPoint, init });
    if (endPoint === 'status') return { version: '0.1.0', store: '/s', engine: { available: true, message: 'ok' } } as T;
    if (endPoint === 'models') return { models } as T;
    if (endPoint === 'runs' && init?.method === 'POST') {
      const body = JSON.parse(init.body ?? '{}');
      if (body.model === 'ghost') throw new Error("no model named 'ghost'");
      return { id: 7, model: body.model, step: body.step, status: 'running', progress: { done: 0, total: 0, message: '' }, log: [], result: null, error: null } as T;
    }
    if (endPoint === 'runs') return { runs } as T;
    if (endPoint === 'profiles') return { profiles: [{ name: 'rpi4-1gb', title: 'Pi 4', arch: 'arm64', usable_ram_mb: 759 }] } as T;
    if (endPoint.startsWith('models/')) {
      const name = decodeURIComponent(endPoint.slice(7));
      return { card: {}, state: models.find(m => m.name === name), bench: null } as T;
    }
    if (endPoint.startsWith('runs/')) return { ...runs[0], status: 'cancelled' } as T;
    throw new Error(`unexpected ${endPoint}`);
  };
  return { request, calls };
}

describe('EdgeModel', () => {
  it('refresh loads models and signals once per change', async () => {
    const server = fakeServer([state('digits-rf')]);
    const model = new EdgeModel(server.request);
    let changed = 0;
    model.modelsChanged.connect(() => changed++);
    await model.refresh();
    await model.refresh();
    expect(model.models.map(m => m.ref)).toEqual(['digits-rf:1']);
    expect(model.profiles[0].name).toBe('rpi4-1gb');
    expect(changed).toBe(1);
  });

  it('a model exported meanwhile appears on the next refresh', async () => {
    const models = [state('a')];
    const model = new EdgeModel(fakeServer(models).request);
    await model.refresh();
    models.push(state('b'));
    await model.refresh();
    expect(model.models.map(m => m.name)).toEqual(['a', 'b']);
  });

  it('startRun posts the step and parameters for the selected model', async () => {
    const server = fakeServer([state('digits-rf')]);
    const model = new EdgeModel(server.request);
    await model.refresh();
    await model.select('digits-rf');
    const run = await model.startRun('bench', { devices: ['rpi4-1gb'], slo_p99_ms: 20 });
    expect(run?.id).toBe(7);
    const post = server.calls.find(c => c.init?.method === 'POST');
    expect(JSON.parse(post!.init!.body!)).toEqual({ model: 'digits-rf', step: 'bench', params: { devices: ['rpi4-1gb'], slo_p99_ms: 20 } });
    expect(model.runFor('digits-rf')?.status).toBe('running');
  });

  it('errors from the server reach the errorChanged signal', async () => {
    const model = new EdgeModel(fakeServer([state('ghost')]).request);
    await model.refresh();
    await model.select('ghost');
    const messages: (string | null)[] = [];
    model.errorChanged.connect((_, m) => messages.push(m));
    expect(await model.startRun('bench')).toBeNull();
    expect(messages).toEqual(["no model named 'ghost'"]);
  });

  it('a selected model that was deleted is deselected', async () => {
    const models = [state('gone')];
    const model = new EdgeModel(fakeServer(models).request);
    await model.refresh();
    await model.select('gone');
    models.pop();
    await model.refresh();
    expect(model.selected).toBeNull();
  });

  it('cannot start a run without a selection', async () => {
    const model = new EdgeModel(fakeServer([]).request);
    expect(await model.startRun('build')).toBeNull();
    expect(model.error).toBe('select a model first');
  });
});
