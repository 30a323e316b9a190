/* A dashboard as code (dashboards/*.yaml): controls from its parameters, one card per visual.

   Live (on the server): GET /api/dashboards/<name> gives the spec with each control's options
   and default; POST /api/dashboards/<name>/data gives every visual's rows; a changed control
   fetches again and redraws. Static (an exported snapshot): the spec and the data are in
   <script type="application/json" id="dashboard-snapshot">, and nothing is fetched.

   Test hooks: #dashboard has data-state = loading | ready | error and data-generation (one more
   after every complete redraw); each visual card has data-visual, data-type, data-state and
   data-rows. Everything is written with textContent (df.el), never innerHTML. */
(function () {
  "use strict";
  const df = window.df;
  const root = document.getElementById("dashboard");
  if (!root) return;
  const snapshotNode = document.getElementById("dashboard-snapshot");
  const PALETTE = ["#2f6fb5", "#d9822b", "#3a9b5c", "#c23b3b", "#7b5ea7", "#2a9d9d", "#9c6b30", "#d45d9c"];
  const state = { spec: null, values: {}, request: 0, generation: 0, cards: {} };

  // --- formatting ------------------------------------------------------------------------------

  function number(value, digits) { return df.isNumber(value) ? df.fmt.number(value, digits) : String(value ?? "–"); }

  function signed(value, format) {
    if (!df.isNumber(value)) return "–";
    const text = format === "percent" ? `${Math.abs(value).toFixed(2)}%` : number(Math.abs(value));
    return `${value > 0 ? "▲ +" : value < 0 ? "▼ −" : ""}${text}`;
  }

  function column(result, name) { return result.columns.indexOf(name); }

  function values(result, name) {
    const i = column(result, name);
    return result.rows.map((row) => row[i]);
  }

  function unique(items) { return Array.from(new Set(items)); }

  // --- status badges ---------------------------------------------------------------------------

  function statusBadges(result) {
    const many = (result.status || []).length > 1;
    return (result.status || []).map((s) => {
      const label = many ? `${s.table.split(".").pop()}: ` : "";
      const lag = df.isNumber(s.lag_seconds) ? ` (${df.fmt.seconds(s.lag_seconds)} old)` : "";
      const fresh = df.el("span", {
        class: `badge ${s.freshness === "fresh" ? "ok" : s.freshness === "stale" ? "bad" : "none"}`,
        "data-freshness": s.freshness,
        "data-table": s.table,
        title: `${s.table}: ${s.freshness}${lag}` +
          (df.isNumber(s.threshold_seconds) ? `, stale after ${df.fmt.seconds(s.threshold_seconds)}` : ""),
      }, `${label}${s.freshness}`);
      const dqText = s.quality === "passed" ? `DQ ${s.rules_passed}/${s.rules_passed + s.rules_failed} passed`
        : s.quality === "failed" ? `DQ ${s.rules_failed} failed` : "DQ none";
      const dq = df.el("span", {
        class: `badge ${s.quality === "passed" ? "ok" : s.quality === "failed" ? "bad" : "none"}`,
        "data-quality": s.quality,
        "data-table": s.table,
        title: s.quality === "failed" ? `${s.table}: ${s.failed_rules.join("; ")}`
          : s.quality === "passed" ? `${s.table}: every rule passed (${df.fmt.time(s.evaluated_at)})`
          : `${s.table}: no ruleset evaluated`,
      }, `${label}${dqText}`);
      return [fresh, dq];
    }).flat();
  }

  // --- charts ----------------------------------------------------------------------------------

  function baseOption() {
    return {
      animation: false,
      color: PALETTE,
      tooltip: { trigger: "axis", confine: true },
      grid: { left: 56, right: 24, top: 36, bottom: 56 },
      legend: { top: 0, type: "scroll" },
    };
  }

  function zoom(axes) {
    return [{ type: "inside", xAxisIndex: axes }, { type: "slider", xAxisIndex: axes, height: 18, bottom: 8 }];
  }

  /** Series of line/area/bar: one per `series` value, or one per y column. */
  function cartesian(visual, result) {
    const xs = unique(values(result, visual.x));
    const ys = Array.isArray(visual.y) ? visual.y : [visual.y];
    const kind = visual.type === "bar" ? "bar" : "line";
    const groups = [];
    if (visual.series) {
      const si = column(result, visual.series);
      const xi = column(result, visual.x);
      const yi = column(result, ys[0]);
      const byName = new Map();
      for (const row of result.rows) {
        const name = String(row[si]);
        if (!byName.has(name)) byName.set(name, new Map());
        byName.get(name).set(row[xi], row[yi]);
      }
      for (const [name, points] of byName) groups.push({ name, data: xs.map((x) => points.get(x) ?? null) });
    } else {
      for (const y of ys) groups.push({ name: y, data: values(result, y) });
    }
    const series = groups.map((g) => ({
      name: g.name, type: kind, data: g.data, showSymbol: false, connectNulls: true,
      stack: visual.stack ? "total" : undefined,
      areaStyle: visual.type === "area" ? { opacity: 0.25 } : undefined,
    }));
    const category = { type: "category", data: xs };
    const value = { type: "value", scale: visual.type !== "bar" && !visual.stack };
    const horizontal = visual.type === "bar" && visual.horizontal;
    return Object.assign(baseOption(), {
      xAxis: horizontal ? value : category,
      yAxis: horizontal ? category : value,
      series,
      dataZoom: horizontal || xs.length < 40 ? undefined : zoom([0]),
    });
  }

  function candlestick(visual, result) {
    const days = values(result, visual.x);
    const o = values(result, visual.open); const c = values(result, visual.close);
    const l = values(result, visual.low); const h = values(result, visual.high);
    const candles = days.map((_, i) => [o[i], c[i], l[i], h[i]]);
    const volume = visual.volume ? values(result, visual.volume) : null;
    const series = [{
      name: "OHLC", type: "candlestick", data: candles,
      itemStyle: { color: "#3a9b5c", color0: "#c23b3b", borderColor: "#3a9b5c", borderColor0: "#c23b3b" },
    }];
    for (const line of visual.lines || []) {
      series.push({ name: line, type: "line", data: values(result, line), showSymbol: false, lineStyle: { width: 1.2 } });
    }
    const grid = [{ left: 64, right: 24, top: 36, height: volume ? "58%" : "72%" }];
    const xAxis = [{ type: "category", data: days, scale: true, boundaryGap: true }];
    const yAxis = [{ scale: true, splitArea: { show: true } }];
    if (volume) {
      grid.push({ left: 64, right: 24, top: "74%", height: "14%" });
      xAxis.push({ type: "category", gridIndex: 1, data: days, axisLabel: { show: false }, axisTick: { show: false } });
      yAxis.push({ gridIndex: 1, scale: true, splitNumber: 2, axisLabel: { formatter: (v) => df.fmt.number(v / 1e6, 1) + "M" } });
      series.push({
        name: visual.volume, type: "bar", xAxisIndex: 1, yAxisIndex: 1, data: volume,
        itemStyle: { color: "#9fb3c8" },
      });
    }
    return Object.assign(baseOption(), {
      tooltip: { trigger: "axis", axisPointer: { type: "cross" }, confine: true },
      axisPointer: { link: [{ xAxisIndex: "all" }] },
      grid, xAxis, yAxis, series,
      dataZoom: zoom(volume ? [0, 1] : [0]),
    });
  }

  function scatter(visual, result) {
    const xi = column(result, visual.x); const yi = column(result, visual.y);
    const si = visual.series ? column(result, visual.series) : -1;
    const zi = visual.size ? column(result, visual.size) : -1;
    const sizes = zi >= 0 ? result.rows.map((r) => r[zi]).filter(df.isNumber) : [];
    const top = sizes.length ? Math.max(...sizes.map(Math.abs)) || 1 : 1;
    const groups = new Map();
    for (const row of result.rows) {
      const name = si >= 0 ? String(row[si]) : visual.y;
      if (!groups.has(name)) groups.set(name, []);
      groups.get(name).push([row[xi], row[yi], zi >= 0 ? row[zi] : null]);
    }
    const series = Array.from(groups, ([name, data]) => ({
      name, type: "scatter", data,
      symbolSize: zi >= 0 ? (point) => 6 + 24 * Math.sqrt(Math.abs(point[2] || 0) / top) : 9,
    }));
    return Object.assign(baseOption(), {
      tooltip: { trigger: "item", confine: true },
      xAxis: { type: "value", scale: true, name: visual.x },
      yAxis: { type: "value", scale: true, name: visual.y },
      series,
    });
  }

  function heatmap(visual, result) {
    const xs = unique(values(result, visual.x)); const ys = unique(values(result, visual.y));
    const xi = column(result, visual.x); const yi = column(result, visual.y); const vi = column(result, visual.value);
    const data = result.rows.map((r) => [xs.indexOf(r[xi]), ys.indexOf(r[yi]), r[vi]]);
    const numbers = data.map((d) => d[2]).filter(df.isNumber);
    return Object.assign(baseOption(), {
      tooltip: { trigger: "item", confine: true },
      legend: undefined,
      grid: { left: 80, right: 24, top: 16, bottom: 96 },
      xAxis: { type: "category", data: xs, splitArea: { show: true } },
      yAxis: { type: "category", data: ys, splitArea: { show: true } },
      visualMap: {
        min: numbers.length ? Math.min(...numbers) : 0, max: numbers.length ? Math.max(...numbers) : 1,
        calculable: true, orient: "horizontal", left: "center", bottom: 0, itemHeight: 120,
      },
      series: [{ name: visual.value, type: "heatmap", data }],
    });
  }

  function pie(visual, result) {
    const li = column(result, visual.label); const vi = column(result, visual.value);
    return Object.assign(baseOption(), {
      tooltip: { trigger: "item", confine: true },
      series: [{
        name: visual.title || visual.value, type: "pie", radius: ["35%", "70%"], top: 24,
        data: result.rows.map((r) => ({ name: String(r[li]), value: r[vi] })),
      }],
    });
  }

  const CHARTS = { line: cartesian, area: cartesian, bar: cartesian, candlestick, scatter, heatmap, pie };

  // --- visuals ---------------------------------------------------------------------------------

  function kpi(visual, result) {
    const row = result.rows[0];
    if (!row) return df.el("p", { class: "muted" }, "No data");
    const value = row[column(result, visual.value)];
    const shown = visual.format === "percent" ? signed(value, "percent")
      : visual.format === "text" ? String(value ?? "–") : number(value);
    const parts = [df.el("div", { class: "value", "data-value": value ?? "" }, shown)];
    if (visual.delta) {
      const delta = row[column(result, visual.delta)];
      const kind = df.isNumber(delta) ? (delta > 0 ? "ok" : delta < 0 ? "bad" : "none") : "none";
      parts.push(df.el("div", { class: `delta ${kind}` }, signed(delta, visual.delta_format)));
    }
    if (visual.caption) parts.push(df.el("div", { class: "label" }, String(row[column(result, visual.caption)] ?? "")));
    return df.el("div", { class: "kpi" }, parts);
  }

  function table(visual, result) {
    const names = visual.columns || result.columns;
    const indexes = names.map((name) => column(result, name));
    const rows = result.rows.map((row) => indexes.map((i) => row[i]));
    return df.table(names, rows);
  }

  function drawVisual(visual, result) {
    const card = state.cards[visual.name];
    const body = df.clear(card.body);
    df.clear(card.badges).append(...statusBadges(result));
    card.node.dataset.rows = String(result.rows.length);
    if (result.error) {
      card.node.dataset.state = "error";
      card.meta.textContent = "";
      body.append(df.el("p", { class: "message error" }, result.error));
      return;
    }
    const timing = `${result.rows.length} row(s) · ${result.cached ? "cached" : df.fmt.ms(result.elapsed_ms)}`;
    card.meta.textContent = result.truncated ? `${timing} · truncated` : timing;
    if (visual.type === "kpi") body.append(kpi(visual, result));
    else if (visual.type === "table") body.append(table(visual, result));
    else if (!result.rows.length) body.append(df.el("p", { class: "muted empty" }, "No data for these values"));
    else {
      const node = df.el("div", { class: "chart" });
      node.style.height = `${visual.height}px`;
      body.append(node);
      df.chart(node, CHARTS[visual.type](visual, result));
    }
    card.node.dataset.state = "ready";
  }

  function layout(spec) {
    const sheets = spec.sheets.map((sheet) => {
      const grid = df.el("div", { class: "visuals" });
      for (const visual of sheet.visuals) {
        const badges = df.el("span", { class: "status-badges" });
        const meta = df.el("span", { class: "muted small meta" });
        const body = df.el("div", { class: "visual-body" }, df.el("p", { class: "muted" }, "Loading…"));
        const node = df.el("section", {
          class: `card visual visual-${visual.type}`, "data-visual": visual.name, "data-type": visual.type,
          "data-state": "loading", "data-rows": "0",
        }, df.el("header", {}, df.el("h3", {}, visual.title || visual.name), meta), badges, body);
        node.style.gridColumn = `span ${visual.width}`;
        if (visual.description) node.title = visual.description;
        state.cards[visual.name] = { node, body, badges, meta, visual };
        grid.append(node);
      }
      return df.el("section", { class: "sheet", "data-sheet": sheet.name },
        sheet.title ? df.el("h2", {}, sheet.title) : null, grid);
    });
    return sheets;
  }

  // --- controls --------------------------------------------------------------------------------

  function control(param, frozen) {
    const id = `param-${param.name}`;
    const value = state.values[param.name];
    const changed = (next) => { state.values[param.name] = next; refresh(); };
    let input;
    if (param.control === "dropdown" || param.control === "multi-select") {
      const multi = param.control === "multi-select";
      const chosen = new Set((multi ? value || [] : [value]).map(String));
      const options = (param.options || []).map((o) => df.el("option", {
        value: String(o.value), selected: chosen.has(String(o.value)),
      }, o.label || String(o.value)));
      input = df.el("select", {
        id, name: param.name, multiple: multi, size: multi ? Math.min(5, options.length || 1) : null,
        "data-param": param.name, disabled: frozen,
      }, options);
      input.addEventListener("change", () => {
        const picked = Array.from(input.selectedOptions, (o) => param.options.find((x) => String(x.value) === o.value).value);
        changed(multi ? picked : picked[0]);
      });
    } else if (param.control === "date-range") {
      const [start, end] = value || [null, null];
      const from = df.el("input", { type: "date", id: `${id}-from`, value: start, "data-param": `${param.name}_from`, disabled: frozen });
      const to = df.el("input", { type: "date", id: `${id}-to`, value: end, "data-param": `${param.name}_to`, disabled: frozen });
      const update = () => { if (from.value && to.value) changed([from.value, to.value]); };
      from.addEventListener("change", update);
      to.addEventListener("change", update);
      input = df.el("span", { class: "range" }, from, df.el("span", { class: "muted" }, "→"), to);
    } else {
      input = df.el("input", { type: "text", id, value: value ?? "", "data-param": param.name, disabled: frozen });
      input.addEventListener("change", () => changed(input.value));
    }
    return df.el("div", { class: "control", "data-control": param.control },
      df.el("label", { for: param.control === "date-range" ? `${id}-from` : id }, param.label || param.name), input);
  }

  // --- loading ---------------------------------------------------------------------------------

  function draw(data) {
    for (const result of data.visuals) {
      const card = state.cards[result.name];
      if (card) {
        try { drawVisual(card.visual, result); } catch (error) {
          card.node.dataset.state = "error";
          df.clear(card.body).append(df.el("p", { class: "message error" }, `cannot draw: ${error.message}`));
        }
      }
    }
    state.generation += 1;
    root.dataset.generation = String(state.generation);
    root.dataset.elapsed = String(data.elapsed_ms);
    root.dataset.state = "ready";
  }

  async function refresh() {
    const ticket = ++state.request;
    root.dataset.state = "loading";
    try {
      const data = await df.api(`/api/dashboards/${encodeURIComponent(state.spec.name)}/data`, {
        method: "POST", body: { params: state.values },
      });
      if (ticket !== state.request) return; // a newer request is on its way
      state.values = data.params;
      df.message("");
      draw(data);
    } catch (error) {
      if (ticket !== state.request) return;
      root.dataset.state = "error";
      df.message(error.message || String(error), "error");
    }
  }

  function build(spec, frozen, note) {
    state.spec = spec;
    const controls = spec.parameters.map((p) => control(p, frozen));
    const header = df.el("div", { class: "card controls row" }, controls);
    const parts = [
      spec.description ? df.el("p", { class: "muted description" }, spec.description) : null,
      note ? df.el("p", { class: "small muted snapshot-note" }, note) : null,
      controls.length ? header : null,
      ...layout(spec),
    ];
    df.clear(root).append(...parts.filter(Boolean));
  }

  async function start() {
    if (snapshotNode) {
      const snapshot = JSON.parse(snapshotNode.textContent);
      root.dataset.mode = "static";
      state.values = snapshot.data.params;
      build(snapshot.spec, true, `Snapshot of ${snapshot.exported_at}, project ${snapshot.project}`);
      draw(snapshot.data);
      return;
    }
    try {
      const spec = await df.api(`/api/dashboards/${encodeURIComponent(root.dataset.name)}`);
      state.values = Object.fromEntries(spec.parameters.map((p) => [p.name, p.value]));
      build(spec, false);
      await refresh();
    } catch (error) {
      root.dataset.state = "error";
      df.clear(root);
      df.message(error.message || String(error), "error");
    }
  }

  start();
})();
