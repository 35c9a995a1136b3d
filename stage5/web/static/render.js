// Rows and blocks copied from <template> elements. Data goes in as text (textContent) and attribute
// values only, never as markup: a store named <img onerror=…> shows as those characters.

// A copy of <template id=…>'s one element, the [data-slot] elements named in `texts` given their text.
export function clone(templateId, texts = {}) {
  const template = document.getElementById(templateId);
  const element = template.content.firstElementChild.cloneNode(true);
  for (const [name, text] of Object.entries(texts)) {
    slot(element, name).textContent = String(text ?? "");
  }
  return element;
}

export function slot(element, name) {
  const found = element.querySelector(`[data-slot="${name}"]`);
  if (!found) throw new Error(`the template has no slot "${name}"`);
  return found;
}

// A run, unit or change status: its text, coloured by its class.
export function setStatus(element, status) {
  element.textContent = status ?? "";
  element.className = `status status-${status}`;
}

// The body's rows replaced by `rows`; none: one row saying `emptyText` across the table (if any).
export function fillRows(tbody, rows, emptyText = "") {
  if (rows.length || !emptyText) {
    tbody.replaceChildren(...rows);
    return;
  }
  const cell = document.createElement("td");
  cell.className = "empty";
  cell.colSpan = columns(tbody);
  cell.textContent = emptyText;
  const row = document.createElement("tr");
  row.append(cell);
  tbody.replaceChildren(row);
}

// The table's columns: its header's cells, else the body's data-columns.
function columns(tbody) {
  const header = tbody.closest("table").tHead;
  return header ? header.rows[0].cells.length : Number(tbody.dataset.columns || 1);
}
