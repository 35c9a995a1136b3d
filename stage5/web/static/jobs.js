async function load() {
  const jobs = await api('GET', '/api/jobs');
  document.getElementById('jobs').innerHTML = '<tr><th>job</th><th>kind</th><th>cron</th><th>enabled</th><th>parameters</th><th></th></tr>'
    + jobs.map(j => row([esc(j.name), esc(j.kind), esc(j.cron),
      `<input type="checkbox" data-enable="${j.id}" ${j.enabled ? 'checked' : ''}>`, esc(JSON.stringify(j.params)),
      `<button data-run="${j.id}">Run now</button><button data-history="${j.id}" data-name="${esc(j.name)}">History</button><button data-edit="${j.id}">Edit</button><button data-delete="${j.id}">Delete</button>`])).join('');
  document.querySelectorAll('[data-enable]').forEach(b => b.onchange = async () => { await api('PATCH', '/api/jobs/' + b.dataset.enable, {enabled: b.checked}); load(); });
  document.querySelectorAll('[data-run]').forEach(b => b.onclick = async () => { const d = await api('POST', `/api/jobs/${b.dataset.run}/run`, {}); document.getElementById('error').textContent = ''; jobHistory(b.dataset.run, d.job); });
  document.querySelectorAll('[data-edit]').forEach(b => b.onclick = () => edit(jobs.find(j => String(j.id) === b.dataset.edit)));
  document.querySelectorAll('[data-delete]').forEach(b => b.onclick = async () => { await api('DELETE', '/api/jobs/' + b.dataset.delete); load(); });
  document.querySelectorAll('[data-history]').forEach(b => b.onclick = () => jobHistory(b.dataset.history, b.dataset.name));
}
let shown = null;  // the job whose history is shown: refreshed, so a run started now appears
async function jobHistory(id, name) {
  shown = {id, name};
  const items = await api('GET', `/api/jobs/${id}/runs?limit=20`);
  document.getElementById('history-title').textContent = 'History of ' + name;
  document.getElementById('history').innerHTML = items.map(i => i.kind === 'run'
    ? row([`<a href="/runs/${i.id}">run ${i.id}</a>`, esc(i.status), when(i.started_at)])
    : row(['slot', esc(i.status), when(i.slot_at) + ' ' + esc(i.reason || '')])).join('');
}
document.getElementById('presets').onclick = async () => { await api('POST', '/api/jobs/presets', {}); load(); };
let editing = null;  // the job the form edits (null: the form creates one)
function edit(job) {
  const form = document.getElementById('form');
  editing = job.id;
  const field = (n) => form.elements.namedItem(n);  // not form.name: that is the form's own name
  field('name').value = job.name; field('kind').value = job.kind; field('cron').value = job.cron;
  field('params').value = JSON.stringify(job.params);
  form.querySelector('button[type=submit]').textContent = 'Save';
  document.getElementById('form-title').textContent = 'Edit ' + job.name;
}
document.getElementById('form').onsubmit = async (e) => {
  e.preventDefault(); const f = new FormData(e.target);
  let params; try { params = JSON.parse(f.get('params') || '{}'); } catch (x) { document.getElementById('error').textContent = 'parameters: not JSON'; return; }
  const body = {name: f.get('name'), kind: f.get('kind'), cron: f.get('cron'), params};
  if (editing === null) await api('POST', '/api/jobs', body); else await api('PATCH', '/api/jobs/' + editing, body);
  editing = null; e.target.querySelector('button[type=submit]').textContent = 'Create';
  document.getElementById('form-title').textContent = 'New job';
  document.getElementById('error').textContent = ''; load();
};
load();
setInterval(() => { if (shown) jobHistory(shown.id, shown.name); }, 2000);
