const runId = Number(document.body.dataset.run); let last = null;
document.getElementById('run-id').textContent = runId;
document.getElementById('stop').onclick = () => api('POST', `/api/runs/${runId}/stop`, {});
async function detail() {
  const r = await api('GET', '/api/runs/' + runId);
  document.getElementById('units').innerHTML = '<tr><th>district</th><th>done</th><th>failed</th><th>units</th></tr>'
    + r.district_units.map(d => row([esc(d.district), d.done, d.failed, d.units])).join('');
  document.getElementById('failed').innerHTML = (r.failed_units || []).map(f => row([esc(f.district), esc(f.kind), esc(f.url), esc(f.reason)])).join('');
}
const events = new EventSource(`/api/runs/${runId}/events`);
events.onmessage = (m) => {
  const e = JSON.parse(m.data), l = e.live || {};
  document.getElementById('status').textContent = e.status;
  document.getElementById('stores').textContent = l.stores ?? (e.stores_new + e.stores_updated + e.stores_unchanged);
  if (last && l.at && l.at > last.at) document.getElementById('rate').textContent = ((l.requests - last.requests) / (l.at - last.at)).toFixed(1);
  if (l.at) last = l;
  document.getElementById('memory').textContent = `${l.memory_mb ?? '?'} / ${Math.round(l.budget_mb ?? 0)} MB`;
  document.getElementById('workers').textContent = l.workers ?? 0;
  document.getElementById('districts').textContent = `${l.districts_done ?? 0} / ${l.districts ?? 0}`;
  if (e.status !== 'running') { events.close(); detail(); }
};
detail();
