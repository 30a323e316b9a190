/* Catalog page: databases → tables → one table (columns, partition keys, parameters,
   partitions, schema versions, snapshots, sample rows). The view is in the URL —
   /catalog, /catalog?database=raw, /catalog?table=market.quotes — so every view is a link.
   Everything from the server is written as text (df.el / textContent), never as markup. */
(function () {
  "use strict";

  const { api, el, clear, fmt, badge } = window.df;
  const SAMPLE_LIMITS = [20, 50, 100, 200];

  const params = new URLSearchParams(window.location.search);
  const view = document.getElementById("catalog-view");

  const tableHref = (t) => `/catalog?table=${encodeURIComponent(`${t.database}.${t.name}`)}`;
  const dbHref = (name) => `/catalog?database=${encodeURIComponent(name)}`;
  const num = (text) => (text === undefined || text === null || text === "" ? null : Number(text));
  const typeKind = (type) => (type === "iceberg" ? "info" : "none");

  function card(title, ...children) {
    return el("section", { class: "card" }, el("h2", {}, title), ...children);
  }

  function failure(error) {
    return el("p", { class: "message error" }, error.message || String(error));
  }

  /** Run a section's loader in its own card, so one failing section leaves the others. */
  function section(title, id, loader) {
    const body = el("div", { id }, el("p", { class: "muted" }, "Loading…"));
    Promise.resolve().then(loader).then(
      (content) => clear(body).append(content),
      (error) => clear(body).append(failure(error)),
    );
    return card(title, body);
  }

  /** A value as text: NULL marked, nested values as compact JSON. */
  function text(value) {
    if (value === null || value === undefined) return el("span", { class: "catalog-null" }, "NULL");
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  // --- side tree ------------------------------------------------------------------------------

  function drawTree(tables, databases, current) {
    const filter = document.getElementById("catalog-filter").value.trim().toLowerCase();
    const tree = clear(document.getElementById("catalog-tree"));
    tree.append(el("ul", {}, databases.map((db) => {
      const own = tables.filter((t) => t.database === db
        && (!filter || `${t.database}.${t.name}`.toLowerCase().includes(filter)));
      return el("li", {},
        el("a", { class: "db", href: dbHref(db) }, db), " ",
        el("span", { class: "muted" }, `(${own.length})`),
        el("ul", {}, own.map((t) => el("li", {},
          el("a", {
            href: tableHref(t),
            class: current === `${t.database}.${t.name}` ? "current" : null,
            "data-table": `${t.database}.${t.name}`,
          }, t.name)))));
    })));
  }

  // --- the table list -------------------------------------------------------------------------

  function tableList(tables, database) {
    const shown = database ? tables.filter((t) => t.database === database) : tables;
    const rows = shown.map((t) => ({
      table: t,
      type: t.type,
      records: num((t.parameters || {}).recordCount),
      size: num((t.parameters || {}).sizeKey),
      files: num((t.parameters || {}).objectCount),
      updated: t.updated_at,
    }));
    const grid = df.table([
      { name: "table", render: (t) => el("a", { href: tableHref(t), "data-table": `${t.database}.${t.name}` }, `${t.database}.${t.name}`) },
      { name: "type", render: (v) => badge(v, typeKind(v)) },
      { name: "records", num: true, render: (v) => fmt.number(v ?? null) },
      { name: "size", num: true, render: (v) => fmt.bytes(v) },
      { name: "files", num: true, render: (v) => fmt.number(v ?? null) },
      { name: "updated", label: "last updated", render: (v) => fmt.time(v) },
    ], rows);
    grid.id = "catalog-tables";
    const title = database ? `Tables of ${database}` : "Tables";
    return el("div", {},
      card(title,
        el("p", { class: "muted small" },
          `${fmt.number(shown.length)} tables`, database ? " · " : "",
          database ? el("a", { href: "/catalog" }, "all databases") : ""),
        grid));
  }

  // --- one table ------------------------------------------------------------------------------

  function summary(info) {
    const p = info.parameters || {};
    const iceberg = info.type === "iceberg";
    const kpis = el("div", { class: "kpis" },
      kpi("records", fmt.number(num(p.recordCount))),
      kpi("size", fmt.bytes(num(p.sizeKey))),
      kpi("files", fmt.number(num(p.objectCount))),
      kpi("columns", fmt.number(info.columns.length)),
      iceberg ? kpi("snapshots", fmt.number(info.snapshots ?? 0)) : kpi("schema version", fmt.number(info.version ?? 0)),
      kpi("last updated", fmt.time(info.updated_at)));
    const meta = el("dl", { class: "catalog-meta small" }, [
      ["location", info.location],
      ["classification", info.classification],
      iceberg ? ["current snapshot", info.current_snapshot_id] : ["last crawled", fmt.time(info.last_crawled_at)],
      info.deprecated ? ["deprecated", "yes (its location is gone)"] : null,
    ].filter(Boolean).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "–")]));
    return el("section", { class: "card", id: "catalog-summary" },
      el("div", { class: "row" },
        el("h2", { class: "catalog-title" }, `${info.database}.${info.name}`),
        badge(info.type, typeKind(info.type)),
        el("a", { href: dbHref(info.database), class: "small" }, `all tables of ${info.database}`),
        el("a", { href: "/sql", class: "small", title: "open the SQL editor" }, "SQL editor")),
      info.description ? el("p", {}, info.description) : null,
      kpis, meta);
  }

  function kpi(label, value) {
    return el("div", { class: "kpi" }, el("div", { class: "value" }, value), el("div", { class: "label" }, label));
  }

  function columnsCard(info) {
    const keys = new Map((info.partition_keys || []).map((k) => [k.source || k.name, k]));
    const grid = df.table([
      { name: "index", label: "#", num: true },
      { name: "name", render: (v) => el("span", { class: "mono" }, v) },
      { name: "type", render: (v) => el("span", { class: "mono" }, v) },
      { name: "partition", render: (v) => (v ? badge(v, "info") : "") },
    ], info.columns.map((c, i) => {
      const key = keys.get(c.name);
      return { index: i + 1, name: c.name, type: c.type, partition: key ? `${key.type}${key.name !== c.name ? ` → ${key.name}` : ""}` : "" };
    }));
    grid.id = "catalog-columns";
    return card("Columns", grid);
  }

  function partitionKeysCard(info) {
    const keys = info.partition_keys || [];
    if (!keys.length) return card("Partition keys", el("p", { class: "muted" }, "Not partitioned."));
    const iceberg = info.type === "iceberg";
    const columns = iceberg ? ["name", { name: "type", label: "transform" }, "source"] : ["name", "type"];
    return card("Partition keys", df.table(columns, keys));
  }

  function parametersCard(info) {
    const entries = Object.entries(info.parameters || {}).sort(([a], [b]) => a.localeCompare(b));
    return card("Parameters", df.table(["key", { name: "value", render: (v) => el("span", { class: "mono small" }, v) }],
      entries.map(([key, value]) => ({ key, value: String(value) }))));
  }

  async function partitionsContent(info) {
    const parts = await api(`/api/catalog/tables/${path(info)}/partitions`);
    if (!parts.length) return el("p", { class: "muted" }, "No partitions.");
    let grid;
    if (info.type === "iceberg") {
      const keys = Object.keys(parts[0].values || {});
      grid = df.table([
        ...keys.map((k) => ({ name: k, render: (_v, row) => text(row.values[k]) })),
        { name: "records", num: true }, { name: "files", num: true },
        { name: "bytes", num: true, render: (v) => fmt.bytes(v) },
      ], parts);
    } else {
      const keys = (info.partition_keys || []).map((k) => k.name);
      grid = df.table([
        ...keys.map((k, i) => ({ name: k, render: (_v, row) => text((row.values || [])[i]) })),
        { name: "records", num: true, render: (_v, row) => fmt.number(num((row.parameters || {}).recordCount)) },
        { name: "bytes", num: true, render: (_v, row) => fmt.bytes(num((row.parameters || {}).sizeKey)) },
        { name: "location", render: (v) => el("span", { class: "mono small" }, v) },
      ], parts);
    }
    grid.id = "catalog-partitions-grid";
    return el("div", {}, el("p", { class: "muted small" }, `${fmt.number(parts.length)} partitions`), grid);
  }

  async function versionsContent(info) {
    const versions = await api(`/api/catalog/tables/${path(info)}/versions`);
    if (!versions.length) return el("p", { class: "muted" }, "No versions recorded.");
    const rows = versions.map((v, i) => {
      const before = i ? new Map(versions[i - 1].columns.map((c) => [c.name, c.type])) : null;
      const now = new Map(v.columns.map((c) => [c.name, c.type]));
      const changes = [];
      if (before) {
        for (const [name, type] of now) {
          if (!before.has(name)) changes.push(el("span", { class: "catalog-added" }, `+${name} ${type}`));
          else if (before.get(name) !== type) changes.push(el("span", {}, `~${name} ${before.get(name)} → ${type}`));
        }
        for (const name of before.keys()) if (!now.has(name)) changes.push(el("span", { class: "catalog-removed" }, `−${name}`));
      }
      return { ...v, columns_count: v.columns.length, changes };
    });
    const grid = df.table([
      { name: "version", num: true },
      { name: "archived_at", label: "recorded", render: (v) => fmt.time(v) },
      { name: "columns_count", label: "columns", num: true },
      { name: "changes", render: (v, row) => (row.version === versions[0].version ? "first version"
        : v.length ? el("span", { class: "mono small" }, v.flatMap((c, i) => (i ? [", ", c] : [c]))) : "no column changes") },
      { name: "current", render: (v) => (v ? badge("current", "ok") : "") },
    ], rows);
    grid.id = "catalog-versions-grid";
    return grid;
  }

  async function snapshotsContent(info) {
    const snaps = await api(`/api/catalog/tables/${path(info)}/snapshots`);
    if (!snaps.length) return el("p", { class: "muted" }, "No snapshots.");
    const grid = df.table([
      { name: "snapshot_id", label: "snapshot", render: (v) => el("span", { class: "mono" }, v) },
      { name: "parent_id", label: "parent", render: (v) => (v ? el("span", { class: "mono" }, v) : "–") },
      { name: "committed_at", label: "committed", render: (v) => fmt.time(v) },
      { name: "operation" },
      { name: "added_records", label: "added records", num: true },
      { name: "total_records", label: "total records", num: true },
      { name: "run_id", label: "run" },
    ], snaps.slice().reverse());
    grid.id = "catalog-snapshots-grid";
    return el("div", {}, el("p", { class: "muted small" }, `${fmt.number(snaps.length)} snapshots, newest first`), grid);
  }

  function sampleCard(info) {
    const body = el("div", { id: "catalog-sample" });
    const limit = el("select", { id: "catalog-sample-limit", "aria-label": "rows" }, SAMPLE_LIMITS.map((n) => el("option", { value: n }, String(n))));
    async function load() {
      clear(body).append(el("p", { class: "muted" }, "Loading…"));
      try {
        const data = await api(`/api/catalog/tables/${path(info)}/sample?limit=${limit.value}`);
        const grid = df.table(data.columns.map((c) => ({
          name: c.name, render: (v) => text(v), num: /INT|DOUBLE|FLOAT|DECIMAL|REAL/.test(c.type) && !c.type.includes("["),
        })), data.rows);
        grid.id = "catalog-sample-grid";
        grid.dataset.rows = String(data.rows.length);
        clear(body).append(el("p", { class: "muted small" }, `${fmt.number(data.rows.length)} rows`), grid);
      } catch (error) {
        clear(body).append(failure(error));
      }
    }
    limit.addEventListener("change", load);
    load();
    return el("section", { class: "card" },
      el("div", { class: "row" }, el("h2", {}, "Sample rows"), el("label", { class: "small" }, "rows", limit)),
      body);
  }

  const path = (info) => `${encodeURIComponent(info.database)}/${encodeURIComponent(info.name)}`;

  async function tableView(name) {
    const dot = name.indexOf(".");
    if (dot < 1) throw new Error(`"${name}" is not a table name: write database.table, e.g. market.quotes`);
    const database = name.slice(0, dot);
    const table = name.slice(dot + 1);
    const info = await api(`/api/catalog/tables/${encodeURIComponent(database)}/${encodeURIComponent(table)}`);
    document.title = `${info.database}.${info.name} · Catalog · Dataflow`;
    const parts = [summary(info), columnsCard(info), partitionKeysCard(info)];
    if (info.type === "iceberg") {
      parts.push(section("Snapshots", "catalog-snapshots", () => snapshotsContent(info)));
    }
    parts.push(
      sampleCard(info),
      section("Schema versions", "catalog-versions", () => versionsContent(info)),
      section("Partitions", "catalog-partitions", () => partitionsContent(info)),
      parametersCard(info),
    );
    return el("div", { "data-table": `${info.database}.${info.name}` }, parts);
  }

  // --- start ----------------------------------------------------------------------------------

  async function start() {
    const selected = params.get("table");
    const database = params.get("database");
    const [databases, tables] = await Promise.all([api("/api/catalog/databases"), api("/api/catalog/tables")]);
    const redraw = () => drawTree(tables, databases, selected);
    document.getElementById("catalog-filter").addEventListener("input", redraw);
    redraw();
    try {
      clear(view).append(selected ? await tableView(selected) : tableList(tables, database));
    } catch (error) {
      clear(view).append(failure(error), el("p", {}, el("a", { href: "/catalog" }, "All tables")));
    }
  }

  df.guard(start).finally(() => { document.getElementById("catalog-page").dataset.ready = "true"; });
})();
