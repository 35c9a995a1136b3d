const LAT = [37.42, 37.71], LNG = [126.76, 127.19], PAGE = 50;
const x = lng => (lng - LNG[0]) / (LNG[1] - LNG[0]) * 640, y = lat => 480 - (lat - LAT[0]) / (LAT[1] - LAT[0]) * 480;
let districts = [], offset = 0, total = 0;
async function init() {
  districts = await api('GET', '/api/districts');
  document.getElementById('district').innerHTML += districts.map(d => `<option>${esc(d.name)}</option>`).join('');
  show();
}
function filters() {
  const f = new FormData(document.getElementById('filter'));
  return new URLSearchParams([...f.entries()].filter(([k, v]) => v));
}
async function show() {
  const qs = filters(); const sort = qs.get('sort'); qs.delete('sort'); qs.set('limit', '5000');
  const all = await api('GET', '/api/stores?' + qs);  // the map: every store the filter matches
  total = all.total;
  document.getElementById('count').textContent = total + ' stores';
  const labels = districts.map(d => `<text x="${x(d.lng)}" y="${y(d.lat)}" font-size="11" fill="#789" text-anchor="middle">${esc(d.name)}</text>`).join('');
  const dots = all.stores.map(s => `<circle class="store" cx="${x(s.lng).toFixed(1)}" cy="${y(s.lat).toFixed(1)}" r="2.5" fill="${s.refill ? '#c33' : '#36c'}"><title>${esc(s.name)}</title></circle>`).join('');
  document.getElementById('map').innerHTML = labels + dots;
  if (sort) qs.set('sort', sort);
  await table(qs);
}
async function table(qs) {
  qs = qs || filters(); qs.set('limit', String(PAGE)); qs.set('offset', String(offset));
  const data = await api('GET', '/api/stores?' + qs);
  document.getElementById('stores').innerHTML = '<tr><th>name</th><th>district</th><th>address</th><th>all-you-can-eat</th><th>price</th><th>rating</th></tr>'
    + (data.stores.length ? data.stores.map(s => row([`<a href="#${esc(s.rid)}" data-rid="${esc(s.rid)}">${esc(s.name)}</a>`, esc(s.district), esc(s.address),
      s.refill ? 'yes' : '', esc(s.price_min ?? ''), esc(s.rating ?? '')])).join('') : empty(6, 'no store matches: change the filter, or crawl first'));
  document.getElementById('page').textContent = data.total
    ? `${offset + 1}–${offset + data.stores.length} of ${data.total}` : '';
  document.getElementById('prev').disabled = offset === 0;
  document.getElementById('next').disabled = offset + PAGE >= data.total;
  document.querySelectorAll('[data-rid]').forEach(a => a.onclick = (e) => { e.preventDefault(); store(a.dataset.rid); });
}
async function store(rid) {
  const s = await api('GET', '/api/stores/' + encodeURIComponent(rid));
  const box = document.getElementById('store'); box.hidden = false;
  document.getElementById('store-name').textContent = s.name + (s.branch ? ' ' + s.branch : '');
  const facts = [['district', s.district], ['address', s.address], ['phone', s.phone_number], ['status', s.status],
    ['all-you-can-eat', s.is_confirmed_refill ? 'yes' : 'no'], ['price', s.price], ['hours', s.open_hours],
    ['first seen', when(s.created_at)], ['last seen', when(s.last_seen_at)]];
  document.getElementById('store-facts').innerHTML = facts.filter(([, v]) => v).map(([k, v]) => `<dt>${k}</dt><dd>${esc(v)}</dd>`).join('');
  document.getElementById('store-history').innerHTML = '<tr><th>when</th><th>change</th><th>run</th><th>fields</th></tr>'
    + (s.history.length ? s.history.map(h => row([when(h.changed_at), badge(h.kind), `<a href="/runs/${h.run_id}">${h.run_id}</a>`,
      esc(Object.entries(h.fields || {}).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join('; '))])).join('') : empty(4, 'no change recorded'));
  box.scrollIntoView();
}
document.getElementById('filter').onsubmit = (e) => { e.preventDefault(); offset = 0; show(); };
document.getElementById('prev').onclick = () => { offset = Math.max(0, offset - PAGE); table(); };
document.getElementById('next').onclick = () => { offset += PAGE; table(); };
start(init);
