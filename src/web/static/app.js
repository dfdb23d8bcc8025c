// scangate results page: filter the table as you type. The server filters from the query
// string too; this only hides the rows that do not match (the `hidden` attribute) and updates
// the count of rows shown.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("filters");
  const table = document.querySelector("table#running, table#scans");
  if (!form || !table) return;
  const rows = Array.from(table.querySelectorAll("tbody tr"));
  const shown = document.querySelector('[data-figure="shown"]');
  const value = (id) => {
    const el = document.getElementById(id);
    return el ? el.value.trim() : "";
  };
  const apply = () => {
    const q = value("search").toLowerCase();
    const wanted = {
      verdict: value("verdict"),
      phase: value("phase"),
      registry: value("registry"),
      namespace: value("namespace"),
    };
    let count = 0;
    for (const row of rows) {
      const d = row.dataset;
      const words = [d.image, d.namespace, d.workload, d.name]
        .filter((w) => w !== undefined)
        .join(" ")
        .toLowerCase();
      const match =
        (!q || words.includes(q)) &&
        Object.entries(wanted).every(([key, want]) => !want || d[key] === want);
      row.hidden = !match;
      if (match) count += 1;
    }
    if (shown) shown.textContent = String(count);
  };
  form.addEventListener("input", apply);
  form.addEventListener("change", apply);
});
