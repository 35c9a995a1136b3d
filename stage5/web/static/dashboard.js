// The dashboard: the scheduler (pause, resume, next fire times), the run going now (live), the last runs.
import { api, stream } from "./api.js";
import { every, on, start } from "./page.js";
import { clone, fillRows, setStatus, slot } from "./render.js";
import { when } from "./time.js";

const POLL_MS = 5000;
let running = true; // the scheduler's state as last read: what the toggle does
let watched = null; // the run whose event stream is open, and the stream
let live = null;

async function load(scheduler) {
  showScheduler(scheduler ?? (await api("GET", "/api/scheduler")));
  const runs = await api("GET", "/api/runs?limit=10");
  showRuns(runs);
  watch(runs.find((run) => run.status === "running")?.id ?? null);
}

function showScheduler(scheduler) {
  running = scheduler.running;
  const state = document.getElementById("sched-state");
  state.textContent = running ? "running" : "paused";
  state.className = running ? "ok" : "bad";
  document.getElementById("sched-zone").textContent = scheduler.timezone;
  document.getElementById("toggle").textContent = running ? "Pause" : "Resume";
  const rows = Object.entries(scheduler.next).map(([job, times]) =>
    clone("fire-row", {
      job,
      times: times.map((time) => when(time)).join(", "),
    }),
  );
  fillRows(document.querySelector("#fires tbody"), rows, "no job is enabled");
}

function showRuns(runs) {
  const rows = runs.map((run) => {
    const row = clone("run-row", {
      run: run.id,
      started: when(run.started_at),
      trigger: run.trigger,
      units: `${run.units_done}/${run.units}`,
    });
    slot(row, "run").href = `/runs/${encodeURIComponent(run.id)}`;
    setStatus(slot(row, "status"), run.status);
    return row;
  });
  const none = "no run yet: start one from Jobs (Run now) or with `stage5 crawl`";
  fillRows(document.querySelector("#runs tbody"), rows, none);
}

function watch(runId) {
  if (runId === watched) return;
  live?.close();
  watched = runId;
  live = null;
  const box = document.getElementById("current");
  if (runId === null) {
    box.textContent = "no run is going";
    return;
  }
  live = stream(`/api/runs/${encodeURIComponent(runId)}/events`, (event) => {
    box.replaceChildren(liveRun(runId, event));
  });
}

function liveRun(runId, event) {
  const figures = event.live || {};
  const stored =
    event.status === "running"
      ? (figures.db_rows ?? figures.stores ?? 0)
      : event.stores_new + event.stores_updated + event.stores_unchanged;
  const block = clone("live-run", {
    run: `run ${runId}`,
    stores: stored,
    requests: figures.requests ?? 0,
    memory: `${figures.memory_mb ?? "?"} / ${Math.round(figures.budget_mb ?? 0)}`,
    workers: figures.workers ?? 0,
    districts: `${figures.districts_done ?? 0} / ${figures.districts ?? 0}`,
  });
  slot(block, "run").href = `/runs/${encodeURIComponent(runId)}`;
  setStatus(slot(block, "status"), event.status);
  return block;
}

on(document.getElementById("toggle"), "click", async () => {
  await api("POST", `/api/scheduler/${running ? "stop" : "start"}`, {});
  await load();
});

start(async (scheduler) => {
  every(POLL_MS, () => load());
  await load(scheduler);
});
