/* Monitoring page: metric explorer (ListMetrics → GetMetricStatistics), alarm states and their
   history, log search (Logs Insights). Data from /api/metrics, /api/metrics/data, /api/alarms,
   /api/alarms/{name}/history and /api/logs; everything written with df.el (textContent). */
(function () {
  "use strict";
  const { api, el, clear, fmt, badge, table, guard } = window.df;

  const STATE_KIND = { OK: "ok", ALARM: "bad", INSUFFICIENT_DATA: "none" };
  const LEVEL_KIND = { DEBUG: "none", INFO: "info", WARNING: "warn", ERROR: "bad", CRITICAL: "bad" };
  const $ = (id) => document.getElementById(id);

  function empty(text, command, after) {
    return el("p", { class: "empty" }, text, command ? el("code", {}, command) : null, after || null);
  }

  function fill(select, values, label) {
    clear(select);
    values.forEach((v) => select.append(el("option", { value: v }, label ? label(v) : v)));
  }

  // --- metric explorer -------------------------------------------------------------------------

  let metrics = [];
  const dimsText = (dims) => Object.entries(dims).map(([k, v]) => `${k}=${v}`).join(", ") || "(no dimensions)";

  function chooseNamespace() {
    const names = [...new Set(metrics.filter((m) => m.namespace === $("metric-namespace").value).map((m) => m.name))];
    fill($("metric-name"), names);
    chooseMetric();
  }

  function chooseMetric() {
    const ns = $("metric-namespace").value;
    const name = $("metric-name").value;
    const sets = metrics.filter((m) => m.namespace === ns && m.name === name).map((m) => JSON.stringify(m.dimensions));
    fill($("metric-dimensions"), sets, (v) => dimsText(JSON.parse(v)));
  }

  let drawn = 0; // the latest drawMetric call: an older answer arriving late is dropped

  async function drawMetric() {
    const call = ++drawn;
    const node = $("metric-chart");
    const ns = $("metric-namespace").value;
    const name = $("metric-name").value;
    if (!name) return;
    const q = new URLSearchParams({
      namespace: ns, name, stat: $("metric-stat").value, period: $("metric-period").value,
      start: $("metric-range").value, end: "now",
    });
    const dims = JSON.parse($("metric-dimensions").value || "{}");
    for (const [k, v] of Object.entries(dims)) q.append("dimension", `${k}=${v}`);
    const answer = await api(`/api/metrics/data?${q}`);
    if (call !== drawn) return; // the selects changed meanwhile: a newer call draws
    const points = answer.datapoints.map((p) => [p.timestamp, p.value]);
    node.setAttribute("data-points", String(points.length));
    node.setAttribute("data-metric", `${ns}/${name}`);
    node.setAttribute("data-stat", answer.stat);
    node.setAttribute("data-dimensions", dimsText(answer.dimensions));
    clear($("metric-empty"));
    if (!points.length) $("metric-empty").append(empty("No datapoints in this range: choose a longer range."));
    df.chart(node, {
      title: { text: `${ns} ${name} · ${answer.stat} per ${fmt.seconds(answer.period)}`, subtext: dimsText(answer.dimensions), left: "center", textStyle: { fontSize: 13 } },
      animation: false,
      tooltip: { trigger: "axis" },
      grid: { left: 70, right: 20, top: 60, bottom: 40 },
      xAxis: { type: "time", min: answer.start, max: answer.end },
      yAxis: { type: "value", scale: true },
      series: [{ name, type: "line", showSymbol: true, symbolSize: 6, data: points }],
    });
  }

  async function setupExplorer() {
    metrics = await api("/api/metrics");
    if (!metrics.length) {
      $("metric-chart").hidden = true;
      $("metric-empty").append(empty("No metrics yet: every ", "dataflow run", " records them (or `dataflow metrics put`)."));
      return;
    }
    fill($("metric-namespace"), [...new Set(metrics.map((m) => m.namespace))]);
    // Start on the run duration (every run records it), else on the first metric.
    const start = metrics.find((m) => m.namespace === "Dataflow/Pipeline" && m.name === "RunDuration") || metrics[0];
    $("metric-namespace").value = start.namespace;
    $("metric-namespace").addEventListener("change", () => { chooseNamespace(); guard(drawMetric); });
    $("metric-name").addEventListener("change", () => { chooseMetric(); guard(drawMetric); });
    for (const id of ["metric-dimensions", "metric-stat", "metric-period", "metric-range"]) {
      $(id).addEventListener("change", () => guard(drawMetric));
    }
    $("metric-form").addEventListener("submit", (event) => { event.preventDefault(); guard(drawMetric); });
    chooseNamespace();
    $("metric-name").value = start.name;
    chooseMetric();
    await drawMetric();
  }

  // --- alarms ----------------------------------------------------------------------------------

  async function showHistory(name) {
    document.querySelectorAll("#alarms-body tr[data-alarm]").forEach((tr) => tr.classList.toggle("selected", tr.dataset.alarm === name));
    $("alarm-history-title").textContent = `History of ${name}`;
    const items = await api(`/api/alarms/${encodeURIComponent(name)}/history?limit=100`);
    const body = clear($("alarm-history-body"));
    body.setAttribute("data-alarm", name);
    if (!items.length) { body.append(empty("No history yet: alarms are evaluated after every run (", "dataflow alarms evaluate", ").")); return; }
    const columns = [
      { name: "timestamp", label: "Time", render: (v) => fmt.time(v) },
      { name: "type", label: "Type" },
      { name: "new_state", label: "Transition", render: (v, row) => (row.type === "StateUpdate"
        ? el("span", {}, badge(row.old_state, STATE_KIND[row.old_state]), " → ", badge(v, STATE_KIND[v])) : "") },
      { name: "summary", label: "Summary" },
      { name: "data", label: "Reason", render: (v) => el("span", { class: "small" }, (v && v.newState && v.newState.stateReason) || (v && v.detail) || "") },
    ];
    const node = table(columns, items);
    node.querySelectorAll("tbody tr").forEach((tr, i) => tr.setAttribute("data-type", items[i].type));
    body.append(node);
  }

  async function setupAlarms() {
    const alarms = await api("/api/alarms");
    const body = clear($("alarms-body"));
    if (!alarms.length) { body.append(empty("No alarms: define them under alarms: in dataflow.yaml.")); return; }
    const columns = [
      { name: "name", label: "Alarm", render: (v) => el("strong", {}, v) },
      { name: "state", label: "State", render: (v) => badge(v, STATE_KIND[v]) },
      { name: "metric", label: "Metric", render: (v, row) => el("span", { class: "small" },
        `${v.namespace} ${v.name} · ${row.statistic} · ${row.comparison_operator} ${fmt.number(row.threshold)}`) },
      { name: "reason", label: "Reason", render: (v) => el("span", { class: "small" }, v) },
      { name: "updated", label: "Updated", render: (v) => fmt.time(v) },
      { name: "name", label: "\u00a0", render: (v) => el("button", { type: "button", class: "secondary", onclick: () => guard(() => showHistory(v)) }, "History") },
    ];
    const node = table(columns, alarms);
    node.querySelectorAll("tbody tr").forEach((tr, i) => {
      tr.setAttribute("data-alarm", alarms[i].name);
      tr.setAttribute("data-state", alarms[i].state);
    });
    body.append(node);
    const first = alarms.find((a) => a.state === "ALARM") || alarms.find((a) => a.updated) || alarms[0];
    await showHistory(first.name);
  }

  // --- logs ------------------------------------------------------------------------------------

  function cell(value) {
    if (value === null || value === undefined) return "";
    return typeof value === "object" ? JSON.stringify(value) : value;
  }

  async function searchLogs() {
    const q = new URLSearchParams();
    for (const [key, id] of [["filter", "log-filter"], ["level", "log-level"], ["run", "log-run"], ["since", "log-since"], ["query", "log-query"], ["limit", "log-limit"]]) {
      const value = $(id).value.trim();
      if (value) q.set(key, value);
    }
    const answer = await api(`/api/logs?${q}`);
    const results = clear($("log-results"));
    results.setAttribute("data-rows", String(answer.rows.length));
    $("log-summary").textContent = `${answer.rows.length} row(s); ${fmt.number(answer.records_scanned)} record(s) scanned in ${answer.files} file(s).`;
    if (!answer.rows.length) {
      results.append(answer.files ? empty("No record matches: widen the search.") : empty("No logs yet: runs write them (", "dataflow run", ")."));
      return;
    }
    const columns = answer.columns.map((name) => ({
      name, label: name,
      render: name === "level" ? (v) => badge(v, LEVEL_KIND[v]) : (name === "ts" || name === "@timestamp") ? (v) => fmt.time(v)
        : (name === "message" || name === "@message") ? (v) => el("span", { class: "message-cell" }, cell(v)) : (v) => cell(v),
    }));
    results.append(table(columns, answer.rows));
  }

  function setupLogs() {
    $("log-form").addEventListener("submit", (event) => { event.preventDefault(); guard(searchLogs); });
    return searchLogs();
  }

  async function load() {
    await Promise.all([setupExplorer(), setupAlarms(), setupLogs()]);
    document.body.setAttribute("data-loaded", "monitoring");
  }

  guard(load);
})();
