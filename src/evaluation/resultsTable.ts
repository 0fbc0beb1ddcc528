// One table of the paper's semantic results (VOC12 val mIoU, METHOD.md §7.1) from the summaries our runs
// wrote: "clustering" = the stage-v DeepLab evaluated directly (argmax; ± CRF; one row per CRF round,
// from train-deeplab's rounds.json or any JSON with `miou`), "LC" = the linear probe (linear-probe's
// summary.json). Each row stands next to the paper's and the README's number and names the command and
// data that produced it; a row whose summary is missing says "not run". All mIoU inputs are in [0, 1].
import * as fs from "node:fs";
import { inputError } from "../errors.js";

/** The published numbers (METHOD.md §7.1: Papers-with-Code entries of the paper; the README's re-run). */
export const PAPER_SEMANTIC = {
  clustering: { paper: 45.8, readme: null as number | null },
  clusteringCrf: { paper: 48.9, readme: 48.46 },
  linear: { paper: 58.7, readme: null as number | null },
  linearCrf: { paper: 62.8, readme: 62.77 },
} as const;

export type SemanticMetric = keyof typeof PAPER_SEMANTIC;

export interface SemanticRow {
  metric: SemanticMetric;
  /** What the row is ("Clustering, round 1 + CRF", "LC (linear probe) + CRF"). */
  setting: string;
  /** Ours in percent, or null when not run. */
  ours: number | null;
  paper: number;
  readme: number | null;
  /** The command that produced it (or where to find it), the data, the summary file. */
  command: string | null;
  data: string | null;
  source: string | null;
}

export interface SemanticTable {
  rows: SemanticRow[];
  notes: string[];
}

const NOT_RUN = "not run";

function readJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw inputError(file, "cannot read the summary", e);
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw inputError(file, "the summary is not valid JSON", e);
  }
}

function fraction(v: unknown, file: string, key: string): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v !== "number" || !(v >= 0 && v <= 1)) throw inputError(file, `${key} must be a number in [0, 1] (an mIoU fraction), got ${JSON.stringify(v)}`);
  return 100 * v;
}

function text(v: unknown): string | null {
  return typeof v === "string" && v ? v : null;
}

/** Describes a train-deeplab config's data when the summary names no command. */
function describeConfig(config: unknown): string | null {
  if (!config || typeof config !== "object") return null;
  const c = config as Record<string, unknown>;
  const parts = ["recipe", "epochs", "batchSize", "inputSize", "init"].filter((k) => c[k] !== undefined).map((k) => `${k} ${JSON.stringify(c[k])}`);
  return parts.length ? parts.join(", ") : null;
}

/**
 * Clustering rows from one stage-v summary: `{rounds: [{round, valMiou, valMiouCrf}], config?, command?,
 * data?}` (train-deeplab --crf-rounds) or `{miou, miou_crf?, round?, command?, data?}` (e.g. eval-semseg
 * --json of segment's predictions).
 */
export function clusteringRows(file: string): SemanticRow[] {
  const j = readJson(file);
  const command = text(j.command) ?? `train-deeplab (see ${file})`;
  const data = text(j.data) ?? describeConfig(j.config);
  const rows: SemanticRow[] = [];
  const push = (round: number | null, plain: number | null, crf: number | null) => {
    const r = round === null ? "" : `, round ${round}`;
    rows.push({ metric: "clustering", setting: `Clustering (stage-v DeepLab, argmax)${r}`, ours: plain, ...PAPER_SEMANTIC.clustering, command, data, source: file });
    rows.push({ metric: "clusteringCrf", setting: `Clustering + CRF${r}`, ours: crf, ...PAPER_SEMANTIC.clusteringCrf, command, data, source: file });
  };
  if (Array.isArray(j.rounds)) {
    if (j.rounds.length === 0) throw inputError(file, "rounds is empty");
    j.rounds.forEach((r: Record<string, unknown>, i: number) => {
      push(typeof r.round === "number" ? r.round : i, fraction(r.valMiou ?? r.miou, file, `rounds[${i}].valMiou`), fraction(r.valMiouCrf ?? r.miou_crf, file, `rounds[${i}].valMiouCrf`));
    });
  } else if ("miou" in j) {
    push(typeof j.round === "number" ? j.round : null, fraction(j.miou, file, "miou"), fraction(j.miou_crf, file, "miou_crf"));
  } else {
    throw inputError(file, "not a stage-v summary: expected `rounds` (train-deeplab's rounds.json) or `miou`");
  }
  return rows;
}

