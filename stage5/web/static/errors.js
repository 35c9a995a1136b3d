// A failed API call: `message` says what failed in words, `status` is the HTTP status (0: no answer),
// `body` the parsed JSON answer when there was one (the API's {"error", "field"} or a run-now decision).
export class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
  }
}
