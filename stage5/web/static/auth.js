// The console's API token, kept for this tab's session (sessionStorage), and the sign-in form shown
// in place of the page when the console needs a token the tab has not given (or one it refused).
import { clearError, showError } from "./notice.js";

const KEY = "stage5-token";

export function token() {
  return sessionStorage.getItem(KEY) || "";
}

export function keepToken(value) {
  sessionStorage.setItem(KEY, value);
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
}

export function showSignIn(reason) {
  document.getElementById("content").hidden = true;
  document.getElementById("signin").hidden = false;
  if (token()) showError(`the token was refused: ${reason}`, "sign-in");
  else clearError(); // no token given yet: the form says what it needs
}

export function showContent() {
  document.getElementById("signin").hidden = true;
  document.getElementById("content").hidden = false;
}