/** LC rows from a linear-probe summary.json. */
export function linearRows(file: string): SemanticRow[] {
  const j = readJson(file);
  if (j.kind !== "linear-probe" || !("miou" in j)) throw inputError(file, "not a linear-probe summary (kind \"linear-probe\" with miou)");
  const recipe = j.recipe && typeof j.recipe === "object" ? text((j.recipe as Record<string, unknown>).name) : null;
  const tag = recipe ? ` (recipe ${recipe})` : "";
  const common = { command: text(j.command), data: text(j.data), source: file };
  return [
    { metric: "linear", setting: `LC (linear probe on head[4])${tag}`, ours: fraction(j.miou, file, "miou"), ...PAPER_SEMANTIC.linear, ...common },
    { metric: "linearCrf", setting: `LC + CRF${tag}`, ours: fraction(j.miou_crf, file, "miou_crf"), ...PAPER_SEMANTIC.linearCrf, ...common },
  ];
}

/** The table from the summaries that exist; a missing file (or none given) gives "not run" rows. */
export function semanticTable(inputs: { clustering: string[]; linear: string[] }): SemanticTable {
  const rows: SemanticRow[] = [];
  const notes: string[] = [];
  const missing = (metrics: SemanticMetric[], settings: string[], file: string | null) => metrics.map((metric, i): SemanticRow => (
    { metric, setting: settings[i], ours: null, ...PAPER_SEMANTIC[metric], command: null, data: null, source: file }));
  const clustering = inputs.clustering.filter((f) => fs.existsSync(f));
  const linear = inputs.linear.filter((f) => fs.existsSync(f));
  for (const f of inputs.clustering.concat(inputs.linear)) if (!fs.existsSync(f)) notes.push(`${f}: not found (its rows say "${NOT_RUN}")`);
  if (clustering.length) for (const f of clustering) rows.push(...clusteringRows(f));
  else rows.push(...missing(["clustering", "clusteringCrf"], ["Clustering (stage-v DeepLab, argmax)", "Clustering + CRF"], inputs.clustering[0] ?? null));
  if (linear.length) for (const f of linear) rows.push(...linearRows(f));
  else rows.push(...missing(["linear", "linearCrf"], ["LC (linear probe on head[4])", "LC + CRF"], inputs.linear[0] ?? null));
  return { rows, notes };
}

const fmt = (v: number | null) => (v === null ? "—" : v.toFixed(2));
const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

/** The table as Markdown. */
export function semanticTableMarkdown(t: SemanticTable): string {
  const lines = [
    "# Semantic segmentation results (mIoU %; the paper's columns are PASCAL VOC 2012 val, 21 classes; the data column says what ours ran on)",
    "",
    "Ours next to the paper (Papers-with-Code entries of arXiv 2206.06363) and the reference README's re-run of",
    "the released models (62.77: the `multi_obj_avg/linear_plus_crf` LC model; 48.46: one clustering model, the",
    "paper averages runs). Clustering = the stage-v DeepLab's argmax with the stage-ii cluster→class mapping;",
    "LC = only its last 1×1 conv (head[4]) retrained on ground truth. Numbers from other data than VOC12 val",
    "(e.g. the demo's COCO-derived labels) are not comparable with the paper's: the data column says which.",
    "",
    "| setting | ours | paper | README | command | data |",
    "|---|---:|---:|---:|---|---|",
  ];
  for (const r of t.rows) {
    const ours = r.ours === null ? NOT_RUN : fmt(r.ours);
    const command = r.command ? `\`${cell(r.command)}\`` : r.source ? `(${cell(r.source)})` : "—";
    lines.push(`| ${cell(r.setting)} | ${ours} | ${fmt(r.paper)} | ${fmt(r.readme)} | ${command} | ${cell(r.data ?? "—")} |`);
  }
  if (t.notes.length) lines.push("", ...t.notes.map((n) => `- ${n}`));
  return lines.join("\n") + "\n";
}
