// Tables with arquero (danfojs-node cannot install offline: see README "Dependencies").
import * as aq from "arquero";
import { displayBundle } from "./display.js";

export type Row = Record<string, unknown>;

/** An arquero table from rows of plain objects. */
export function tableFromRows(rows: Row[]) {
  return aq.from(rows);
}

/** Rows with non-integer numbers rounded to `digits` (for display). */
export function roundRows(rows: Row[], digits = 3): Row[] {
  const fmt = (v: unknown) => (typeof v === "number" && !Number.isInteger(v) ? Number(v.toFixed(digits)) : v);
  return rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, fmt(v)])));
}

/** Rows as an HTML table (numbers rounded to `digits`), optionally with a bold title above it. */
export function tableHtml(rows: Row[], opts: { digits?: number; title?: string } = {}): string {
  return (opts.title ? `<b>${opts.title}</b>` : "") + aq.from(roundRows(rows, opts.digits)).toHTML({ limit: Infinity });
}

/** Shows rows as an HTML table (plus a Markdown text form); numbers rounded to `digits`. */
export function showTable(rows: Row[], opts: { digits?: number; title?: string } = {}): void {
  const t = aq.from(roundRows(rows, opts.digits));
  displayBundle({ "text/html": tableHtml(rows, opts), "text/plain": t.toMarkdown({ limit: Infinity }) });
}
