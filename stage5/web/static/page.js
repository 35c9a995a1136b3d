// What every page does: the sign-in form first when the console needs a token the tab has not given,
// then the page's own start (once), event handlers bound once, polls that never overlap, and every
// failure shown on the page.
import { api } from "./api.js";
import { forgetToken, keepToken, showContent, token } from "./auth.js";
import { ApiError } from "./errors.js";
import { attempt, clearError, report } from "./notice.js";
import { useZone } from "./time.js";

let started = false;

// `init(scheduler)` runs once the API answers (never before the token is given).
export function start(init) {
  on(document.getElementById("signin"), "submit", (event) => {
    event.preventDefault();
    keepToken(new FormData(event.target).get("token"));
    return open(init);
  });
  on(document.getElementById("signout"), "click", () => {
    forgetToken();
    location.reload();
  });
  window.addEventListener("error", (event) => report(event.error ?? event.message));
  window.addEventListener("unhandledrejection", (event) => {
    report(event.reason);
    if (event.reason instanceof ApiError) event.preventDefault(); // shown when it happened
  });
  document.getElementById("signout").hidden = !token();
  attempt(() => open(init));
}

// The scheduler's state is the first call: its answer gives the console's zone; a 401 shows the form.
async function open(init) {
  let scheduler;
  try {
    scheduler = await api("GET", "/api/scheduler");
  } catch (error) {
    if (error instanceof ApiError) return; // shown by api(): the sign-in form or the error line
    throw error;
  }
  useZone(scheduler.timezone);
  clearError();
  showContent();
  document.getElementById("signout").hidden = !token();
  if (started) return; // signed in again: the page and its polls are already going
  started = true;
  await init(scheduler);
}

export function on(element, type, handler) {
  element.addEventListener(type, (event) => attempt(() => handler(event)));
}

// One listener on `root` for every current and future `selector` inside it: bound once, however often
// the rows inside are rendered again. `handler(target, event)`.
export function delegate(root, type, selector, handler) {
  root.addEventListener(type, (event) => {
    const target = event.target.closest(selector);
    if (target && root.contains(target)) attempt(() => handler(target, event));
  });
}

// `task()` every `ms`, the next one `ms` after the last ended (a slow answer never piles up calls).
export function every(ms, task) {
  const tick = async () => {
    try {
      await task();
    } catch (error) {
      report(error);
    }
    setTimeout(tick, ms);
  };
  setTimeout(tick, ms);
}
