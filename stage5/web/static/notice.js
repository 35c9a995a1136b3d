// The page's one error line (#error). Each message remembers where it came from, so a poll that answers
// again clears its own message but never one left by something else (a refused form, say).
import { ApiError } from "./errors.js";

let shownFrom = null;

function line() {
  return document.getElementById("error");
}

export function showError(text, from = "page") {
  line().textContent = text;
  shownFrom = from;
}

// With `from`, only that source's message goes; without, whatever is shown.
export function clearError(from) {
  if (from !== undefined && from !== shownFrom) return;
  line().textContent = "";
  shownFrom = null;
}

// A failure nobody caught: an API error was shown when it happened; anything else (a bug in a page's
// script) is shown now, so nothing fails silently.
export function report(error) {
  if (error instanceof ApiError) return;
  showError(`the page failed: ${error?.message ?? error}; reload it`, "page");
}

// `task()` with its failure reported, whether it throws or its promise fails (for event handlers and
// timers, whose promises nobody awaits). It runs at once: a handler can still call preventDefault().
export function attempt(task) {
  try {
    const result = task();
    if (result instanceof Promise) result.catch(report);
  } catch (error) {
    report(error);
  }
}
