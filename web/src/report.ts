// The daemon's Report JSON (crates/query/src/report.rs) and what the views need of it.

/** One table value, as serde writes the Rust enum `Cell`. */
export type Cell = { Int: number | string } | { Float: [number, number] } | { Str: string } | "Null";

export interface Section {
  title: string;
  shape: { kind: "list" | "tree" | "grid" | "series" };
  columns: string[];
  rows: Cell[][];
  /** Per row, the filter clause that narrows to the row's key (absent: cannot drill). */
  drill?: (string | null)[];
}

export interface Meta {
  analysis: string;
  params: string;
  links: string[];
  start_ms: number;
  end_ms: number;
  filter: string;
  metric: string;
  level: number;
  exact: boolean;
  z_max: number;
  records: number;
  matched: number;
  rethreshold_z: number | null;
  total: number;
  total_stderr: number;
  skipped: string[];
  cached: boolean;
}

export interface Report {
  meta: Meta;
  sections: Section[];
}

/** The cell as text, as the CLI's tables print it. */
export function cellText(c: Cell | undefined): string {
  if (c === undefined || c === "Null") return "";
  if ("Str" in c) return c.Str;
  if ("Int" in c) return String(c.Int);
  const [v, d] = c.Float;
  return v.toFixed(d);
}

/** The cell as a number, if it is one. */
export function cellNum(c: Cell | undefined): number | undefined {
  if (c === undefined || c === "Null") return undefined;
  if ("Int" in c) return Number(c.Int);
  if ("Float" in c) return c.Float[0];
  return undefined;
}

/** A number in SI units (1.2 G), as the terminal report prints them. */
export function fmt(v: number): string {
  const a = Math.abs(v);
  for (const [d, s] of [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]] as [number, string][]) {
    if (a >= d) return (v / d).toFixed(1) + " " + s;
  }
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

function csvField(s: string): string {
  return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

/** Every section as CSV: a `# title` line, a header, the rows (with their drill clause). */
export function toCsv(r: Report): string {
  const out: string[] = [];
  for (const s of r.sections) {
    out.push("# " + s.title);
    const drill = s.drill && s.drill.length > 0;
    out.push([...s.columns, ...(drill ? ["drill"] : [])].map(csvField).join(","));
    s.rows.forEach((row, i) => {
      const cells = row.map((c) => csvField(cellText(c)));
      if (drill) cells.push(csvField(s.drill?.[i] ?? ""));
      out.push(cells.join(","));
    });
    out.push("");
  }
  return out.join("\n");
}
