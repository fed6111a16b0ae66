/** requestAPI: apiCall through Jupyter's ServerConnection (token and XSRF handled there). */
import { ServerConnection } from '@jupyterlab/services';

import { apiCall } from './api';
import { Requester } from './tokens';

export function makeRequester(settings = ServerConnection.makeSettings()): Requester {
  return <T>(endPoint: string, init: { method?: string; body?: string } = {}) =>
    apiCall<T>(
      (url, request) => ServerConnection.makeRequest(url, request, settings),
      settings.baseUrl,
      endPoint,
      init
    );
}
