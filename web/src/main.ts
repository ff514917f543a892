// flowdrill's web UI: one page over the daemon's JSON API (docs/api.md).
//
// The whole state (view, selection, view parameters) lives in the page's query string:
// every change is a history.pushState, back/forward re-render from the URL (popstate),
// and a URL can be shared. Clicking a row, bar or heatmap cell narrows the filter with the
// row's `drill` clause from the report.

import * as echarts from "echarts/core";
import { BarChart, CustomChart, HeatmapChart, LineChart } from "echarts/charts";
import {
  BrushComponent,
  GridComponent,
  LegendComponent,
  TitleComponent,
  ToolboxComponent,
  TooltipComponent,
  VisualMapComponent,
} from "echarts/components";
import { CanvasRenderer } from "echarts/renderers";
import { Cell, Report, Section, cellNum, cellText, fmt, toCsv } from "./report";

echarts.use([
  BarChart,
  CustomChart,
  HeatmapChart,
  LineChart,
  BrushComponent,
  GridComponent,
  LegendComponent,
  TitleComponent,
  ToolboxComponent,
  TooltipComponent,
  VisualMapComponent,
  CanvasRenderer,
]);

/** The views, their API analysis and the parameters each keeps in the URL. */
const VIEWS: Record<string, { analysis: string; label: string; params: string[] }> = {
  series: { analysis: "series", label: "Time series", params: ["categories"] },
  hhh: { analysis: "hhh", label: "HHH", params: ["dim", "threshold"] },
  hhh2: { analysis: "hhh2", label: "Heatmap", params: ["rows", "cols", "threshold"] },
  top: { analysis: "top", label: "Top N", params: ["by", "top"] },
  dist: { analysis: "dist", label: "Flow sizes", params: ["ignore"] },
  compare: { analysis: "compare", label: "Compare", params: ["by", "top", "before-time"] },
  scans: { analysis: "scans", label: "Scans & floods", params: ["top"] },
};

/** Defaults of the URL state; a parameter equal to its default is left out of the URL. */
const DEFAULTS: Record<string, string> = {
  view: "series",
  link: "",
  time: "all",
  filter: "",
  metric: "bytes",
  threshold: "5",
  dim: "src",
  rows: "src",
  cols: "dst",
  by: "srcip",
  top: "20",
  categories: "internet2",
  ignore: "2",
  "before-time": "",
  hhhshow: "tree",
};

type State = Record<string, string>;

function readState(): State {
  const q = new URLSearchParams(location.search);
  const s: State = { ...DEFAULTS };
  for (const k of Object.keys(DEFAULTS)) {
    const v = q.get(k);
    if (v !== null) s[k] = v;
  }
  if (!VIEWS[s.view]) s.view = DEFAULTS.view;
  return s;
}

function stateUrl(s: State): string {
  const q = new URLSearchParams();
  for (const k of Object.keys(DEFAULTS)) {
    if (s[k] !== DEFAULTS[k]) q.set(k, s[k]);
  }
  const t = q.toString();
  return location.pathname + (t ? "?" + t : "") + location.hash;
}

let state: State = readState();
let report: Report | null = null;
let chart: echarts.ECharts | null = null;
let seq = 0;

/** Changes the state: a new history entry, and a new answer. */
function navigate(change: Partial<State>): void {
  state = { ...state, ...(change as State) };
  history.pushState(null, "", stateUrl(state));
  render();
}

window.addEventListener("popstate", () => {
  state = readState();
  render();
});

// ---- the API ----

