/* Pipeline page: recent runs with their stages, freshness per table, DQ score trend, active
   alarms. Data from /api/runs, /api/pipeline/freshness, /api/pipeline/dq-trend, /api/alarms;
   everything written with df.el (textContent). */
(function () {
  "use strict";
  const { api, el, clear, fmt, badge, table, guard } = window.df;

  const STATUS_KIND = {
    succeeded: "ok", partial: "warn", failed: "bad", interrupted: "bad", running: "info",
    skipped: "none", fresh: "ok", stale: "bad", unknown: "none",
    OK: "ok", ALARM: "bad", INSUFFICIENT_DATA: "none",
  };
  const kind = (status) => STATUS_KIND[status] || "none";

  /** An empty state: a sentence with the command to run in <code>. */
  function empty(text, command, after) {
    return el("p", { class: "empty" }, text, command ? el("code", {}, command) : null, after || null);
  }

  function seconds(value) { return df.isNumber(value) ? fmt.ms(value * 1000) : "–"; }

  /** The rows a run wrote: its transform stage's (else its ingest stage's) row count. */
  function runRows(run) {
    const stage = run.stages.find((s) => s.stage === "transform") || run.stages.find((s) => s.stage === "ingest");
    return stage ? stage.rows : null;
  }

  function stageChip(stage) {
    return el("span", {
      class: "stage-chip", "data-stage": stage.stage, "data-status": stage.status,
      title: stage.message || `${stage.stage}: ${stage.status}`,
    }, badge(stage.stage, kind(stage.status)),
    el("span", { class: "small muted" }, `${seconds(stage.duration_s)} · ${fmt.number(stage.rows)} rows`));
  }

  function renderRuns(runs) {
    const body = clear(document.getElementById("runs-body"));
    if (!runs.length) { body.append(empty("No runs yet: run ", "dataflow run", " in the project.")); return; }
    const columns = [
      { name: "run_id", label: "Run", render: (v) => el("code", {}, v) },
      { name: "status", label: "Status", render: (v) => badge(v, kind(v)) },
      { name: "trigger", label: "Trigger" },
      { name: "started_at", label: "Started", render: (v) => fmt.time(v) },
      { name: "duration_s", label: "Duration", num: true, render: (v) => seconds(v) },
      { name: "rows", label: "Rows", num: true, render: (_v, run) => fmt.number(runRows(run)) },
      { name: "stages", label: "Stages (status · duration · rows)", render: (v) => el("div", { class: "stages" }, v.map(stageChip)) },
    ];
    const node = table(columns, runs);
    node.querySelectorAll("tbody tr").forEach((row, i) => {
      row.setAttribute("data-run", runs[i].run_id);
      row.setAttribute("data-status", runs[i].status);
      if (runs[i].message) row.title = runs[i].message;
    });
    body.append(node);
  }

  function renderFreshness(answer) {
    const note = document.getElementById("freshness-note");
    note.textContent = `Lag = now − the newest row's time. Stale above ${fmt.seconds(answer.threshold_seconds)} ` +
      `(${answer.threshold_source}). Measured ${fmt.time(answer.measured_at)}.`;
    const body = clear(document.getElementById("freshness-body"));
    if (!answer.tables.length) { body.append(empty("No clean tables yet: run ", "dataflow run", ".")); return; }
    const columns = [
      { name: "table", label: "Table", render: (v) => el("code", {}, `market.${v}`) },
      { name: "newest", label: "Newest row", render: (v) => (v ? fmt.time(v) : "–") },
      { name: "lag_seconds", label: "Lag", num: true, render: (v) => fmt.seconds(v) },
      { name: "status", label: "Status", render: (v, row) => badge(v === "unknown" ? "no time column" : v, kind(v)) },
      { name: "rows", label: "Rows", num: true, render: (v) => fmt.number(v) },
    ];
    const node = table(columns, answer.tables);
    node.querySelectorAll("tbody tr").forEach((row, i) => {
      row.setAttribute("data-table", answer.tables[i].table);
      row.setAttribute("data-status", answer.tables[i].status);
    });
    body.append(node);
  }

  function renderAlarms(alarms) {
    const body = clear(document.getElementById("alarms-body"));
    const active = alarms.filter((a) => a.state === "ALARM");
    if (!active.length) {
      body.append(el("p", { class: "empty" }, badge("OK", "ok"), ` None of the ${alarms.length} alarm(s) is in ALARM. `,
        el("a", { href: "/monitoring" }, "All alarms and their history")));
      return;
    }
    const columns = [
      { name: "name", label: "Alarm", render: (v) => el("strong", {}, v) },
      { name: "state", label: "State", render: (v) => badge(v, kind(v)) },
      { name: "reason", label: "Reason", render: (v) => el("span", { class: "small" }, v) },
      { name: "updated", label: "Since", render: (v) => fmt.time(v) },
    ];
    const node = table(columns, active);
    node.querySelectorAll("tbody tr").forEach((row, i) => row.setAttribute("data-alarm", active[i].name));
    body.append(node);
  }

  function renderTrend(series) {
    const node = document.getElementById("dq-trend-chart");
    const note = clear(document.getElementById("dq-trend-empty"));
    const points = series.reduce((n, s) => n + s.points.length, 0);
    node.setAttribute("data-points", String(points));
    node.setAttribute("data-series", String(series.length));
    if (!points) {
      node.hidden = true;
      note.append(empty("No DQ evaluations yet: ", "dataflow run", " evaluates every table's ruleset."));
      return;
    }
    node.hidden = false;
    df.chart(node, {
      animation: false,
      tooltip: { trigger: "axis" },
      legend: { type: "scroll", top: 0 },
      grid: { left: 50, right: 20, top: 56, bottom: 40 },
      xAxis: { type: "time" },
      yAxis: { type: "value", min: 0, max: 1, name: "score" },
      series: series.map((s) => ({
        name: s.dataset, type: "line", showSymbol: true, symbolSize: 6,
        data: s.points.map((p) => [p.time, p.score]),
      })),
    });
  }

  function renderKpis(runs, freshness, alarms) {
    const box = clear(document.getElementById("pipeline-kpis"));
    const kpi = (label, value, extra) => el("div", { class: "kpi", "data-kpi": label },
      el("div", { class: "value" }, value), el("div", { class: "label" }, label), extra || null);
    const last = runs[0];
    const stale = freshness.tables.filter((t) => t.status === "stale").length;
    const active = alarms.filter((a) => a.state === "ALARM").length;
    box.append(
      kpi("last run", last ? badge(last.status, kind(last.status)) : "–", last ? el("div", { class: "small muted" }, fmt.time(last.started_at)) : null),
      kpi("last run duration", last ? seconds(last.duration_s) : "–"),
      kpi("stale tables", `${stale} / ${freshness.tables.length}`),
      kpi("alarms in ALARM", String(active)),
    );
  }

  async function load() {
    const [runs, freshness, trend, alarms] = await Promise.all([
      api("/api/runs?limit=20"), api("/api/pipeline/freshness"), api("/api/pipeline/dq-trend"), api("/api/alarms"),
    ]);
    renderKpis(runs, freshness, alarms);
    renderRuns(runs);
    renderFreshness(freshness);
    renderAlarms(alarms);
    renderTrend(trend);
    document.body.setAttribute("data-loaded", "pipeline");
  }

  guard(load);
})();
