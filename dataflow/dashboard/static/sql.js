/* SQL editor (Athena console style): run through /api/queries, results grid, statistics,
   dry-run cost, history, saved queries, CSV download, tables and columns on the side.
   Everything the server returns is written as text (df.el / textContent), never as markup. */
(function () {
  "use strict";

  const { api, el, clear, fmt, badge, message } = window.df;
  const MAX_GRID_ROWS = 1000; // more is a download: a grid of 10k+ rows only slows the page
  const HISTORY_SIZE = 30;

  const $ = (id) => document.getElementById(id);
  const editor = $("sql-editor");
  const dialect = $("sql-dialect");
  const workgroup = $("sql-workgroup");
  const runButton = $("sql-run");
  const estimateButton = $("sql-estimate");
  const stopButton = $("sql-stop");
  let runningId = null; // the id of the query this page runs now (it chose it: it can stop it)

  const STATE_KIND = { SUCCEEDED: "ok", FAILED: "bad", CANCELLED: "warn", RUNNING: "info", QUEUED: "info" };

  /** The body of a query request from the editor's controls. */
  function request() {
    const body = { sql: editor.value, dialect: dialect.value };
    if (!$("sql-workgroup-label").hidden && workgroup.value) body.workgroup = workgroup.value;
    return body;
  }

  /** Insert text at the editor's cursor (replacing a selection) and keep the focus there. */
  function insertAtCursor(text) {
    const start = editor.selectionStart ?? editor.value.length;
    const end = editor.selectionEnd ?? start;
    editor.setRangeText(text, start, end, "end");
    editor.focus();
  }

  function busy(on) {
    runButton.disabled = on;
    estimateButton.disabled = on;
    runButton.textContent = on ? "Running…" : "Run";
    stopButton.hidden = !(on && runningId);
    stopButton.disabled = false;
  }

  /** A new random UUID (v4), also where crypto.randomUUID is missing (plain http). */
  function newId() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  /** StopQueryExecution for the query this page runs (it then ends CANCELLED). */
  async function stop(keepalive) {
    if (!runningId) return;
    stopButton.disabled = true;
    const path = `/api/queries/${encodeURIComponent(runningId)}/stop`;
    try {
      if (keepalive) {
        // The page is going away: the request must outlive it.
        fetch(path, { method: "POST", body: "{}", keepalive: true, credentials: "same-origin",
          headers: { "Content-Type": "application/json" } });
      } else {
        await api(path, { method: "POST", body: {} });
      }
    } catch (error) {
      message(error.message || String(error), "error");
    }
  }

  // --- results ------------------------------------------------------------------------------

  /** A cell as text: NULL marked, nested values as JSON, numbers unformatted (as Athena shows). */
  function cell(value) {
    if (value === null || value === undefined) return el("span", { class: "sql-null" }, "NULL");
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function showStats(execution) {
    const box = clear($("sql-stats"));
    const status = execution.Status || {};
    const stats = execution.Statistics || {};
    box.append(
      badge(status.State || "?", STATE_KIND[status.State] || "none"), " ",
      el("span", { "data-stat": "engine" }, `engine ${fmt.ms(stats.EngineExecutionTimeInMillis)}`), " · ",
      el("span", { "data-stat": "total" }, `total ${fmt.ms(stats.TotalExecutionTimeInMillis)}`), " · ",
      el("span", { "data-stat": "rows" }, `${fmt.number(stats.RowsReturned ?? 0)} rows`), " · ",
      el("span", { "data-stat": "bytes" }, `${fmt.bytes(stats.DataScannedInBytes)} scanned`), " · ",
      el("span", { "data-stat": "files" }, `${fmt.number(stats.FilesScanned ?? 0)} files`), " · ",
      el("span", { class: "muted", title: "query id" }, execution.QueryExecutionId || ""),
    );
  }

  function showError(text) {
    const box = clear($("sql-error"));
    if (text) box.append(el("p", { class: "message error", role: "alert" }, text));
  }

  function resetResults(note) {
    clear($("sql-results")).append(el("p", { class: "muted" }, note));
    const link = $("sql-csv");
    link.hidden = true;
    link.removeAttribute("href");
  }

  /** Fetch and draw an execution's results; the CSV link points at its download. */
  async function showResults(execution) {
    const id = execution.QueryExecutionId;
    const data = await api(`/api/queries/${encodeURIComponent(id)}/results?format=json`);
    const infos = data.ColumnInfo || [];
    const rows = data.Rows || [];
    const shown = rows.slice(0, MAX_GRID_ROWS);
    const columns = infos.map((info, i) => ({
      name: `c${i}`,
      label: info.Name,
      num: ["tinyint", "smallint", "integer", "bigint", "real", "double", "decimal"].includes(info.Type),
      render: (value) => cell(value),
    }));
    const grid = df.table(columns, shown.map((row) => infos.map((info) => row[info.Name])));
    grid.id = "sql-grid";
    grid.dataset.rows = String(rows.length);
    const box = clear($("sql-results"));
    if (rows.length > shown.length) {
      box.append(el("p", { class: "muted small" },
        `Showing the first ${fmt.number(shown.length)} of ${fmt.number(rows.length)} rows — download the CSV for all.`));
    } else if (!infos.length) {
      box.append(el("p", { class: "muted" }, "The statement returned no columns."));
    }
    box.append(grid);
    const link = $("sql-csv");
    link.href = `/api/queries/${encodeURIComponent(id)}/results?format=csv`;
    link.setAttribute("download", `${id}.csv`);
    link.hidden = false;
  }

  async function run() {
    if (!editor.value.trim()) { showError("Write a query first."); return; }
    busy(true);
    showError("");
    message("");
    resetResults("Running…");
    clear($("sql-stats")).append(badge("RUNNING", "info"));
    runningId = newId();
    stopButton.hidden = false;
    try {
      const body = Object.assign(request(), { query_id: runningId });
      const execution = await api("/api/queries", { method: "POST", body });
      showStats(execution);
      await showResults(execution);
    } catch (error) {
      // The server answers with the Athena error text (e.g. SYNTAX_ERROR: line 1:8: ...).
      const text = error.message || String(error);
      const cancelled = error.status === 400 && text.includes(" CANCELLED: ");
      const state = cancelled ? "CANCELLED" : error.status === 400 ? "FAILED" : "ERROR";
      clear($("sql-stats")).append(badge(state, cancelled ? "warn" : "bad"));
      showError(text);
      resetResults("No results.");
    } finally {
      runningId = null;
      busy(false);
      loadHistory();
    }
  }

  // --- dry run --------------------------------------------------------------------------------

  function usd(value) {
    if (!df.isNumber(value)) return "–";
    return value < 0.01 ? `$${value.toFixed(6)}` : `$${value.toFixed(4)}`;
  }

  async function estimate() {
    if (!editor.value.trim()) { showError("Write a query first."); return; }
    busy(true);
    showError("");
    const card = $("sql-estimate-card");
    const body = clear($("sql-estimate-body"));
    try {
      const plan = await api("/api/queries/dry-run", { method: "POST", body: request() });
      const tables = plan.tables || [];
      const partitions = tables.reduce((n, t) => n + (t.partitions || []).length, 0);
      body.append(
        el("div", { class: "kpis" },
          kpi("Athena cost", el("span", { id: "sql-cost", class: "sql-cost" }, usd(plan.cost_usd))),
          kpi("Bytes scanned", fmt.bytes(plan.bytes_scanned)),
          kpi("Files", fmt.number(plan.files_scanned ?? 0)),
          kpi("Partitions", fmt.number(partitions)),
          kpi("Tables", fmt.number(tables.length))),
        el("p", { class: "muted small" },
          `${fmt.number(plan.bytes_scanned ?? 0)} bytes. Athena bills $5 per TB scanned, `
          + "with a 10 MB minimum per query. Nothing was run."),
      );
      if (tables.length) {
        body.append(df.table([
          { name: "table" },
          { name: "kind" },
          { name: "files", num: true, render: (v, row) => `${fmt.number(v)} of ${fmt.number(row.total_files)}` },
          { name: "bytes", num: true, render: (v, row) => `${fmt.bytes(v)} of ${fmt.bytes(row.total_bytes)}` },
          { name: "partitions", render: (v) => partitionList(v || []) },
          { name: "snapshot_id", label: "snapshot" },
        ], tables));
      }
    } catch (error) {
      body.append(el("p", { class: "message error" }, error.message || String(error)));
    } finally {
      card.hidden = false;
      busy(false);
    }
  }

  function kpi(label, value) {
    return el("div", { class: "kpi" }, el("div", { class: "value" }, value), el("div", { class: "label" }, label));
  }

  function partitionList(parts) {
    if (!parts.length) return "–";
    if (parts.length <= 3) return parts.join(", ");
    return el("details", {}, el("summary", {}, `${parts.length} partitions`),
      el("div", { class: "mono small" }, parts.map((part) => el("div", {}, part))));
  }

  // --- history --------------------------------------------------------------------------------

  async function loadHistory() {
    const box = $("sql-history");
    try {
      const items = await api(`/api/queries?limit=${HISTORY_SIZE}`);
      clear(box);
      if (!items.length) { box.append(el("p", { class: "muted" }, "No queries yet.")); return; }
      box.append(el("ul", {}, items.map((item) => {
        const state = (item.Status || {}).State || "?";
        const stats = item.Statistics || {};
        return el("li", {
          class: "sql-history-item",
          "data-query-id": item.QueryExecutionId,
          title: item.Query,
          onclick: () => df.guard(() => openExecution(item)),
        },
        el("span", { class: "sql-text" }, item.Query),
        el("span", { class: "muted" },
          badge(state, STATE_KIND[state] || "none"), " ",
          fmt.time((item.Status || {}).SubmissionDateTime), " · ",
          fmt.ms(stats.TotalExecutionTimeInMillis)));
      })));
    } catch (error) {
      clear(box).append(el("p", { class: "message error" }, error.message || String(error)));
    }
  }

  /** Load a past execution: its SQL and dialect into the editor, its results into the grid. */
  async function openExecution(item) {
    editor.value = item.Query || "";
    if ([...dialect.options].some((o) => o.value === item.Dialect)) dialect.value = item.Dialect;
    message("");
    showStats(item);
    const state = (item.Status || {}).State;
    if (state === "SUCCEEDED") {
      showError("");
      await showResults(item);
    } else {
      showError((item.Status || {}).StateChangeReason || `The query is ${state}.`);
      resetResults("No results.");
    }
  }

  // --- saved queries --------------------------------------------------------------------------

  async function loadSaved() {
    const box = $("sql-saved");
    try {
      const saved = await api("/api/named-queries");
      clear(box);
      if (!saved.length) {
        box.append(el("p", { class: "muted" }, "None yet: name the editor's query and save it."));
        return;
      }
      box.append(el("ul", {}, saved.map((query) => el("li", {},
        el("button", {
          type: "button",
          class: "sql-link",
          "data-name": query.name,
          title: query.sql,
          onclick: () => { editor.value = query.sql.trimEnd(); $("sql-save-name").value = query.name; editor.focus(); },
        }, query.name)))));
    } catch (error) {
      clear(box).append(el("p", { class: "message error" }, error.message || String(error)));
    }
  }

  async function save() {
    const name = $("sql-save-name").value.trim();
    if (!name) { message("Give the query a name to save it.", "error"); return; }
    if (!editor.value.trim()) { message("The editor is empty: nothing to save.", "error"); return; }
    const body = { name, sql: editor.value };
    try {
      await api("/api/named-queries", { method: "POST", body });
    } catch (error) {
      if (error.status !== 409 || !window.confirm(`Replace the saved query "${name}"?`)) throw error;
      await api("/api/named-queries", { method: "POST", body: { ...body, overwrite: true } });
    }
    message(`Saved as "${name}".`, "info");
    await loadSaved();
  }

  // --- tables ---------------------------------------------------------------------------------

  let catalogTables = [];

  async function loadTables() {
    try {
      catalogTables = await api("/api/catalog/tables");
      drawTables();
    } catch (error) {
      clear($("sql-tables")).append(el("p", { class: "message error" }, error.message || String(error)));
    }
  }

  function drawTables() {
    const filter = $("sql-table-filter").value.trim().toLowerCase();
    const box = clear($("sql-tables"));
    const shown = catalogTables.filter((t) => !filter || `${t.database}.${t.name}`.toLowerCase().includes(filter));
    if (!shown.length) { box.append(el("p", { class: "muted" }, "No tables.")); return; }
    box.append(el("ul", {}, shown.map((table) => {
      const full = `${table.database}.${table.name}`;
      const columns = el("ul", { hidden: true }, (table.columns || []).map((c) => el("li", {},
        el("button", { type: "button", class: "sql-link mono", onclick: () => insertAtCursor(c.name) }, c.name),
        el("span", { class: "sql-type" }, c.type))));
      const toggle = el("button", {
        type: "button",
        class: "sql-toggle",
        "aria-label": `columns of ${full}`,
        "aria-expanded": "false",
        onclick: () => {
          columns.hidden = !columns.hidden;
          toggle.textContent = columns.hidden ? "▸" : "▾";
          toggle.setAttribute("aria-expanded", String(!columns.hidden));
        },
      }, "▸");
      return el("li", { "data-table": full }, toggle,
        el("button", { type: "button", class: "sql-link mono", title: `insert ${full}`, onclick: () => insertAtCursor(full) }, full),
        columns);
    })));
  }

  // --- workgroups -----------------------------------------------------------------------------

  async function loadWorkgroups() {
    const data = await api("/api/queries/workgroups");
    const groups = data.workgroups || [];
    clear(workgroup).append(...groups.map((g) => el("option", {
      value: g.name,
      selected: g.name === data.default,
    }, g.bytes_scanned_cutoff_per_query ? `${g.name} (≤ ${fmt.bytes(g.bytes_scanned_cutoff_per_query)})` : g.name)));
    // One workgroup (primary) is nothing to choose from.
    $("sql-workgroup-label").hidden = groups.length < 2;
  }

  // --- wiring ---------------------------------------------------------------------------------

  runButton.addEventListener("click", () => df.guard(run));
  estimateButton.addEventListener("click", () => df.guard(estimate));
  stopButton.addEventListener("click", () => df.guard(() => stop(false)));
  // A query must not outlive the page that asked for it.
  window.addEventListener("pagehide", () => { stop(true); });
  $("sql-save").addEventListener("click", () => df.guard(save));
  $("sql-history-refresh").addEventListener("click", () => df.guard(loadHistory));
  $("sql-table-filter").addEventListener("input", drawTables);
  editor.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      if (!runButton.disabled) df.guard(run);
    }
  });

  df.guard(() => Promise.all([loadTables(), loadSaved(), loadHistory(), loadWorkgroups()]))
    .finally(() => { document.getElementById("sql-page").dataset.ready = "true"; });
})();
