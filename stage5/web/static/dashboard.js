async function load() {
  const s = await api('GET', '/api/scheduler');
  document.getElementById('sched').innerHTML = (s.running ? '<span class="ok">running</span>' : '<span class="bad">paused</span>')
    + ` (${esc(s.timezone)}) <button id="toggle">${s.running ? 'Pause' : 'Resume'}</button>`;
  document.getElementById('toggle').onclick = async () => { await api('POST', '/api/scheduler/' + (s.running ? 'stop' : 'start'), {}); load(); };
  document.getElementById('fires').innerHTML = '<tr><th>job</th><th>next fire times</th></tr>'
    + Object.entries(s.next).map(([j, t]) => row([esc(j), t.map(when).join(', ')])).join('');
  const runs = await api('GET', '/api/runs?limit=10');
  document.getElementById('runs').innerHTML = '<tr><th>run</th><th>status</th><th>started</th><th>units</th></tr>'
    + runs.map(r => row([`<a href="/runs/${r.id}">${r.id}</a>`, esc(r.status), when(r.started_at), `${r.units_done}/${r.units}`])).join('');
  const going = runs.find(r => r.status === 'running');
  watch(going ? going.id : null);
}
let watched = null, stream = null;  // the current run's event stream, figures updated as they come
function watch(runId) {
  if (runId === watched) return;
  if (stream) stream.close();
  watched = runId; stream = null;
  const box = document.getElementById('current');
  if (runId === null) { box.textContent = 'no run is going'; return; }
  stream = new EventSource(`/api/runs/${runId}/events`);
  stream.onmessage = (m) => {
    const e = JSON.parse(m.data), l = e.live || {};
    box.innerHTML = `<a href="/runs/${runId}">run ${runId}</a> ${esc(e.status)}: stores <b id="live-stores">${l.stores ?? 0}</b>,`
      + ` ${l.requests ?? 0} requests, memory ${l.memory_mb ?? '?'} / ${Math.round(l.budget_mb ?? 0)} MB,`
      + ` workers ${l.workers ?? 0}, districts ${l.districts_done ?? 0} / ${l.districts ?? 0}`;
    if (e.status !== 'running') { stream.close(); stream = null; }
  };
}
load(); setInterval(load, 5000);
