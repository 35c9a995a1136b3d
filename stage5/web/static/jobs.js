// Jobs: the scheduler's defaults while none is stored, the stored jobs (enable, run now, history, edit,
// delete), the form that creates or edits one, and the history of the job picked (refreshed).
import { api } from "./api.js";
import { clearError, showError } from "./notice.js";
import { delegate, every, on, start } from "./page.js";
import { clone, fillRows, setStatus, slot } from "./render.js";
import { consoleZone, when } from "./time.js";

const HISTORY_MS = 2000;
const form = document.getElementById("form");
let jobs = []; // as last listed
let shown = null; // {id, name}: the job whose history is shown, refreshed so a run started now appears
let editing = null; // the id of the job the form edits (null: the form creates one)

async function load(scheduler) {
  scheduler ??= await api("GET", "/api/scheduler");
  jobs = await api("GET", "/api/jobs");
  // Nothing stored: the scheduler runs the schedule file's jobs or the defaults.
  document.getElementById("defaults").hidden = jobs.length > 0;
  const defaults = (scheduler.jobs || []).map((job) => {
    const row = clone("default-job-row", pick(job));
    row.dataset.name = job.name;
    return row;
  });
  fillRows(document.querySelector("#default-jobs tbody"), defaults);
  fillRows(document.querySelector("#jobs tbody"), jobs.map(jobRow), "no job stored yet");
}

function pick(job) {
  return {
    name: job.name,
    kind: job.kind,
    cron: job.cron,
    timezone: job.timezone,
  };
}

function jobRow(job) {
  const row = clone("job-row", {
    ...pick(job),
    params: JSON.stringify(job.params),
  });
  row.dataset.id = job.id;
  row.querySelector("[data-action=enable]").checked = job.enabled;
  return row;
}

function jobOf(element) {
  const id = element.closest("tr").dataset.id;
  return jobs.find((job) => String(job.id) === id);
}

async function runNow(job) {
  const notice = document.getElementById("notice");
  let decision;
  try {
    decision = await api("POST", `/api/jobs/${job.id}/run`, {});
  } catch (error) {
    const refused = error.body; // a 409 says why it did not start: {job, status, reason}
    if (!refused?.status) throw error;
    showError(`Run now skipped: ${refused.reason || refused.status}`, "run now");
    notice.textContent = "";
    await showHistory(job.id, refused.job);
    return;
  }
  clearError();
  notice.textContent = `${decision.job}: started`;
  await showHistory(job.id, decision.job);
}

async function showHistory(id, name) {
  shown = { id, name };
  const items = await api("GET", `/api/jobs/${id}/runs?limit=20`);
  document.getElementById("history-title").textContent = `History of ${name}`;
  fillRows(document.querySelector("#history tbody"), items.map(historyRow), "no run or slot yet");
}

function historyRow(item) {
  if (item.kind === "run") {
    const row = clone("history-run", {
      run: `run ${item.id}`,
      when: when(item.started_at),
    });
    slot(row, "run").href = `/runs/${encodeURIComponent(item.id)}`;
    setStatus(slot(row, "status"), item.status);
    return row;
  }
  const row = clone("history-slot", {
    when: `${when(item.slot_at)} ${item.reason || ""}`,
  });
  setStatus(slot(row, "status"), item.status);
  return row;
}

function field(name) {
  return form.elements.namedItem(name); // not form.name: that is the form's own name
}

function edit(job) {
  editing = job.id;
  field("name").value = job.name;
  field("kind").value = job.kind;
  field("cron").value = job.cron;
  field("timezone").value = job.timezone;
  field("params").value = JSON.stringify(job.params);
  form.querySelector("button[type=submit]").textContent = "Save";
  document.getElementById("form-title").textContent = `Edit ${job.name}`;
}

async function save(event) {
  event.preventDefault();
  const values = new FormData(form);
  let params;
  try {
    params = JSON.parse(values.get("params") || "{}");
  } catch {
    showError("parameters: not JSON", "form");
    return;
  }
  const body = {
    name: values.get("name"),
    kind: values.get("kind"),
    cron: values.get("cron"),
    timezone: values.get("timezone") || consoleZone(),
    params,
  };
  if (editing === null) await api("POST", "/api/jobs", body);
  else await api("PATCH", `/api/jobs/${editing}`, body);
  editing = null;
  form.querySelector("button[type=submit]").textContent = "Create";
  document.getElementById("form-title").textContent = "New job";
  clearError();
  await load();
}

// Disabling one of the scheduler's defaults stores them all (the presets), then switches that one off.
async function disableDefault(button) {
  const name = button.closest("tr").dataset.name;
  await api("POST", "/api/jobs/presets", {});
  const stored = (await api("GET", "/api/jobs")).find((job) => job.name === name);
  if (stored) await api("PATCH", `/api/jobs/${stored.id}`, { enabled: false });
  await load();
}

async function remove(job) {
  if (!confirm(`Delete the job ${job.name}? Its runs stay; its schedule is gone.`)) return;
  await api("DELETE", `/api/jobs/${job.id}`);
  await load();
}

async function enable(box) {
  await api("PATCH", `/api/jobs/${jobOf(box).id}`, { enabled: box.checked });
  await load();
}

const ACTIONS = {
  run: runNow,
  history: (job) => showHistory(job.id, job.name),
  edit,
  delete: remove,
};

const table = document.querySelector("#jobs tbody");
delegate(table, "click", "button[data-action]", (button) => ACTIONS[button.dataset.action](jobOf(button)));
delegate(table, "change", "input[data-action=enable]", enable);
delegate(document.querySelector("#default-jobs tbody"), "click", "button[data-action]", disableDefault);
on(document.getElementById("presets"), "click", async () => {
  await api("POST", "/api/jobs/presets", {});
  await load();
});
on(form, "submit", save);

start(async (scheduler) => {
  field("timezone").placeholder = scheduler.timezone;
  every(HISTORY_MS, () => (shown ? showHistory(shown.id, shown.name) : undefined));
  await load(scheduler);
});