function token(): string | null {
  const m = /(?:^|[#&])token=([A-Za-z0-9_-]+)/.exec(location.hash);
  if (m) sessionStorage.setItem("flowdrill-token", m[1]);
  return sessionStorage.getItem("flowdrill-token");
}

async function api(path: string, params: Record<string, string>): Promise<unknown> {
  const q = new URLSearchParams(params).toString();
  const headers: Record<string, string> = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = "Bearer " + t;
  const r = await fetch("api/v1/" + path + (q ? "?" + q : ""), { headers });
  const body = await r.json().catch(() => ({ error: { message: r.statusText } }));
  if (!r.ok) {
    const e = (body as { error?: { message?: string } }).error;
    throw new Error(e?.message ?? `HTTP ${r.status}`);
  }
  return body;
}

/** The analysis parameters of the current state. */
function analysisParams(s: State): Record<string, string> {
  const p: Record<string, string> = { time: s.time, metric: s.metric };
  if (s.link) p.link = s.link;
  if (s.filter.trim()) p.filter = s.filter;
  for (const k of VIEWS[s.view].params) {
    if (s[k] !== "") p[k] = s[k];
  }
  if (s.view === "compare" && !p["before-time"] && (s.time === "all" || s.time === "")) {
    // compare needs a bounded time; the last hour against the hour before is a good start.
    p.time = "-1h";
  }
  return p;
}

// ---- the page ----

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

const app = document.getElementById("app") as HTMLElement;
const tabs = el("nav", { class: "tabs" });
const controls = el("div", { class: "controls" });
const filterBox = el("div", { class: "filter" });
const filterInput = el("input", {
  type: "text",
  id: "filter",
  "data-testid": "filter",
  placeholder: "filter, e.g. proto tcp and dst port 443",
  spellcheck: "false",
  autocomplete: "off",
});
const filterError = el("pre", { class: "filter-error", "data-testid": "filter-error" });
const status = el("div", { class: "status", "data-testid": "status" });
const errorBar = el("div", { class: "error", "data-testid": "error" });
const chartDiv = el("div", { class: "chart", id: "chart", "data-testid": "chart" });
const tables = el("div", { class: "tables", "data-testid": "tables" });

app.append(
  el("header", {}, el("h1", {}, "flowdrill"), tabs),
  controls,
  filterBox,
  errorBar,
  status,
  chartDiv,
  tables,
);

filterBox.append(
  el("label", { for: "filter" }, "Filter"),
  filterInput,
  el("button", { id: "apply", "data-testid": "apply" }, "Apply"),
  el("button", { id: "clear-filter", title: "Remove the filter" }, "×"),
  filterError,
);
filterInput.addEventListener("keydown", (e) => {
  if (e.key === "Enter") applyFilter();
});
filterInput.addEventListener("input", () => {
  window.clearTimeout(checkTimer);
  checkTimer = window.setTimeout(() => void checkFilter(filterInput.value), 250);
});
(filterBox.querySelector("#apply") as HTMLElement).onclick = applyFilter;
(filterBox.querySelector("#clear-filter") as HTMLElement).onclick = () => {
  filterInput.value = "";
  navigate({ filter: "" });
};
let checkTimer = 0;

async function applyFilter(): Promise<void> {
  const text = filterInput.value;
  if (await checkFilter(text)) navigate({ filter: text });
}

/** Checks a filter with the daemon; shows its error under the box at its position. */
async function checkFilter(text: string): Promise<boolean> {
  if (!text.trim()) {
    showFilterError(null, text);
    return true;
  }
  try {
    const r = (await api("filter", { filter: text })) as {
      ok: boolean;
      error?: { message: string; offset?: number; column?: number; line?: number; expected?: string[] };
    };
    showFilterError(r.ok ? null : r.error ?? { message: "bad filter" }, text);
    return r.ok;
  } catch (e) {
    showFilterError({ message: String((e as Error).message) }, text);
    return false;
  }
}

function showFilterError(
  e: { message: string; offset?: number; column?: number; line?: number; expected?: string[] } | null,
  text: string,
): void {
  filterInput.classList.toggle("bad", e !== null);
  if (!e) {
    filterError.textContent = "";
    filterError.hidden = true;
    return;
  }
  filterError.hidden = false;
  const lines: string[] = [];
  if (e.offset !== undefined && e.offset !== null) {
    const lineStart = text.lastIndexOf("\n", e.offset - 1) + 1;
    const lineEnd = text.indexOf("\n", e.offset);
    const line = text.slice(lineStart, lineEnd < 0 ? undefined : lineEnd);
    lines.push(line, " ".repeat([...text.slice(lineStart, e.offset)].length) + "^");
  }
  const where = e.column ? ` (column ${e.column})` : "";
  lines.push(e.message + where);
  if (e.expected && e.expected.length) lines.push("expected: " + e.expected.join(", "));
  filterError.textContent = lines.join("\n");
}

function select(name: string, options: [string, string][], value: string): HTMLSelectElement {
  const s = el("select", { name, "data-testid": name });
  for (const [v, label] of options) {
    const o = el("option", { value: v }, label);
    if (v === value) o.selected = true;
    s.append(o);
  }
  s.onchange = () => navigate({ [name]: s.value });
  return s;
}

function textInput(name: string, value: string, width = "8em"): HTMLInputElement {
  const i = el("input", { type: "text", name, "data-testid": name, style: `width:${width}` });
  i.value = value;
  i.addEventListener("keydown", (e) => {
    if (e.key === "Enter") navigate({ [name]: i.value });
  });
  i.addEventListener("change", () => {
    if (i.value !== state[name]) navigate({ [name]: i.value });
  });
  return i;
}

let links: { name: string }[] = [];

function drawControls(): void {
  tabs.replaceChildren(
    ...Object.entries(VIEWS).map(([v, d]) => {
      const b = el("button", { "data-view": v, "data-testid": "tab-" + v }, d.label);
      if (v === state.view) b.classList.add("active");
      b.onclick = () => navigate({ view: v });
      return b;
    }),
  );
  const c: (Node | string)[] = [
    el("label", {}, "Link ", select("link", [["", "all links"], ...links.map((l) => [l.name, l.name] as [string, string])], state.link)),
    el("label", {}, "Time ", textInput("time", state.time, "18em")),
    el("label", {}, "Metric ", select("metric", [["bytes", "bytes"], ["packets", "packets"], ["flows", "flows"]], state.metric)),
  ];
  const v = state.view;
  if (v === "hhh" || v === "hhh2") {
    c.push(el("label", {}, "Threshold % ", textInput("threshold", state.threshold, "4em")));
  }
  if (v === "hhh") {
    c.push(
      el("label", {}, "Dimension ", select("dim", [["src", "source"], ["dst", "destination"], ["app", "application"], ["app-dst", "application (dst port)"]], state.dim)),
      el("label", {}, "Show ", select("hhhshow", [["tree", "indented tree"], ["bars", "bars"]], state.hhhshow)),
    );
  }
  if (v === "hhh2") {
    const dims: [string, string][] = [["src", "source"], ["dst", "destination"], ["app", "application"], ["app-dst", "application (dst port)"]];
    c.push(el("label", {}, "Rows ", select("rows", dims, state.rows)), el("label", {}, "Columns ", select("cols", dims, state.cols)));
  }
  if (v === "top" || v === "compare") {
    c.push(el("label", {}, "By ", textInput("by", state.by, "7em")));
  }
  if (v === "top" || v === "compare" || v === "scans") {
    c.push(el("label", {}, "N ", textInput("top", state.top, "4em")));
  }
  if (v === "compare") {
    c.push(el("label", {}, "Before ", textInput("before-time", state["before-time"], "14em")));
  }
  if (v === "series") {
    c.push(el("label", {}, "Categories ", select("categories", [["internet2", "Internet2"], ["brownlee", "Brownlee"], ["proto", "protocols"]], state.categories)));
  }
  if (v === "dist") {
    c.push(el("label", {}, "Ignore ≤ packets ", textInput("ignore", state.ignore, "4em")));
  }
  const csv = el("button", { "data-testid": "export-csv" }, "CSV");
  csv.onclick = exportCsv;
  const png = el("button", { "data-testid": "export-png" }, "PNG");
  png.onclick = exportPng;
  c.push(el("span", { class: "export" }, "Export ", csv, png));
  controls.replaceChildren(...c);
  filterInput.value = state.filter;
}

function download(name: string, href: string): void {
  const a = el("a", { href, download: name });
  document.body.append(a);
  a.click();
  a.remove();
}

function exportCsv(): void {
  if (!report) return;
  const url = URL.createObjectURL(new Blob([toCsv(report)], { type: "text/csv" }));
  download(`flowdrill-${state.view}.csv`, url);
  window.setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function exportPng(): void {
  if (!chart) return;
  download(`flowdrill-${state.view}.png`, chart.getDataURL({ type: "png", pixelRatio: 2, backgroundColor: "#fff" }));
}

/** Narrows the filter with a drill clause. */
function drill(clause: string | null | undefined): void {
  if (!clause) return;
  const f = state.filter.trim();
  navigate({ filter: f ? `(${f}) and ${clause}` : clause });
}

// ---- rendering ----

async function render(): Promise<void> {
  const my = ++seq;
  drawControls();
  document.body.dataset.state = "loading";
  errorBar.hidden = true;
  status.textContent = "loading…";
  await checkFilter(state.filter);
  let r: Report;
  try {
    r = (await api(VIEWS[state.view].analysis, analysisParams(state))) as Report;
  } catch (e) {
    if (my !== seq) return;
    report = null;
    errorBar.textContent = (e as Error).message;
    errorBar.hidden = false;
    status.textContent = "";
    tables.replaceChildren();
    chart?.clear();
    document.body.dataset.state = "error";
    return;
  }
  if (my !== seq) return;
  report = r;
  status.textContent = describe(r);
  drawChart(r);
  drawTables(r);
  document.body.dataset.state = "ready";
}

function describe(r: Report): string {
  const m = r.meta;
  const t0 = new Date(m.start_ms).toISOString().replace("T", " ").slice(0, 19);
  const t1 = new Date(m.end_ms).toISOString().replace("T", " ").slice(0, 19);
  const est = m.exact
    ? `exact (${m.records} records)`
    : `estimated from ${m.records} records (z ≤ ${m.z_max}${m.rethreshold_z ? `, re-sampled from ${m.matched}` : ""})`;
  const total = m.total_stderr > 0 ? `${fmt(m.total)} ± ${fmt(1.96 * m.total_stderr)}` : fmt(m.total);
  return `${m.analysis} ${m.params} | ${m.links.join(",") || "no links"} | ${t0} .. ${t1} UTC | ${m.filter ? "filter " + m.filter + " | " : ""}${m.metric} total ${total} | ${est}${m.cached ? " | cached" : ""}`;
}

/** A series section as one row per time and one column per category with traffic. */
function pivotSeries(s: Section): Section {
  const ti = col(s, "time");
  const ci = col(s, "category");
  const di = col(s, "direction");
  const vi = col(s, "value");
  const name = (row: Cell[]) => cellText(row[ci]) + (di >= 0 ? " " + cellText(row[di]) : "");
  const totals = new Map<string, number>();
  for (const row of s.rows) totals.set(name(row), (totals.get(name(row)) ?? 0) + (cellNum(row[vi]) ?? 0));
  const cats = [...totals.keys()].filter((c) => (totals.get(c) ?? 0) > 0);
  const byTime = new Map<string, Map<string, Cell>>();
  for (const row of s.rows) {
    const t = cellText(row[ti]);
    if (!byTime.has(t)) byTime.set(t, new Map());
    byTime.get(t)!.set(name(row), row[vi]);
  }
  return {
    title: s.title,
    shape: { kind: "list" },
    columns: ["time", ...cats],
    rows: [...byTime.entries()].map(([t, m]) => [{ Str: t } as Cell, ...cats.map((c) => m.get(c) ?? ("Null" as Cell))]),
  };
}

function drawTables(r: Report): void {
  const sections = r.sections.map((s) => (s.shape.kind === "series" ? pivotSeries(s) : s));
  tables.replaceChildren(
    ...sections.map((s, si) => {
      const wrap = el("section", { "data-section": String(si) });
      wrap.append(el("h2", {}, s.title));
      const table = el("table", { "data-testid": "table-" + si });
      const depthCol = s.columns.indexOf("depth");
      const keyCol = s.columns.findIndex((c) => c === "key" || c === "host");
      const head = el("tr", {}, ...s.columns.filter((_, i) => i !== depthCol).map((c) => el("th", {}, c)));
      table.append(el("thead", {}, head));
      const body = el("tbody");
      s.rows.forEach((row, ri) => {
        const tr = el("tr");
        row.forEach((cell, ci) => {
          if (ci === depthCol) return;
          const td = el("td", {}, cellText(cell));
          if (typeof cellNum(cell) === "number") td.classList.add("num");
          if (ci === keyCol && s.shape.kind === "tree" && depthCol >= 0) {
            td.style.paddingLeft = `${0.4 + 1.2 * (cellNum(row[depthCol]) ?? 0)}em`;
          }
          tr.append(td);
        });
        const clause = s.drill?.[ri];
        if (clause) {
          tr.classList.add("drill");
          tr.title = "drill down: " + clause;
          tr.dataset.drill = clause;
          tr.onclick = () => drill(clause);
        }
        body.append(tr);
      });
      table.append(body);
      wrap.append(table);
      return wrap;
    }),
  );
}

function ensureChart(): echarts.ECharts {
  if (!chart) {
    chart = echarts.init(chartDiv, undefined, { renderer: "canvas" });
    // For the end-to-end tests (web/tests/e2e.mjs): pixel positions of chart items.
    (window as unknown as { flowdrillChart: echarts.ECharts }).flowdrillChart = chart;
    window.addEventListener("resize", () => chart?.resize());
  }
  chart.off("click");
  chart.off("brushEnd");
  chart.clear();
  return chart;
}

/** Parses the report's "YYYY-MM-DD hh:mm:ss.mmm" (UTC) times. */
function parseTime(s: string): number {
  return Date.parse(s.replace(" ", "T") + "Z");
}

function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19);
}

function col(s: Section, name: string): number {
  return s.columns.indexOf(name);
}

function drawChart(r: Report): void {
  const c = ensureChart();
  const s = r.sections[0];
  if (!s) return;
  chartDiv.dataset.kind = s.shape.kind;
  chartDiv.style.height = "";
  c.resize();
  if (s.shape.kind === "series") return drawSeries(c, s);
  if (s.shape.kind === "grid") return drawHeatmap(c, r);
  if (state.view === "dist") return drawDist(c, s);
  return drawBars(c, s);
}

function drawSeries(c: echarts.ECharts, s: Section): void {
  const ti = col(s, "time");
  const ci = col(s, "category");
  const vi = col(s, "value");
  const di = col(s, "direction");
  const byCat = new Map<string, [number, number][]>();
  for (const row of s.rows) {
    const name = cellText(row[ci]) + (di >= 0 ? " " + cellText(row[di]) : "");
    if (!byCat.has(name)) byCat.set(name, []);
    byCat.get(name)!.push([parseTime(cellText(row[ti])), cellNum(row[vi]) ?? 0]);
  }
  // Categories without traffic clutter the legend.
  const series = [...byCat.entries()]
    .filter(([, pts]) => pts.some((p) => p[1] > 0))
    .map(([name, data]) => ({
      name,
      type: "line" as const,
      stack: "all",
      areaStyle: {},
      symbol: "none",
      step: "start" as const,
      lineStyle: { width: 0.5 },
      emphasis: { focus: "series" as const },
      data,
    }));
  c.setOption({
    animation: false,
    tooltip: { trigger: "axis", valueFormatter: (v: unknown) => fmt(Number(v)) },
    legend: { type: "scroll", top: 0 },
    grid: { left: 70, right: 20, top: 40, bottom: 40 },
    xAxis: { type: "time" },
    yAxis: { type: "value", axisLabel: { formatter: (v: number) => fmt(v) } },
    toolbox: { show: false },
    brush: { xAxisIndex: 0, brushType: "lineX", brushMode: "single", throttleType: "debounce" },
    series,
  });
  // The brush is always on: dragging across the chart selects a time range.
  c.dispatchAction({
    type: "takeGlobalCursor",
    key: "brush",
    brushOption: { brushType: "lineX", brushMode: "single" },
  });
  c.on("brushEnd", (p: unknown) => {
    const areas = (p as { areas?: { coordRange?: number[] }[] }).areas;
    const range = areas?.[0]?.coordRange;
    if (!range || range.length < 2) return;
    const [a, b] = [Math.floor(range[0] / 1000) * 1000, Math.ceil(range[1] / 1000) * 1000];
    if (b > a) navigate({ time: `${isoSeconds(a)}..${isoSeconds(b)}` });
  });
}

function drawHeatmap(c: echarts.ECharts, r: Report): void {
  const s = r.sections[0];
  const [ri, ci, vi, si, ei] = ["row", "col", "value", "share", "stderr"].map((n) => col(s, n));
  // The "Axes" section lists each axis's keys in order (hierarchy order, coarse first).
  const axes = r.sections.find((x) => x.title === "Axes");
  const axisKeys = (axis: string) =>
    axes ? axes.rows.filter((row) => cellText(row[col(axes, "axis")]) === axis).map((row) => cellText(row[col(axes, "key")])) : [];
  const rowKeys: string[] = axisKeys("row");
  const colKeys: string[] = axisKeys("col");
  const index = (keys: string[], k: string) => {
    let i = keys.indexOf(k);
    if (i < 0) {
      keys.push(k);
      i = keys.length - 1;
    }
    return i;
  };
  const data = s.rows.map((row, i) => ({
    value: [index(colKeys, cellText(row[ci])), index(rowKeys, cellText(row[ri])), cellNum(row[vi]) ?? 0],
    row: i,
  }));
  const max = Math.max(1, ...data.map((d) => d.value[2]));
  c.setOption({
    animation: false,
    tooltip: {
      position: "top",
      formatter: (p: { data: { row: number } }) => {
        const row = s.rows[p.data.row];
        const err = ei >= 0 ? ` ± ${fmt(1.96 * (cellNum(row[ei]) ?? 0))} (95 %)` : " (exact)";
        return `<b>${esc(cellText(row[ri]))}</b> × <b>${esc(cellText(row[ci]))}</b><br>${r.meta.metric}: ${fmt(cellNum(row[vi]) ?? 0)}${err}<br>share: ${cellText(row[si])} %`;
      },
    },
    grid: { left: 180, right: 30, top: 20, bottom: 130 },
    xAxis: { type: "category", data: colKeys, axisLabel: { rotate: 40, fontSize: 10 }, splitArea: { show: true } },
    yAxis: { type: "category", data: rowKeys, inverse: true, axisLabel: { fontSize: 10 }, splitArea: { show: true } },
    visualMap: {
      min: 0,
      max,
      calculable: true,
      orient: "horizontal",
      left: "center",
      bottom: 0,
      formatter: (v: number) => fmt(v),
      inRange: { color: ["#e8f1fa", "#6baed6", "#08306b"] },
    },
    series: [{ type: "heatmap", data, label: { show: false }, emphasis: { itemStyle: { borderColor: "#e6550d", borderWidth: 2 } } }],
  });
  c.on("click", (p: unknown) => {
    const row = (p as { data?: { row?: number } }).data?.row;
    if (row !== undefined) drill(s.drill?.[row]);
  });
}

function drawDist(c: echarts.ECharts, s: Section): void {
  const labels = s.rows.map((r) => {
    const lo = cellText(r[col(s, "packets_lo")]);
    const hi = cellText(r[col(s, "packets_hi")]);
    return lo === hi ? lo : `${lo}-${hi}`;
  });
  const line = (name: string) => ({
    name: name.replace("cum_", "cumulative ").replace("_pct", " %"),
    type: "line" as const,
    data: s.rows.map((r) => cellNum(r[col(s, name)]) ?? 0),
  });
  c.setOption({
    animation: false,
    tooltip: { trigger: "axis" },
    legend: { top: 0 },
    grid: { left: 60, right: 20, top: 40, bottom: 60 },
    xAxis: { type: "category", data: labels, name: "flow size (packets)", nameLocation: "middle", nameGap: 40 },
    yAxis: { type: "value", max: 100, name: "%" },
    series: [line("cum_flows_pct"), line("cum_packets_pct"), line("cum_bytes_pct")],
  });
}

/** Horizontal bars of the first section's key and value, with 95 % error bars. */
function drawBars(c: echarts.ECharts, s: Section): void {
  const keyName = ["key", "host"].find((k) => col(s, k) >= 0);
  const valName = ["value", "delta", "score", state.metric].find((k) => col(s, k) >= 0);
  if (!keyName || !valName) return;
  const ki = col(s, keyName);
  const vi = col(s, valName);
  const ei = col(s, "stderr");
  const depth = col(s, "depth");
  const rows = s.rows.slice(0, 40);
  const keys = rows.map((r) => (depth >= 0 && state.hhhshow === "tree" ? "  ".repeat(cellNum(r[depth]) ?? 0) : "") + cellText(r[ki]));
  const vals = rows.map((r) => cellNum(r[vi]) ?? 0);
  const errs = rows.map((r) => (ei >= 0 ? 1.96 * (cellNum(r[ei]) ?? 0) : 0));
  chartDiv.style.height = `${Math.max(260, 24 * rows.length + 60)}px`;
  c.resize();
  c.setOption({
    animation: false,
    tooltip: {
      trigger: "item",
      formatter: (p: { dataIndex: number }) =>
        `<b>${esc(keys[p.dataIndex].trim())}</b><br>${valName}: ${fmt(vals[p.dataIndex])}${errs[p.dataIndex] ? " ± " + fmt(errs[p.dataIndex]) + " (95 %)" : ""}`,
    },
    grid: { left: 260, right: 40, top: 10, bottom: 30 },
    yAxis: { type: "category", data: keys, inverse: true, axisLabel: { fontFamily: "monospace", fontSize: 11 } },
    xAxis: { type: "value", axisLabel: { formatter: (v: number) => fmt(v) } },
    series: [
      { type: "bar", data: vals, itemStyle: { color: "#3a6ea5" } },
      {
        type: "custom",
        data: vals.map((v, i) => [i, v - errs[i], v + errs[i]]),
        renderItem: (_p: unknown, api: { value: (i: number) => number; coord: (v: number[]) => number[] }) => {
          const i = api.value(0);
          const lo = api.coord([api.value(1), i]);
          const hi = api.coord([api.value(2), i]);
          if (hi[0] - lo[0] < 1) return { type: "group", children: [] };
          const st = { stroke: "#c0392b", lineWidth: 1.5 };
          return {
            type: "group",
            children: [
              { type: "line", shape: { x1: lo[0], y1: lo[1], x2: hi[0], y2: hi[1] }, style: st },
              { type: "line", shape: { x1: lo[0], y1: lo[1] - 4, x2: lo[0], y2: lo[1] + 4 }, style: st },
              { type: "line", shape: { x1: hi[0], y1: hi[1] - 4, x2: hi[0], y2: hi[1] + 4 }, style: st },
            ],
          };
        },
        encode: { x: [1, 2], y: 0 },
        z: 10,
        silent: true,
      },
    ],
  });
  c.on("click", (p: unknown) => {
    const i = (p as { dataIndex?: number; seriesType?: string }).dataIndex;
    if (i !== undefined) drill(s.drill?.[i]);
  });
}

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c] as string);
}

async function start(): Promise<void> {
  try {
    const r = (await api("links", {})) as { links: { name: string }[] };
    links = r.links;
  } catch (e) {
    errorBar.textContent = (e as Error).message;
    errorBar.hidden = false;
  }
  history.replaceState(null, "", stateUrl(state));
  await render();
}

void start();
