// The HTTP API, with the signed-in token. Errors carry the API's status and fields.

let token = sessionStorage.getItem('cfhost-token') ?? '';

/** An answer that was not 2xx: `status`, the API's `error` text, and its other fields. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error ?? `HTTP ${status}`);
    this.status = status;
    this.details = body ?? {};
  }
}

/** Keeps `value` as the token of this tab (empty: signed out). */
export function setToken(value) {
  token = value;
  if (value) sessionStorage.setItem('cfhost-token', value);
  else sessionStorage.removeItem('cfhost-token');
}

export function hasToken() {
  return token !== '';
}

/** `method` on `path` with a JSON `body` (or bytes with `contentType`); the parsed answer. */
export async function call(method, path, body, contentType = 'application/json') {
  const headers = { Authorization: `Bearer ${token}` };
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = contentType;
    payload = contentType === 'application/json' ? JSON.stringify(body) : body;
  }
  const response = await fetch(path, { method, headers, body: payload });
  if (response.status === 204) return null;
  const type = response.headers.get('Content-Type') ?? '';
  const answer = type.startsWith('application/json') ? await response.json() : await response.blob();
  if (!response.ok) throw new ApiError(response.status, type.startsWith('application/json') ? answer : null);
  return answer;
}

export const get = (path) => call('GET', path);
export const put = (path, body, contentType) => call('PUT', path, body, contentType);
export const post = (path, body) => call('POST', path, body);
export const remove = (path) => call('DELETE', path);

/** `/v1/accounts/<account>/<rest>`, each part escaped. */
export function accountPath(account, ...rest) {
  return ['/v1/accounts', account, ...rest].map((part, i) => (i === 0 ? part : encodeURIComponent(part))).join('/');
}
