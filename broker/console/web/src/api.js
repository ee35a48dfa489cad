// The broker's JSON API, as the app calls it: same origin, cookie auth,
// and the CSRF token on every request that changes something.

let csrf = '';

// setCSRF stores the token from /api/me or /api/login.
export function setCSRF(token) {
  csrf = token || '';
}

// APIError is a failed call: the HTTP status (0 when the broker did not
// answer) and the broker's error code and message.
export class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'APIError';
    this.status = status;
    this.code = code;
  }
}

// api calls path and returns its decoded JSON (null for 204). Non-GET
// calls carry X-CSRF-Token and, if body is given, a JSON body. Errors are
// thrown as APIError with the broker's message, ready to show; an abort
// through signal is rethrown as is (its name is "AbortError").
export async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD' && csrf) headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
      signal,
    });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new APIError(0, 'network', `the broker did not answer (${err.message})`);
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: a proxy's error page, say. The status says enough.
  }
  if (!res.ok) {
    const e = (data && data.error) || {};
    throw new APIError(res.status, e.code || `http-${res.status}`,
      e.message || `${res.status} ${res.statusText || 'error'}`.trim());
  }
  return data;
}

// isAbort reports whether err is a fetch cancelled through its signal.
export function isAbort(err) {
  return err && err.name === 'AbortError';
}
