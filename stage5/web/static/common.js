// Shared by every page: the token (kept for this tab's session), API calls, the event stream, times.
let token = sessionStorage.getItem('stage5-token') || '';
let TZ = 'UTC';  // the console's configured zone (from /api/scheduler); every time is shown in it
async function api(method, path, body) {
  const headers = {'Content-Type': 'application/json'};
  if (token) headers['Authorization'] = 'Bearer ' + token;
  const r = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  const data = await r.json();
  if (r.status === 401) { signIn(data.error); throw data; }
  if (!r.ok) { say(data.error || data.reason || ('HTTP ' + r.status)); throw data; }
  return data;
}
function say(text) { const e = document.getElementById('error'); if (e) e.textContent = text || ''; }
function signIn(reason) {
  document.getElementById('content').hidden = true;
  const form = document.getElementById('signin');
  form.hidden = false;
  say(token ? 'the token was refused: ' + reason : '');
}
// Start the page once the API answers: with a token set and none given, the sign-in form comes first
// and the page's data is never asked for.
async function start(init) {
  document.getElementById('signin').onsubmit = (e) => {
    e.preventDefault();
    token = new FormData(e.target).get('token');
    sessionStorage.setItem('stage5-token', token);
    e.target.hidden = true; start(init);
  };
  const out = document.getElementById('signout');
  out.hidden = !token;
  out.onclick = () => { sessionStorage.removeItem('stage5-token'); token = ''; location.reload(); };
  let s;
  try { s = await api('GET', '/api/scheduler'); } catch (x) { return; }
  TZ = s.timezone || 'UTC';
  say(''); document.getElementById('content').hidden = false;
  init(s);
}
// A server-sent event stream read with fetch (EventSource cannot send the token); close() ends it.
function stream(path, onEvent) {
  const abort = new AbortController();
  (async () => {
    const headers = token ? {'Authorization': 'Bearer ' + token} : {};
    const r = await fetch(path, {headers, signal: abort.signal});
    if (!r.ok) { say('live view: HTTP ' + r.status + (r.headers.get('Retry-After') ? ', retrying' : '')); setTimeout(() => { if (!abort.signal.aborted) stream(path, onEvent); }, 5000); return; }
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const chunk = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        if (chunk.startsWith('data: ')) onEvent(JSON.parse(chunk.slice(6)));
      }
    }
  })().catch(() => {});
  return {close: () => abort.abort()};
}
function esc(s) { return String(s ?? '').replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c])); }
function row(cells) { return '<tr>' + cells.map(c => '<td>' + c + '</td>').join('') + '</tr>'; }
function empty(columns, text) { return `<tr><td colspan="${columns}" class="empty">${esc(text)}</td></tr>`; }
// A time in the console's zone, with the zone's name: 2026-12-02 14:30:05 Asia/Seoul
function when(t, zone) {
  if (!t) return '';
  const z = zone || TZ;
  const parts = new Intl.DateTimeFormat('sv-SE', {timeZone: z, year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false}).format(new Date(t));
  return `${parts} ${z}`;
}
function duration(seconds) {
  if (seconds === null || seconds === undefined) return '';
  const s = Math.round(seconds), h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60);
  return h ? `${h} h ${m} min` : m ? `${m} min ${s % 60} s` : `${s} s`;
}
function badge(status) { return `<span class="status status-${esc(status)}">${esc(status)}</span>`; }
