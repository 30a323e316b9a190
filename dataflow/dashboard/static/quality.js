/* Data quality page: latest outcome per table, failing rules with their EvaluationMessage,
   quarantine counts, score and rule-metric history charts, rulesets with their policies.
   Data from /api/quality/*; everything written with df.el (textContent). */
(function () {
  "use strict";
  const { api, el, clear, fmt, badge, table, guard } = window.df;

  const RESULT_KIND = { PASS: "ok", FAIL: "bad", ERROR: "warn" };
  const POLICY_KIND = { fail: "bad", quarantine: "warn", warn: "info" };

  function empty(text, command, after) {
    return el("p", { class: "empty" }, text, command ? el("code", {}, command) : null, after || null);
  }

  /** Mark each body row of a df.table with data-* attributes from its row object. */
  function tagRows(node, rows, attrs) {
    node.querySelectorAll("tbody tr").forEach((tr, i) => {
      for (const [name, get] of Object.entries(attrs)) tr.setAttribute(`data-${name}`, String(get(rows[i])));
    });
    return node;
  }

  function renderOutcomes(outcomes, policies) {
    const body = clear(document.getElementById("outcomes-body"));
    if (!outcomes.length) {
      body.append(empty("No DQ evaluations yet: ", "dataflow run", " audits every table with its ruleset (or try `dataflow dq check`)."));
      return;
    }
    const columns = [
      { name: "dataset", label: "Table", render: (v) => el("code", {}, v) },
      { name: "ruleset_name", label: "Ruleset" },
      { name: "policy", label: "Policy", render: (_v, row) => { const p = policies[row.table]; return p ? badge(p, POLICY_KIND[p]) : "–"; } },
      { name: "result", label: "Result", render: (v) => badge(v, RESULT_KIND[v]) },
      { name: "score", label: "Score", num: true, render: (v) => fmt.percent(v) },
      { name: "rules_passed", label: "Passed", num: true },
      { name: "rules_failed", label: "Failed", num: true, render: (v, row) => fmt.number(v + row.rules_errored) },
      { name: "rows", label: "Rows", num: true },
      { name: "completed_on", label: "Evaluated", render: (v) => fmt.time(v) },
      { name: "run_id", label: "Run", render: (v) => (v ? el("code", {}, v) : "–") },
    ];
    body.append(tagRows(table(columns, outcomes), outcomes, { table: (r) => r.table, result: (r) => r.result }));
  }

  function renderFailing(outcomes) {
    const body = clear(document.getElementById("failing-body"));
    const failing = [];
    for (const outcome of outcomes) {
      for (const rule of outcome.rules) if (rule.result !== "PASS") failing.push({ dataset: outcome.dataset, ...rule });
    }
    if (!failing.length) {
      body.append(el("p", { class: "empty" }, badge("PASS", "ok"),
        outcomes.length ? " Every rule passed in each table's latest evaluation." : " Nothing evaluated yet."));
      return;
    }
    const columns = [
      { name: "dataset", label: "Table", render: (v) => el("code", {}, v) },
      { name: "name", label: "Rule" },
      { name: "description", label: "Rule text", render: (v) => el("code", {}, v) },
      { name: "result", label: "Result", render: (v) => badge(v, RESULT_KIND[v]) },
      { name: "message", label: "EvaluationMessage", render: (v) => el("span", { class: "message-cell" }, v || "–") },
      { name: "metrics", label: "Metrics", render: (v) => el("span", { class: "small muted" },
        Object.entries(v || {}).map(([k, x]) => `${k} = ${fmt.number(x)}`).join("; ")) },
    ];
    const node = table(columns, failing);
    body.append(tagRows(node, failing, { table: (r) => r.dataset, rule: (r) => r.name }));
  }

  function renderQuarantine(rows) {
    const body = clear(document.getElementById("quarantine-body"));
    if (!rows.length) {
      body.append(empty("No quarantined rows. Tables whose policy is quarantine move the rows failing a row-level rule to ",
        "market.<table>__quarantine", "."));
      return;
    }
    const columns = [
      { name: "table", label: "Quarantine table", render: (v) => el("code", {}, `market.${v}`) },
      { name: "rows", label: "Rows", num: true },
      { name: "by_run", label: "Per run", render: (v, row) => (row.run_column
        ? el("div", {}, v.map((r) => el("div", { class: "small", "data-run": r.run_id }, el("code", {}, r.run_id || "(none)"), ` ${fmt.number(r.rows)} rows`)))
        : el("span", { class: "muted small" }, "no run id column")) },
    ];
    body.append(tagRows(table(columns, rows), rows, { table: (r) => r.source_table, rows: (r) => r.rows }));
  }

  function renderRulesets(rulesets) {
    const body = clear(document.getElementById("rulesets-body"));
    const columns = [
      { name: "table", label: "Table", render: (v) => el("code", {}, `market.${v}`) },
      { name: "source", label: "Ruleset", render: (v, row) => (v ? el("span", {}, badge(v, v === "project" ? "info" : "none"), " ", el("code", {}, row.path))
        : el("span", { class: "muted" }, "none: published unaudited")) },
      { name: "policy", label: "Policy", render: (v, row) => (v ? el("span", {}, badge(v, POLICY_KIND[v]), el("div", { class: "small muted" }, row.policy_source)) : "–") },
      { name: "rules", label: "Rules", num: true },
      { name: "text", label: "DQDL", render: (v, row) => (v ? el("details", {},
        el("summary", {}, row.error ? "show (does not parse)" : "show"),
        row.error ? el("p", { class: "message error" }, row.error) : null,
        el("pre", { class: "dqdl" }, v)) : "–") },
    ];
    body.append(tagRows(table(columns, rulesets, { noScroll: true }), rulesets,
      { table: (r) => r.table, policy: (r) => r.policy || "", source: (r) => r.source || "" }));
  }

  function lineChart(node, name, points, yName, range) {
    node.setAttribute("data-points", String(points.length));
    df.chart(node, {
      animation: false,
      tooltip: { trigger: "axis" },
      grid: { left: 60, right: 20, top: 30, bottom: 40 },
      xAxis: { type: "time" },
      yAxis: Object.assign({ type: "value", name: yName, scale: true }, range || {}),
      series: [{ name, type: "line", showSymbol: true, symbolSize: 7, data: points }],
    });
  }

  // The latest call of each: an older answer arriving after a newer one is dropped.
  let metricCall = 0;
  let historyCall = 0;

  async function drawMetric() {
    const call = ++metricCall;
    const tableName = document.getElementById("history-table").value;
    const key = document.getElementById("history-metric").value;
    const node = document.getElementById("metric-chart");
    document.getElementById("metric-title").textContent = key ? `Rule metric: ${key}` : "Rule metric";
    if (!tableName || !key) { node.setAttribute("data-points", "0"); return; }
    const q = new URLSearchParams({ table: tableName, key });
    const series = await api(`/api/quality/metrics/series?${q}`);
    if (call !== metricCall) return;
    lineChart(node, key, series.map((p) => [p.time, p.value]), "value");
    node.setAttribute("data-metric", key);
  }

  async function drawHistory() {
    const call = ++historyCall;
    const tableName = document.getElementById("history-table").value;
    if (!tableName) return;
    const q = new URLSearchParams({ table: tableName });
    const [history, keys] = await Promise.all([api(`/api/quality/history?${q}`), api(`/api/quality/metrics?${q}`)]);
    if (call !== historyCall) return;
    const score = document.getElementById("score-chart");
    lineChart(score, tableName, history.map((h) => [h.CompletedOn, h.Score]), "score", { min: 0, max: 1, scale: false });
    score.setAttribute("data-table", tableName);
    const select = clear(document.getElementById("history-metric"));
    keys.forEach((k) => select.append(el("option", { value: k }, k)));
    // Row count is in every ruleset's metrics and tells the most at a glance.
    const preferred = keys.find((k) => k === "Dataset.*.RowCount") || keys[0];
    if (preferred) select.value = preferred;
    await drawMetric();
  }

  function setupHistory(outcomes) {
    const select = clear(document.getElementById("history-table"));
    if (!outcomes.length) {
      document.getElementById("history-empty").append(empty("No history yet: every ", "dataflow run", " records one evaluation per table."));
      return;
    }
    outcomes.forEach((o) => select.append(el("option", { value: o.dataset }, o.dataset)));
    const firstFailing = outcomes.find((o) => o.result !== "PASS");
    select.value = (firstFailing || outcomes[0]).dataset;
    select.addEventListener("change", () => guard(drawHistory));
    document.getElementById("history-metric").addEventListener("change", () => guard(drawMetric));
    return drawHistory();
  }

  async function load() {
    const [outcomes, rulesets, quarantine] = await Promise.all([
      api("/api/quality/outcomes"), api("/api/quality/rulesets"), api("/api/quality/quarantine"),
    ]);
    const policies = Object.fromEntries(rulesets.map((r) => [r.table, r.policy]));
    renderOutcomes(outcomes, policies);
    renderFailing(outcomes);
    renderQuarantine(quarantine);
    renderRulesets(rulesets);
    await setupHistory(outcomes);
    document.body.setAttribute("data-loaded", "quality");
  }

  guard(load);
})();
