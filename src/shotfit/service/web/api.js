// The HTTP API as the page uses it: every request carries the key as a Bearer token, so images,
// downloads and the event stream are fetched here too (an <img src> or EventSource cannot send it).
const KEY = "shotfit.key";

export const key = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

function auth(headers = {}) {
  return { Authorization: `Bearer ${key.get()}`, ...headers };
}

// The server's one-line {"detail"}; a validation error's list is joined into one line.
export async function problem(response) {
  let detail = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (typeof body.detail === "string") detail = body.detail;
    else if (Array.isArray(body.detail)) detail = body.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  } catch { /* not JSON: keep the status line */ }
  const wait = response.headers.get("Retry-After");
  if (response.status === 429 && wait) detail += ` (try again in ${wait} s)`;
  return new ApiError(response.status, detail);
}

async function request(method, path, body, headers = {}) {
  const init = { method, headers: auth(headers) };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await problem(response);
  return response;
}

export async function call(method, path, body, headers) {
  const response = await request(method, path, body, headers);
  return response.status === 204 ? null : response.json();
}

export async function blob(path) {
  return (await request("GET", path)).blob();
}

// Save a file the server streams: fetched with the key, handed to the browser as a download.
export async function download(path, filename) {
  const url = URL.createObjectURL(await blob(path));
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

// Server-sent events read from a fetch body: yields {event, data} until the server ends the stream.
export async function* events(path, signal) {
  const response = await fetch(path, { headers: auth({ Accept: "text/event-stream" }), signal });
  if (!response.ok) throw await problem(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = "message";
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const lines = buffer.split(/\r\n|\r|\n/);
    buffer = lines.pop();
    for (const line of lines) {
      if (line === "") {
        if (data.length) yield { event, data: data.join("\n") };
        event = "message";
        data = [];
      } else if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
  }
}

// An Idempotency-Key: randomUUID needs a secure context, getRandomValues does not.
export function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}
