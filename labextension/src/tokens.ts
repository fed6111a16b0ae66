/** Shapes of the REST API under /edgebench/ (docs/rest.md). */

export interface IStatus {
  version: string;
  store: string;
  engine: { available: boolean; message: string };
  /** EDGEBENCH_MONITOR_SOURCE on the server: where drift checks read counts by default. */
  monitor_source: string | null;
}

export interface IModelState {
  name: string;
  version: number;
  ref: string;
  estimator: string;
  size_bytes: number;
  created: string;
  parity: string | null;
  bench: { status: string; run: number; devices: Record<string, string> } | null;
  /** Per platform ("linux/arm64"...): the newest image built for these model bytes and its newest test. */
  images: Record<string, IPlatformImage>;
  image: { tag: string; id: string; size_bytes: number; run: number } | null;
  image_test: { status: string; run: number; cold_start_s: number | null } | null;
  published: {
    destination: string;
    digest: string;
    references: string[];
    run: number;
    platforms: string[];
    signed: boolean;
    attestations: string[];
  } | null;
  drift: { status: string; run: number; summary: string; alarms: string[] } | null;
}

export interface IPlatformImage {
  tag: string;
  id: string;
  size_bytes: number;
  run: number;
  test: { status: string; run: number; emulated: boolean; cold_start_s: number | null } | null;
}

export interface IDeviceResult {
  device: string;
  threads: number;
  predicted_p50_ms: number;
  interval_p99_ms: [number, number];
  ram_needed_mb: number;
  usable_ram_mb: number;
  verdict: string;
  reasons: string[];
}

export interface IModelDetail {
  card: {
    name: string;
    version: number;
    estimator: string;
    size_bytes: number;
    opset: Record<string, number>;
    inputs: { name: string; datatype: string; shape: number[] }[];
    outputs: { name: string; datatype: string; shape: number[] }[];
    metadata: Record<string, unknown>;
    parity: {
      passed: boolean;
      rows: number;
      held_out_rows: number;
      outputs: { name: string; kind: string; label_agreement: number | null; max_abs_diff: number | null }[];
    } | null;
  };
  state: IModelState;
  bench: { devices: IDeviceResult[]; slo: { p99_ms: number | null; ram_mb: number | null } } | null;
  /** The last drift report (edgebench.monitor.DriftReport.to_dict). */
  drift: IDriftReport | null;
}

export interface IFeatureDrift {
  name: string;
  p_adjusted: number;
  psi: number;
  out_of_range: number;
  missing: number;
  drifted: boolean;
  reference: number[];
  window: number[];
}

export interface IDriftReport {
  model: string;
  source: string;
  window_seconds: number;
  summary: string;
  drift: boolean;
  alarms: string[];
  windows: { rows: number; judged: boolean; reason: string; features: IFeatureDrift[] }[];
}

export interface IProfile {
  name: string;
  title: string;
  arch: string;
  usable_ram_mb: number;
}

export interface ISiteStatus {
  site: string;
  wave: number;
  target: string;
  profile: string;
  desired: string | null;
  answer: string;
  healthy: boolean | null;
}

export interface IDeploy {
  configured: boolean;
  message?: string;
  hub?: string;
  waves?: number[];
  sites?: ISiteStatus[];
}

export interface IRun {
  id: number;
  model: string;
  step: string;
  status: 'running' | 'passed' | 'failed' | 'cancelled';
  started?: number;
  finished?: number | null;
  progress: { done: number; total: number; message: string };
  log: string[];
  result: unknown;
  error: string | null;
}

export type Step = 'bench' | 'build' | 'test' | 'publish' | 'promote' | 'rollback' | 'monitor';

/** How the model talks to the server: one function, so tests pass a fake. */
export type Requester = <T>(endPoint: string, init?: { method?: string; body?: string }) => Promise<T>;
