// The per-image runner every dataset-wide stage shares (gen-masks, gen-segmentation, detect, crf):
// a resumable journal, shards, a record of bad items, progress with ETA and an abort signal.
//
// Files, for an output path OUT (a JSON file, or e.g. DIR/summary.json for a folder of outputs):
//   OUT.partial.jsonl   journal: a header line {kind, config}, then one JSON line per finished item,
//                       appended as each item finishes. `resume` skips the items it holds; bytes after
//                       the last newline (a line torn by a kill) are cut off. Removed by `finishRun`.
//   OUT.errors.jsonl    {file, image_id, reason} per item whose entry has a `problem`, sorted by id.
// The caller writes OUT from the journal (`readEntry`) after `runPerImage` returns, so a resumed run, an
// uninterrupted run and merged shards can give the same bytes.
import * as fs from "node:fs";
import * as path from "node:path";
import { MaskdistillError, inputError } from "../errors.js";
import { progress } from "./progress.js";

/** The fields every journal entry has; `problem` entries go to the errors file with their `reason`. */
export interface EntryBase {
  index: number;
  image_id: number;
  file: string;
  problem?: string;
  reason?: string;
}

/** One item of the list: `id` is the image id, `file` names it in the errors file and the progress line. */
export interface RunItem {
  id: number;
  file: string;
}

export interface PerImageOptions<I extends RunItem, E extends EntryBase, S> {
  /** Command name: progress label, journal kind ("maskdistill <label> journal") and error messages. */
  label: string;
  /** All items; the runner takes this shard's part (`shardImages`). */
  items: I[];
  /** Output path; the journal and errors file are named after it. */
  out: string;
  /** Settings that make outputs differ: stored in the journal header and compared on resume. */
  config: Record<string, unknown>;
  /** Named in the "other settings" error, e.g. "images, threshold or shard". */
  settingsHint?: string;
  shard?: { index: number; count: number };
  resume?: boolean;
  quiet?: boolean;
  /** Stops between items; the journal keeps what is done, `resume` continues. */
  signal?: AbortSignal;
  /**
   * Computes one item's journal entry (must start with index, image_id, file). A MaskdistillError is
   * recorded as a `problem: "error"` entry and the run goes on; any other error stops the run.
   */
  process: (item: I, index: number) => Promise<E> | E;
  /** The small per-item summary kept in memory (counts for the caller's summary). */
  summarize: (entry: E) => S;
  /** Called after each computed item. */
  onItem?: (index: number, item: I, entry: E) => void;
}

/** What stays in memory per finished item: where its journal line is, and its summary. */
export interface RunRecord<S> {
  index: number;
  image_id: number;
  file: string;
  offset: number;
  bytes: number;
  problem?: string;
  reason?: string;
  info: S;
}

export interface PerImageRun<I, E, S> {
  /** This shard's items, in list order. */
  items: I[];
  /** One record per item, in list order (records[j] belongs to items[j]). */
  records: RunRecord<S>[];
  /** Items taken from the journal instead of recomputed. */
  resumed: number;
  /** Items computed in this run and the seconds they took. */
  computed: number;
  seconds: number;
  journal: string;
  /** Reads an item's entry back from the journal (open until `finishRun`). */
  readEntry(record: RunRecord<S>): E;
}

export const journalPath = (out: string): string => `${out}.partial.jsonl`;
export const errorsPath = (out: string): string => `${out}.errors.jsonl`;

/** The items of shard `index` of `count`: positions j with j % count == index. */
export function shardImages<T>(images: T[], shard?: { index: number; count: number }): T[] {
  if (!shard || shard.count === 1) return images.slice();
  return images.filter((_, j) => j % shard.count === shard.index);
}

/**
 * Runs `process` over this shard's items that the journal does not hold yet, appending one line per
 * item. Returns the records of all items; write the output with `readEntry`, then call `finishRun`.
 */
