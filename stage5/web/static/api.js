// The console's JSON API. `api()` answers the parsed JSON, or shows on the page what went wrong and
// throws an ApiError: no answer at all, an error answer that is not JSON (a proxy's HTML page), a JSON
// error with its message, a 401 (the sign-in form), a success that is not JSON. `stream()` reads a
// run's server-sent events.
import { showSignIn, token } from "./auth.js";
import { ApiError } from "./errors.js";
import { clearError, showError } from "./notice.js";

const RETRY_MS = 5000;
const LIVE = "live view";

function headers() {
  const sent = { "Content-Type": "application/json" };
  if (token()) sent.Authorization = `Bearer ${token()}`;
  return sent;
}

export async function api(method, path, body) {
  const what = `${method} ${path.split("?")[0]}`;
  try {
    const data = await call(method, path, body, what);
    clearError(what); // this call failed before: it answers again
    return data;
  } catch (error) {
    if (error.status === 401) showSignIn(error.message);
    else showError(error.message, what);
    throw error;
  }
}

async function call(method, path, body, what) {
  let response, text;
  try {
    const json = body === undefined ? undefined : JSON.stringify(body);
    response = await fetch(path, { method, headers: headers(), body: json });
    text = await response.text();
  } catch (error) {
    throw new ApiError(`${what}: no answer from the console (${error.message}); is stage5 serve running?`, 0, null);
  }
  const data = parsed(text);
  if (response.ok && data !== undefined) return data;
  throw new ApiError(problem(response, data, text, what), response.status, data ?? null);
}

// The JSON in `text`, or undefined when it is not JSON.
function parsed(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function problem(response, data, text, what) {
  const said = data?.error || data?.reason; // the API's own words, written for people
  if (said) return String(said);
  const status = `HTTP ${response.status} ${response.statusText}`.trim();
  if (data === undefined) return `${what}: ${status}, and the answer is not JSON: ${gist(text)}`;
  return `${what}: ${status}`;
}

// The words of an answer that is not JSON (an HTML error page's text without its tags), cut short. Only
// ever shown as text; not parsed as HTML, which would load the page's images and try their handlers.
function gist(text) {
  const words = text
    .replace(/<(script|style|head)\b[\s\S]*?<\/\1\s*>/gi, " ")
    .replace(/<[^>]*>/g, " ")
    .replace(/\s+/g, " ")
    .trim();
  if (!words) return "(empty)";
  return words.length > 120 ? `${words.slice(0, 120)}…` : words;
}

// A run's server-sent events, read with fetch (EventSource cannot send the token). A failure is shown
// and retried every 5 s; the stream ends when the server ends it (the run ended) or on close().
export function stream(path, onEvent) {
  const abort = new AbortController();
  (async () => {
    while (!abort.signal.aborted) {
      try {
        await readEvents(path, onEvent, abort.signal);
        return;
      } catch (error) {
        if (abort.signal.aborted) return;
        showError(`${LIVE}: ${error.message}; retrying in ${RETRY_MS / 1000} s`, LIVE);
      }
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  })();
  return { close: () => abort.abort() };
}

async function readEvents(path, onEvent, signal) {
  const sent = token() ? { Authorization: `Bearer ${token()}` } : {};
  const response = await fetch(path, { headers: sent, signal });
  if (!response.ok) {
    const text = await response.text();
    throw new Error(problem(response, parsed(text), text, `GET ${path}`));
  }
  clearError(LIVE);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const chunk = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      if (chunk.startsWith("data: ")) onEvent(JSON.parse(chunk.slice(6)));
    }
  }
}
