const runId = Number(document.body.dataset.run); let last = null;
document.getElementById('run-id').textContent = runId;
document.getElementById('stop').onclick = async () => {
  if (!confirm(`Stop run ${runId}? It ends interrupted; \`stage5 crawl --resume\` continues it.`)) return;
  await api('POST', `/api/runs/${runId}/stop`, {});
};
function stored(r) { return r.stores_new + r.stores_updated + r.stores_unchanged; }
async function detail() {
  const r = await api('GET', '/api/runs/' + runId);
  const ended = r.finished_at ? new Date(r.finished_at) : new Date();
  const facts = [['started', when(r.started_at)], ['duration', duration((ended - new Date(r.started_at)) / 1000) + (r.finished_at ? '' : ' so far')],
    ['trigger', esc(r.trigger)], ['job', esc(r.job || '—')], ['stores stored', `<span id="stored">${stored(r)}</span>`
      + ` (${r.stores_new} new, ${r.stores_updated} updated, ${r.stores_unchanged} unchanged)`]];
  if (r.error) facts.push(['error', esc(r.error)]);
  document.getElementById('facts').innerHTML = facts.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join('');
  document.getElementById('units').innerHTML = '<tr><th>district</th><th>done</th><th>failed</th><th>units</th></tr>'
    + (r.district_units.length ? r.district_units.map(d => row([esc(d.district), d.done, d.failed, d.units])).join('') : empty(4, 'no unit planned yet'));
  const failed = r.failed_units || [];
  document.getElementById('failed').innerHTML = failed.length
    ? failed.map(f => row([esc(f.district), esc(f.kind), esc(f.url), esc(f.reason)])).join('') : empty(4, 'none');
  if (r.status !== 'running') show({status: r.status, live: r.live || {}, ...r});
}
function show(e) {
  const l = e.live || {};
  document.getElementById('status').innerHTML = badge(e.status);
  // While it runs: the stores written so far (new, updated, unchanged); once it ended: what the run stored.
  document.getElementById('stores').textContent = e.status === 'running' ? (l.db_rows ?? l.stores ?? 0) : stored(e);
  if (last && l.at && l.at > last.at) document.getElementById('rate').textContent = ((l.requests - last.requests) / (l.at - last.at)).toFixed(1);
  if (l.at) last = l;
  document.getElementById('memory').textContent = `${l.memory_mb ?? '?'} / ${Math.round(l.budget_mb ?? 0)} MB`;
  document.getElementById('workers').textContent = l.workers ?? 0;
  document.getElementById('districts').textContent = `${l.districts_done ?? 0} / ${l.districts ?? 0}`;
  document.getElementById('stop').hidden = e.status !== 'running';
}
start(() => {
  detail();
  const events = stream(`/api/runs/${runId}/events`, (e) => { show(e); if (e.status !== 'running') { events.close(); detail(); } });
});
