import { apiCall, EdgebenchAPIError, IResponseLike } from '../api';

function reply(status: number, body: string): IResponseLike {
  return { ok: status < 400, status, statusText: `status ${status}`, text: async () => body };
}

describe('apiCall', () => {
  it('joins the base URL and the endpoint under /edgebench/ and parses JSON', async () => {
    const seen: string[] = [];
    const data = await apiCall<{ models: unknown[] }>(
      async url => {
        seen.push(url);
        return reply(200, '{"models": []}');
      },
      'http://localhost:8888/lab-base',
      '/models'
    );
    expect(seen).toEqual(['http://localhost:8888/lab-base/edgebench/models']);
    expect(data).toEqual({ models: [] });
  });

  it("throws the server's error message with the status", async () => {
    const failing = apiCall(async () => reply(404, '{"error": "no model named \'ghost\'"}'), '/', 'models/ghost');
    await expect(failing).rejects.toThrow("no model named 'ghost'");
    await expect(failing).rejects.toMatchObject({ status: 404 });
  });

  it('says when the server does not answer or answers something else than JSON', async () => {
    await expect(
      apiCall(async () => {
        throw new TypeError('Failed to fetch');
      }, '/', 'status')
    ).rejects.toThrow('the Jupyter server did not answer: TypeError: Failed to fetch');
    await expect(apiCall(async () => reply(502, '<html>bad gateway</html>'), '/', 'status')).rejects.toBeInstanceOf(
      EdgebenchAPIError
    );
  });

  it('sends the method and body', async () => {
    let sent: any = null;
    await apiCall(
      async (_url, init) => {
        sent = init;
        return reply(202, '{"id": 1}');
      },
      '/',
      'runs',
      { method: 'POST', body: '{"step": "bench"}' }
    );
    expect(sent).toEqual({ method: 'POST', body: '{"step": "bench"}' });
  });
});
