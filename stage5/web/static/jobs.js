let jobs = [];
async function load(s) {
  s = s || await api('GET', '/api/scheduler');
  jobs = await api('GET', '/api/jobs');
  const defaults = document.getElementById('defaults');
  defaults.hidden = jobs.length > 0;  // nothing stored: the scheduler runs the file's jobs or the defaults
  document.getElementById('default-jobs').innerHTML = '<tr><th>job</th><th>kind</th><th>cron</th><th>timezone</th><th></th></tr>'
    + (s.jobs || []).map(j => row([esc(j.name), esc(j.kind), esc(j.cron), esc(j.timezone),
      `<button data-disable-default="${esc(j.name)}">Disable</button>`])).join('');
  document.querySelectorAll('[data-disable-default]').forEach(b => b.onclick = async () => {
    await api('POST', '/api/jobs/presets', {});
    const stored = (await api('GET', '/api/jobs')).find(j => j.name === b.dataset.disableDefault);
    if (stored) await api('PATCH', '/api/jobs/' + stored.id, {enabled: false});
    load();
  });
  document.getElementById('jobs').innerHTML = '<tr><th>job</th><th>kind</th><th>cron</th><th>timezone</th><th>enabled</th><th>parameters</th><th></th></tr>'
    + (jobs.length ? jobs.map(j => row([esc(j.name), esc(j.kind), esc(j.cron), esc(j.timezone),
      `<input type="checkbox" data-enable="${j.id}" ${j.enabled ? 'checked' : ''}>`, esc(JSON.stringify(j.params)),
      `<button data-run="${j.id}">Run now</button><button data-history="${j.id}" data-name="${esc(j.name)}">History</button><button data-edit="${j.id}">Edit</button><button data-delete="${j.id}" data-name="${esc(j.name)}">Delete</button>`])).join('')
      : empty(7, 'no job stored yet'));
  document.querySelectorAll('[data-enable]').forEach(b => b.onchange = async () => { await api('PATCH', '/api/jobs/' + b.dataset.enable, {enabled: b.checked}); load(); });
  document.querySelectorAll('[data-run]').forEach(b => b.onclick = () => runNow(b.dataset.run));
  document.querySelectorAll('[data-edit]').forEach(b => b.onclick = () => edit(jobs.find(j => String(j.id) === b.dataset.edit)));
  document.querySelectorAll('[data-delete]').forEach(b => b.onclick = async () => {
    if (!confirm(`Delete the job ${b.dataset.name}? Its runs stay; its schedule is gone.`)) return;
    await api('DELETE', '/api/jobs/' + b.dataset.delete); load();
  });
  document.querySelectorAll('[data-history]').forEach(b => b.onclick = () => jobHistory(b.dataset.history, b.dataset.name));
}
async function runNow(id) {
  const notice = document.getElementById('notice');
  let d;
  try { d = await api('POST', `/api/jobs/${id}/run`, {}); } catch (x) {
    if (x.status) { say(`Run now skipped: ${x.reason || x.status}`); notice.textContent = ''; jobHistory(id, x.job); }
    return;
  }
  say(''); notice.textContent = `${d.job}: started`;
  jobHistory(id, d.job);
}
let shown = null;  // the job whose history is shown: refreshed, so a run started now appears
async function jobHistory(id, name) {
  shown = {id, name};
  const items = await api('GET', `/api/jobs/${id}/runs?limit=20`);
  document.getElementById('history-title').textContent = 'History of ' + name;
  document.getElementById('history').innerHTML = items.length ? items.map(i => i.kind === 'run'
    ? row([`<a href="/runs/${i.id}">run ${i.id}</a>`, badge(i.status), when(i.started_at)])
    : row(['slot', badge(i.status), when(i.slot_at) + ' ' + esc(i.reason || '')])).join('') : empty(3, 'no run or slot yet');
}
document.getElementById('presets').onclick = async () => { await api('POST', '/api/jobs/presets', {}); load(); };
let editing = null;  // the job the form edits (null: the form creates one)
function edit(job) {
  const form = document.getElementById('form');
  editing = job.id;
  const field = (n) => form.elements.namedItem(n);  // not form.name: that is the form's own name
  field('name').value = job.name; field('kind').value = job.kind; field('cron').value = job.cron;
  field('timezone').value = job.timezone; field('params').value = JSON.stringify(job.params);
  form.querySelector('button[type=submit]').textContent = 'Save';
  document.getElementById('form-title').textContent = 'Edit ' + job.name;
}
document.getElementById('form').onsubmit = async (e) => {
  e.preventDefault(); const f = new FormData(e.target);
  let params; try { params = JSON.parse(f.get('params') || '{}'); } catch (x) { say('parameters: not JSON'); return; }
  const body = {name: f.get('name'), kind: f.get('kind'), cron: f.get('cron'), timezone: f.get('timezone') || TZ, params};
  if (editing === null) await api('POST', '/api/jobs', body); else await api('PATCH', '/api/jobs/' + editing, body);
  editing = null; e.target.querySelector('button[type=submit]').textContent = 'Create';
  document.getElementById('form-title').textContent = 'New job';
  say(''); load();
};
start((s) => {
  document.getElementById('form').elements.namedItem('timezone').placeholder = s.timezone;
  load(s);
  setInterval(() => { if (shown) jobHistory(shown.id, shown.name); }, 2000);
});