export async function runPerImage<I extends RunItem, E extends EntryBase, S>(opts: PerImageOptions<I, E, S>): Promise<PerImageRun<I, E, S>> {
  const list = shardImages(opts.items, opts.shard);
  const kind = `maskdistill ${opts.label} journal`;
  const journal = journalPath(opts.out);
  fs.mkdirSync(path.dirname(path.resolve(opts.out)), { recursive: true });
  const done = new Map<number, RunRecord<S>>();
  const recordOf = (e: E, offset: number, bytes: number): RunRecord<S> => ({
    index: e.index, image_id: e.image_id, file: e.file, offset, bytes, problem: e.problem, reason: e.reason, info: opts.summarize(e),
  });
  let journalBytes: number;
  if (opts.resume && fs.existsSync(journal)) {
    const { entries, bytes } = readJournal<E>(journal, kind, opts.label, opts.config, opts.settingsHint);
    for (const { entry, offset, bytes: n } of entries) if (!done.has(entry.index)) done.set(entry.index, recordOf(entry, offset, n));
    journalBytes = bytes;
  } else {
    const header = JSON.stringify({ kind, config: opts.config }) + "\n";
    fs.writeFileSync(journal, header);
    journalBytes = Buffer.byteLength(header);
  }

  const todo = list.map((item, j) => ({ item, index: j })).filter(({ index }) => !done.has(index));
  const bar = progress(opts.label, todo.length, { quiet: opts.quiet });
  const fd = fs.openSync(journal, "a");
  const t0 = Date.now();
  try {
    for (const { item, index } of todo) {
      if (opts.signal?.aborted) {
        throw new MaskdistillError(`interrupted after ${done.size} of ${list.length} images; rerun with --resume to continue`, journal);
      }
      let entry: E;
      try {
        entry = await opts.process(item, index);
      } catch (e) {
        // bad input (unreadable image, ...) is recorded; anything else is a bug: stop
        if (!(e instanceof MaskdistillError)) throw inputError(item.file, `${opts.label} failed on this image`, e);
        const reason = e.file && e.message.startsWith(`${e.file}: `) ? e.message.slice(e.file.length + 2) : e.message;
        entry = { index, image_id: item.id, file: item.file, problem: "error", reason } as E;
      }
      const line = Buffer.from(JSON.stringify(entry) + "\n");
      fs.writeSync(fd, line);
      done.set(index, recordOf(entry, journalBytes, line.length));
      journalBytes += line.length;
      bar.tick(1, path.basename(item.file));
      opts.onItem?.(index, item, entry);
    }
  } finally {
    fs.closeSync(fd);
    bar.stop();
  }
  const seconds = (Date.now() - t0) / 1000;
  const records = list.map((_, j) => done.get(j)!);
  return {
    items: list, records, resumed: list.length - todo.length, computed: todo.length, seconds, journal,
    readEntry(r: RunRecord<S>): E {
      const buf = Buffer.alloc(r.bytes);
      const jfd = fs.openSync(journal, "r");
      try {
        fs.readSync(jfd, buf, 0, r.bytes, r.offset);
      } finally {
        fs.closeSync(jfd);
      }
      return JSON.parse(buf.toString("utf8")) as E;
    },
  };
}

/** Writes OUT.errors.jsonl (problem entries sorted by image id) and removes the journal. */
export function finishRun(out: string, run: { records: RunRecord<unknown>[]; journal: string }): number {
  const lines = run.records
    .filter((r) => r.problem)
    .sort((a, b) => a.image_id - b.image_id || a.index - b.index)
    .map((r) => JSON.stringify({ file: r.file, image_id: r.image_id, reason: r.reason }));
  writeLinesAtomic(errorsPath(out), lines);
  fs.rmSync(run.journal, { force: true });
  return lines.length;
}

/** Writes `text` to `file` through a temporary file and a rename. */
export function writeFileAtomic(file: string, text: string | Uint8Array): void {
  const tmp = path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw inputError(file, "could not be written", e);
  }
}

export function writeLinesAtomic(file: string, lines: string[]): void {
  writeFileAtomic(file, lines.map((l) => l + "\n").join(""));
}

/**
 * Reads a journal and checks its header. Bytes after the last newline are a line torn by a kill during
 * the write: they are cut off the file so that appending continues on a clean line.
 */
function readJournal<E>(file: string, kind: string, label: string, config: Record<string, unknown>, hint?: string): { entries: { entry: E; offset: number; bytes: number }[]; bytes: number } {
  const buf = fs.readFileSync(file);
  const complete = buf.lastIndexOf(0x0a) + 1;
  if (complete < buf.length) fs.truncateSync(file, complete);
  const entries: { entry: E; offset: number; bytes: number }[] = [];
  let offset = 0, lineNo = 0;
  while (offset < complete) {
    const end = buf.indexOf(0x0a, offset) + 1;
    lineNo++;
    let obj: any;
    try {
      obj = JSON.parse(buf.subarray(offset, end).toString("utf8"));
    } catch (e) {
      throw inputError(file, `journal line ${lineNo} is not valid JSON; rerun without --resume to start over`, e);
    }
    if (lineNo === 1) {
      if (obj?.kind !== kind) throw new MaskdistillError(`not a ${label} journal (bad header line)`, file);
      if (JSON.stringify(obj.config) !== JSON.stringify(config)) {
        throw new MaskdistillError(`journal was written with other settings${hint ? ` (${hint})` : ""}; rerun without --resume to start over`, file);
      }
    } else {
      entries.push({ entry: obj as E, offset, bytes: end - offset });
    }
    offset = end;
  }
  if (lineNo === 0) throw new MaskdistillError("journal has no header line; rerun without --resume to start over", file);
  return { entries, bytes: complete };
}
