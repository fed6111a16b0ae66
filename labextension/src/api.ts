/** The one request helper: JSON in, JSON out, the server's error message on failure. */

export class EdgebenchAPIError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

export interface IResponseLike {
  ok: boolean;
  status: number;
  statusText: string;
  text(): Promise<string>;
}

/** Call `endPoint` under `<baseUrl>edgebench/` with `send` (a fetch-like function). */
export async function apiCall<T>(
  send: (url: string, init: { method?: string; body?: string }) => Promise<IResponseLike>,
  baseUrl: string,
  endPoint: string,
  init: { method?: string; body?: string } = {}
): Promise<T> {
  const url = baseUrl.replace(/\/?$/, '/') + 'edgebench/' + endPoint.replace(/^\//, '');
  let response: IResponseLike;
  try {
    response = await send(url, init);
  } catch (error) {
    throw new EdgebenchAPIError(`the Jupyter server did not answer: ${String(error)}`, 0);
  }
  const text = await response.text();
  let data: any = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      throw new EdgebenchAPIError(`not JSON from ${url}: ${text.slice(0, 200)}`, response.status);
    }
  }
  if (!response.ok) {
    const message = data && typeof data.error === 'string' ? data.error : response.statusText;
    throw new EdgebenchAPIError(message || `HTTP ${response.status}`, response.status);
  }
  return data as T;
}
