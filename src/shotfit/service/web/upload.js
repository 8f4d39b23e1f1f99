// Resumable uploads through the PATCH API: a file goes in chunks at the server's offset, so a dropped
// connection, a 409 or a reloaded page continues where the server says it stopped.
import { ApiError, call, key, problem } from "./api.js";

const CHUNK = 8 * 1024 * 1024;
const RETRIES = 6;

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

// One chunk by XMLHttpRequest, the only browser API that reports upload progress.
function patch(id, offset, chunk, onSent) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PATCH", `v1/uploads/${encodeURIComponent(id)}`);
    xhr.setRequestHeader("Authorization", `Bearer ${key.get()}`);
    xhr.setRequestHeader("Upload-Offset", String(offset));
    xhr.setRequestHeader("Content-Type", "application/offset+octet-stream");
    xhr.upload.onprogress = (e) => onSent(e.loaded);
    xhr.onerror = () => reject(new ApiError(0, "the connection was lost"));
    xhr.onload = async () => {
      if (xhr.status >= 200 && xhr.status < 300) return resolve(JSON.parse(xhr.responseText));
      const headers = new Headers({ "Retry-After": xhr.getResponseHeader("Retry-After") || "" });
      reject(await problem(new Response(xhr.responseText, { status: xhr.status, headers })));
    };
    xhr.send(chunk);
  });
}

// Where this browser left an upload of this very file, so a page reload resumes it.
const memo = (shotId, role, file) => `shotfit.upload.${shotId}.${role}.${file.name}.${file.size}.${file.lastModified}`;

async function open(shotId, role, file) {
  const known = localStorage.getItem(memo(shotId, role, file));
  if (known) {
    try {
      const upload = await call("GET", `v1/uploads/${encodeURIComponent(known)}`);
      if (upload.size === file.size) return upload;
    } catch { /* gone (expired or another studio's): start again */ }
  }
  const upload = await call("POST", `v1/shots/${encodeURIComponent(shotId)}/uploads`,
    { role, name: file.name, size: file.size });
  localStorage.setItem(memo(shotId, role, file), upload.id);
  return upload;
}

const retryable = (error) => error.status === 0 || error.status === 409 || error.status === 429 || error.status >= 500;

/** Upload `file` as `role` of the shot; onProgress(bytesDone, bytesTotal). Resolves with the final Upload. */
export async function uploadFile(shotId, role, file, onProgress) {
  let upload = await open(shotId, role, file);
  let failures = 0;
  onProgress(upload.offset, file.size);
  // all bytes in but not complete (its check was cut short, or another request was checking it): an empty
  // PATCH at the end asks the server to check and place it
  while (!upload.complete) {
    const offset = upload.offset;
    try {
      upload = await patch(upload.id, offset, file.slice(offset, offset + CHUNK), (sent) => onProgress(offset + sent, file.size));
      failures = 0;
    } catch (error) {
      if (!retryable(error) || ++failures > RETRIES) throw error;
      await sleep(500 * 2 ** failures);
      upload = await call("GET", `v1/uploads/${encodeURIComponent(upload.id)}`);
    }
    onProgress(upload.offset, file.size);
  }
  localStorage.removeItem(memo(shotId, role, file));
  return upload;
}
