// Stores: filter, an SVG map of every store the filter matches, the table by pages of 50, and one
// store's facts with its change history.
import { api } from "./api.js";
import { delegate, on, start } from "./page.js";
import { clone, fillRows, setStatus, slot } from "./render.js";
import { when } from "./time.js";

const PAGE = 50;
const MAP_LIMIT = 5000;
const LAT = [37.42, 37.71]; // Seoul's box on the 640 x 480 map
const LNG = [126.76, 127.19];
const SVG = "http://www.w3.org/2000/svg"; // the namespace's name, not a place anything is loaded from
let districts = [];
let offset = 0;

const x = (lng) => ((lng - LNG[0]) / (LNG[1] - LNG[0])) * 640;
const y = (lat) => 480 - ((lat - LAT[0]) / (LAT[1] - LAT[0])) * 480;

function svg(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

// The filter form's non-empty fields.
function filters() {
  const values = new FormData(document.getElementById("filter"));
  return new URLSearchParams([...values.entries()].filter(([, value]) => value));
}

async function init() {
  districts = await api("GET", "/api/districts");
  const options = districts.map((district) => new Option(district.name, district.name));
  document.getElementById("district").append(...options);
  await show();
}

async function show() {
  const query = filters();
  const sort = query.get("sort");
  query.delete("sort");
  query.set("limit", String(MAP_LIMIT));
  const all = await api("GET", `/api/stores?${query}`); // the map: every store the filter matches
  document.getElementById("count").textContent = `${all.total} stores`;
  drawMap(all.stores);
  if (sort) query.set("sort", sort);
  await table(query);
}

function drawMap(stores) {
  const labels = districts.map((d) => svg("text", { x: x(d.lng), y: y(d.lat), class: "district" }, d.name));
  const dots = stores.map((store) => {
    const dot = svg("circle", {
      class: store.refill ? "store refill" : "store",
      cx: x(store.lng).toFixed(1),
      cy: y(store.lat).toFixed(1),
      r: 2.5,
    });
    dot.append(svg("title", {}, store.name));
    return dot;
  });
  document.getElementById("map").replaceChildren(...labels, ...dots);
}

async function table(query = filters()) {
  query.set("limit", String(PAGE));
  query.set("offset", String(offset));
  const page = await api("GET", `/api/stores?${query}`);
  const rows = page.stores.map((store) => {
    const row = clone("store-row", {
      name: store.name,
      district: store.district,
      address: store.address,
      refill: store.refill ? "yes" : "",
      price: store.price_min,
      rating: store.rating,
    });
    row.dataset.rid = store.rid;
    slot(row, "name").href = `#${encodeURIComponent(store.rid)}`;
    return row;
  });
  const none = "no store matches: change the filter, or crawl first";
  fillRows(document.querySelector("#stores tbody"), rows, none);
  document.getElementById("page").textContent = page.total
    ? `${offset + 1}–${offset + page.stores.length} of ${page.total}`
    : "";
  document.getElementById("prev").disabled = offset === 0;
  document.getElementById("next").disabled = offset + PAGE >= page.total;
}

async function showStore(rid) {
  const store = await api("GET", `/api/stores/${encodeURIComponent(rid)}`);
  const box = document.getElementById("store");
  box.hidden = false;
  document.getElementById("store-name").textContent = store.name + (store.branch ? ` ${store.branch}` : "");
  const facts = [
    ["district", store.district],
    ["address", store.address],
    ["phone", store.phone_number],
    ["status", store.status],
    ["all-you-can-eat", store.is_confirmed_refill ? "yes" : "no"],
    ["price", store.price],
    ["hours", store.open_hours],
    ["first seen", when(store.created_at)],
    ["last seen", when(store.last_seen_at)],
  ];
  const shown = facts.filter(([, value]) => value).map(([name, value]) => clone("store-fact", { name, value }));
  document.getElementById("store-facts").replaceChildren(...shown);
  fillRows(document.querySelector("#store-history tbody"), store.history.map(changeRow), "no change recorded");
  box.scrollIntoView();
}

function changeRow(change) {
  const fields = Object.entries(change.fields || {}).map(([key, value]) => `${key}: ${JSON.stringify(value)}`);
  const row = clone("change-row", {
    when: when(change.changed_at),
    run: change.run_id,
    fields: fields.join("; "),
  });
  setStatus(slot(row, "kind"), change.kind);
  slot(row, "run").href = `/runs/${encodeURIComponent(change.run_id)}`;
  return row;
}

on(document.getElementById("filter"), "submit", (event) => {
  event.preventDefault();
  offset = 0;
  return show();
});
on(document.getElementById("prev"), "click", () => {
  offset = Math.max(0, offset - PAGE);
  return table();
});
on(document.getElementById("next"), "click", () => {
  offset += PAGE;
  return table();
});
delegate(document.querySelector("#stores tbody"), "click", "a[data-action=store]", (link, event) => {
  event.preventDefault();
  return showStore(link.closest("tr").dataset.rid);
});

start(init);
