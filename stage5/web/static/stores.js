const LAT = [37.42, 37.71], LNG = [126.76, 127.19];
const x = lng => (lng - LNG[0]) / (LNG[1] - LNG[0]) * 640, y = lat => 480 - (lat - LAT[0]) / (LAT[1] - LAT[0]) * 480;
let districts = [];
async function init() {
  districts = await api('GET', '/api/districts');
  document.getElementById('district').innerHTML += districts.map(d => `<option>${esc(d.name)}</option>`).join('');
  show();
}
async function show() {
  const f = new FormData(document.getElementById('filter'));
  const qs = new URLSearchParams([...f.entries()].filter(([k, v]) => v)); qs.set('limit', '5000');
  const data = await api('GET', '/api/stores?' + qs);
  document.getElementById('count').textContent = data.stores.length + ' stores';
  const labels = districts.map(d => `<text x="${x(d.lng)}" y="${y(d.lat)}" font-size="11" fill="#789" text-anchor="middle">${esc(d.name)}</text>`).join('');
  const dots = data.stores.map(s => `<circle class="store" cx="${x(s.lng).toFixed(1)}" cy="${y(s.lat).toFixed(1)}" r="2.5" fill="${s.refill ? '#c33' : '#36c'}"><title>${esc(s.name)}</title></circle>`).join('');
  document.getElementById('map').innerHTML = labels + dots;
  document.getElementById('stores').innerHTML = '<tr><th>name</th><th>district</th><th>address</th><th>all-you-can-eat</th><th>price</th></tr>'
    + data.stores.slice(0, 200).map(s => row([esc(s.name), esc(s.district), esc(s.address), s.refill ? 'yes' : '', esc(s.price_min ?? '')])).join('');
}
document.getElementById('filter').onsubmit = (e) => { e.preventDefault(); show(); };
init();
