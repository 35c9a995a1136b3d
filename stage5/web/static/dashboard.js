async function load(s) {
  s = s || await api('GET', '/api/scheduler');
  document.getElementById('sched').innerHTML = (s.running ? '<span class="ok">running</span>' : '<span class="bad">paused</span>')
    + ` (times in ${esc(s.timezone)}) <button id="toggle">${s.running ? 'Pause' : 'Resume'}</button>`;
  document.getElementById('toggle').onclick = async () => { await api('POST', '/api/scheduler/' + (s.running ? 'stop' : 'start'), {}); load(); };
  const fires = Object.entries(s.next);
  document.getElementById('fires').innerHTML = '<tr><th>job</th><th>next fire times</th></tr>'
    + (fires.length ? fires.map(([j, t]) => row([esc(j), t.map(x => when(x)).join(', ')])).join('') : empty(2, 'no job is enabled'));
  const runs = await api('GET', '/api/runs?limit=10');
  document.getElementById('runs').innerHTML = '<tr><th>run</th><th>status</th><th>started</th><th>trigger</th><th>units</th></tr>'
    + (runs.length ? runs.map(r => row([`<a href="/runs/${r.id}">${r.id}</a>`, badge(r.status), when(r.started_at), esc(r.trigger), `${r.units_done}/${r.units}`])).join('')
      : empty(5, 'no run yet: start one from Jobs (Run now) or with `stage5 crawl`'));
  const going = runs.find(r => r.status === 'running');
  watch(going ? going.id : null);
}
let watched = null, live = null;  // the current run's event stream, figures updated as they come
function watch(runId) {
  if (runId === watched) return;
  if (live) live.close();
  watched = runId; live = null;
  const box = document.getElementById('current');
  if (runId === null) { box.textContent = 'no run is going'; return; }
  live = stream(`/api/runs/${runId}/events`, (e) => {
    const l = e.live || {};
    const stored = e.status === 'running' ? (l.db_rows ?? l.stores ?? 0) : e.stores_new + e.stores_updated + e.stores_unchanged;
    box.innerHTML = `<a href="/runs/${runId}">run ${runId}</a> ${badge(e.status)}: stores <b id="live-stores">${stored}</b>,`
      + ` ${l.requests ?? 0} requests, memory ${l.memory_mb ?? '?'} / ${Math.round(l.budget_mb ?? 0)} MB,`
      + ` workers ${l.workers ?? 0}, districts ${l.districts_done ?? 0} / ${l.districts ?? 0}`;
  });
}
start((s) => { load(s); setInterval(load, 5000); });
