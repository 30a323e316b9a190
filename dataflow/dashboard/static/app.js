/* Shared helpers of the Dataflow pages (window.df). Data is always written with textContent,
   never innerHTML, so nothing a table or a query returns can become markup. */
(function () {
  "use strict";

  /** Fetch JSON from the API; throws Error(message) with the server's {"error": ...}. */
  async function api(path, options) {
    const opts = Object.assign({ headers: {}, credentials: "same-origin" }, options || {});
    if (opts.body !== undefined && typeof opts.body !== "string") {
      opts.body = JSON.stringify(opts.body);
      opts.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(path, opts);
    const type = response.headers.get("content-type") || "";
    const body = type.includes("json") ? await response.json() : await response.text();
    if (!response.ok) {
      const message = body && body.error ? body.error : `${response.status} ${response.statusText}`;
      const error = new Error(message);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  /** el("td", {class: "num"}, "text", childNode, ...) — attributes and children, escaped. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on") && typeof value === "function") {
        node.addEventListener(key.slice(2), value);
      } else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

  function isNumber(value) { return typeof value === "number" && Number.isFinite(value); }

  const fmt = {
    number(value, digits) {
      if (value === null || value === undefined) return "NULL";
      if (!isNumber(value)) return String(value);
      const d = digits === undefined ? (Math.abs(value) >= 100 ? 2 : 4) : digits;
      return Number.isInteger(value) ? value.toLocaleString("en-US")
        : value.toLocaleString("en-US", { maximumFractionDigits: d });
    },
    bytes(n) {
      if (!isNumber(n)) return "–";
      const units = ["B", "KB", "MB", "GB", "TB"];
      let i = 0; let v = n;
      while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
      return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
    },
    ms(n) { return isNumber(n) ? (n >= 1000 ? `${(n / 1000).toFixed(2)} s` : `${Math.round(n)} ms`) : "–"; },
    seconds(n) {
      if (!isNumber(n)) return "–";
      if (n < 90) return `${Math.round(n)} s`;
      if (n < 5400) return `${Math.round(n / 60)} min`;
      if (n < 172800) return `${(n / 3600).toFixed(1)} h`;
      return `${(n / 86400).toFixed(1)} d`;
    },
    time(value) {
      if (!value) return "–";
      const d = new Date(value);
      return Number.isNaN(d.getTime()) ? String(value) : d.toISOString().replace("T", " ").slice(0, 19) + "Z";
    },
    percent(value, digits) { return isNumber(value) ? `${(value * 100).toFixed(digits ?? 1)}%` : "–"; },
  };

  /** A status badge: kind is ok | warn | bad | info | none. */
  function badge(text, kind) { return el("span", { class: `badge ${kind || "none"}` }, text); }

  /** A table of rows (arrays or objects) under `columns` ([name] or [{name, label, num, render}]). */
  function table(columns, rows, options) {
    const cols = columns.map((c) => (typeof c === "string" ? { name: c } : c));
    const head = el("tr", {}, cols.map((c) => el("th", { class: c.num ? "num" : null }, c.label || c.name)));
    const body = rows.map((row, index) => el("tr", {}, cols.map((c, i) => {
      const value = Array.isArray(row) ? row[i] : row[c.name];
      const cell = c.render ? c.render(value, row, index) : (isNumber(value) ? fmt.number(value) : value ?? "NULL");
      return el("td", { class: c.num || isNumber(value) ? "num" : null }, cell);
    })));
    const tableNode = el("table", { class: "data" }, el("thead", {}, head), el("tbody", {}, body));
    return options && options.noScroll ? tableNode : el("div", { class: "scroll" }, tableNode);
  }

  /** Show a message at the top of the page (kind: error | info); replaces the previous one. */
  function message(text, kind) {
    const box = clear(document.getElementById("messages"));
    if (text) box.append(el("p", { class: `message ${kind || "error"}` }, text));
  }

  /** Run an async page loader and show its error as a message (never a stack trace). */
  async function guard(fn) {
    try { return await fn(); } catch (error) { message(error.message || String(error), "error"); return undefined; }
  }

  /** An ECharts chart in `node`, resized with the window. */
  function chart(node, option) {
    const existing = window.echarts.getInstanceByDom(node);
    const instance = existing || window.echarts.init(node, null, { renderer: "canvas" });
    instance.setOption(option, true);
    if (!existing) window.addEventListener("resize", () => instance.resize());
    return instance;
  }

  window.df = { api, el, clear, fmt, badge, table, message, guard, chart, isNumber };
})();
