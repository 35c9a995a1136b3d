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
  document.getElementById('current').innerHTML = going ? `<a href="/runs/${going.id}">run ${going.id} is going: watch it live</a>` : 'no run is going';
}
load(); setInterval(load, 5000);
