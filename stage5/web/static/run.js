// One run: its facts, live figures from its event stream while it runs, its districts and failed units.
import { api, stream } from "./api.js";
import { attempt } from "./notice.js";
import { on, start } from "./page.js";
import { clone, fillRows, setStatus } from "./render.js";
import { duration, when } from "./time.js";

// The route only serves /runs/<digits>: the id is its last part (BigInt: exact however long).
const runId = BigInt(location.pathname.split("/").pop()).toString();
let last = null; // the live figures before these: the rate is requests between the two over their time

function text(id, value) {
  document.getElementById(id).textContent = String(value ?? "");
}

function stored(run) {
  return run.stores_new + run.stores_updated + run.stores_unchanged;
}

async function detail() {
  const run = await api("GET", `/api/runs/${runId}`);
  const ended = run.finished_at ? new Date(run.finished_at) : new Date();
  const took = duration((ended - new Date(run.started_at)) / 1000);
  text("started", when(run.started_at));
  text("duration", took + (run.finished_at ? "" : " so far"));
  text("trigger", run.trigger);
  text("job", run.job || "—");
  text("stored", stored(run));
  text("stored-new", run.stores_new);
  text("stored-updated", run.stores_updated);
  text("stored-unchanged", run.stores_unchanged);
  document.getElementById("run-error").hidden = !run.error;
  text("run-error-text", run.error);
  const units = run.district_units.map(({ district, done, failed, units }) =>
    clone("unit-row", { district, done, failed, units }),
  );
  fillRows(document.querySelector("#units tbody"), units, "no unit planned yet");
  const failed = (run.failed_units || []).map(({ district, kind, url, reason }) =>
    clone("failed-row", { district, kind, url, reason }),
  );
  fillRows(document.querySelector("#failed tbody"), failed, "none");
  if (run.status !== "running") show({ ...run, live: run.live || {} });
}

// The live figures (an event, or the run itself once it ended).
function show(event) {
  const figures = event.live || {};
  setStatus(document.getElementById("status"), event.status);
  // While it runs: the stores written so far (new, updated, unchanged); once it ended: what it stored.
  text("stores", event.status === "running" ? (figures.db_rows ?? figures.stores ?? 0) : stored(event));
  if (last && figures.at && figures.at > last.at) {
    text("rate", ((figures.requests - last.requests) / (figures.at - last.at)).toFixed(1));
  }
  if (figures.at) last = figures;
  text("memory", `${figures.memory_mb ?? "?"} / ${Math.round(figures.budget_mb ?? 0)} MB`);
  text("workers", figures.workers ?? 0);
  text("districts", `${figures.districts_done ?? 0} / ${figures.districts ?? 0}`);
  document.getElementById("stop").hidden = event.status !== "running";
}

text("run-id", runId);
text("title", `Run ${runId}`);
document.title = `Run ${runId} · stage5`;

on(document.getElementById("stop"), "click", async () => {
  if (!confirm(`Stop run ${runId}? It ends interrupted; \`stage5 crawl --resume\` continues it.`)) return;
  await api("POST", `/api/runs/${runId}/stop`, {});
});

start(async () => {
  const events = stream(`/api/runs/${runId}/events`, (event) => {
    show(event);
    if (event.status !== "running") {
      events.close();
      attempt(detail);
    }
  });
  await detail();
});
