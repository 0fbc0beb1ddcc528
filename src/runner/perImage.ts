// The per-image runner every dataset-wide stage shares (gen-masks, gen-segmentation, detect, crf):
// a resumable journal, shards, a record of bad items, progress with ETA and an abort signal.
//
// Files, for an output path OUT (a JSON file, or e.g. DIR/summary.json for a folder of outputs):
//   OUT.partial.jsonl   journal: a header line {kind, config}, then one JSON line per finished item,
//                       appended as each item finishes. `resume` skips the items it holds; bytes after
//                       the last newline (a line torn by a kill) are cut off. Removed by `finishRun`.
//   OUT.errors.jsonl    {file, image_id, reason} per item whose entry has a `problem`, sorted by id.
//   OUT.lock            the pid of the run writing OUT, from `runPerImage` to `finishRun` (or an
//                       error): a second run on the same output is refused while that process lives;
//                       a lock whose process is gone (kill -9) is taken over.
// Shards: shard i of n writes OUT' = `shardOutputPath(OUT, shard)` (DIR/name.shard-i-of-n.ext), so that
// the shards of an array job share one folder without clobbering each other (nor each other's journal
// and lock). Stages whose output is a folder of per-image files plus a summary keep a finished shard's
// journal as OUT'.entries.jsonl (`finishRun(..., {keepEntries})`); `mergeShardRuns` reads those back as
// one run over all items, from which the caller writes OUT exactly as a single run does. A finished
// shard — or a single run that kept its entries, as a pipeline's steps do — rerun with `resume` takes its
// entries file back as its journal (nothing is recomputed); kept entries of other settings are a stale
// cache and the run starts over.
// The output location is checked before any work (`checkOutputLocation`), and no `*.tmp` file is left
// behind by a failed write.
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
  process: (item: I, index: number, slot: number) => Promise<E> | E;
  /**
   * Items in flight at once (default 1): for a `process` that hands some items to helper threads (`slot`
   * k of 0…concurrency−1 takes every concurrency-th item of the run). Entries still reach the journal in
   * item order, so the output is the same as one at a time.
   */
  concurrency?: number;
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
/** A finished shard's journal, kept for `mergeShardRuns`. */
export const entriesPath = (out: string): string => `${out}.entries.jsonl`;

/** One shard of a dataset-wide run: the items at positions j with j % count == index. */
export interface Shard {
  index: number;
  count: number;
}

/** The items of shard `index` of `count`: positions j with j % count == index. */
export function shardImages<T>(images: T[], shard?: Shard): T[] {
  if (!shard || shard.count === 1) return images.slice();
  return images.filter((_, j) => j % shard.count === shard.index);
}

/** `name.ext` → [`name`, `.ext`] (a name without extension, or a dot file, has ext ""). */
function splitExtension(base: string): [string, string] {
  const ext = path.extname(base);
  return ext && ext !== base ? [base.slice(0, -ext.length), ext] : [base, ""];
}

/** The output of one shard: DIR/name.shard-i-of-n.ext; OUT itself for an unsharded run. */
export function shardOutputPath(out: string, shard?: Shard): string {
  if (!shard || shard.count <= 1) return out;
  const [stem, ext] = splitExtension(path.basename(out));
  return path.join(path.dirname(out), `${stem}.shard-${shard.index}-of-${shard.count}${ext}`);
}

/**
 * The finished shards of OUT: the files `shardOutputPath(OUT, {i, n}) + suffix` beside it, for one n
 * and every i. Refuses, naming what to do, when there are none, when shards of several counts are
 * there, or when a shard is missing (saying whether its journal shows it started).
 */
export function findShardOutputs(out: string, suffix = ""): { count: number; files: string[] } {
  const dir = path.dirname(path.resolve(out));
  const [stem, ext] = splitExtension(path.basename(out));
  const esc = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const pattern = new RegExp(`^${esc(stem)}\\.shard-(\\d+)-of-(\\d+)${esc(ext + suffix)}$`);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    throw inputError(out, `cannot list the folder ${dir} of the shard outputs`, e);
  }
  const byCount = new Map<number, Set<number>>();
  for (const name of names) {
    const m = pattern.exec(name);
    if (!m) continue;
    const index = Number(m[1]), count = Number(m[2]);
    if (index >= count) continue;
    if (!byCount.has(count)) byCount.set(count, new Set());
    byCount.get(count)!.add(index);
  }
  const example = `${stem}.shard-I-of-N${ext}${suffix}`;
  if (byCount.size === 0) throw new MaskdistillError(`no finished shard outputs (${example}) in ${dir}: run the shards first (--shard i/n or --shard auto)`, out);
  if (byCount.size > 1) {
    const counts = [...byCount.keys()].sort((a, b) => a - b);
    throw new MaskdistillError(`${dir} holds the shards of runs with ${counts.join(" and ")} shards (${example}); remove the stale ones and merge again`, out);
  }
  const [[count, present]] = [...byCount.entries()];
  const files = Array.from({ length: count }, (_, i) => shardOutputPath(path.join(dir, path.basename(out)), { index: i, count }) + suffix);
  const missing = files.map((_, i) => i).filter((i) => !present.has(i));
  if (missing.length) {
    const state = missing.map((i) => {
      const journal = journalPath(shardOutputPath(path.join(dir, path.basename(out)), { index: i, count }));
      return fs.existsSync(journal) ? `${i} (started: ${path.basename(journal)}; rerun it with --resume)` : `${i} (not started)`;
    });
    throw new MaskdistillError(`${missing.length} of ${count} shards have not finished: shard ${state.join(", ")}; run them, then merge again`, out);
  }
  return { count, files };
}

/**
 * Runs `process` over this shard's items that the journal does not hold yet, appending one line per
 * item. Returns the records of all items; write the output with `readEntry`, then call `finishRun`.
 */
export async function runPerImage<I extends RunItem, E extends EntryBase, S>(opts: PerImageOptions<I, E, S>): Promise<PerImageRun<I, E, S>> {
  const list = shardImages(opts.items, opts.shard);
  const kind = `maskdistill ${opts.label} journal`;
  const journal = journalPath(opts.out);
  checkOutputLocation(opts.out);
  const release = acquireOutputLock(opts.out, opts.label);
  try {
    // temporaries of a run killed during a final write (OUT, its errors file)
    const base = path.basename(opts.out).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    removeStaleTemporaries(path.dirname(path.resolve(opts.out)), new RegExp(`^\\.${base}(?:\\.errors\\.jsonl)?\\.(?<pid>\\d+)(?:\\.\\d+)?(?:\\.probe)?\\.tmp$`));
    return await runLocked(opts, list, kind, journal);
  } catch (e) {
    release();
    throw e;
  }
}

async function runLocked<I extends RunItem, E extends EntryBase, S>(opts: PerImageOptions<I, E, S>, list: I[], kind: string, journal: string): Promise<PerImageRun<I, E, S>> {
  const done = new Map<number, RunRecord<S>>();
  const recordOf = (e: E, offset: number, bytes: number): RunRecord<S> => ({
    index: e.index, image_id: e.image_id, file: e.file, offset, bytes, problem: e.problem, reason: e.reason, info: opts.summarize(e),
  });
  let journalBytes: number;
  const entries = entriesPath(opts.out);
  // a finished run (or shard) rerun with resume: its kept journal becomes the journal again — when it was written
  // with these settings; a kept journal of other settings is a stale cache, not an interrupted run: start over
  if (opts.resume && !fs.existsSync(journal) && fs.existsSync(entries)) {
    const header = journalHeader(entries);
    if (header?.kind === kind && JSON.stringify(header.config) === JSON.stringify(opts.config)) fs.renameSync(entries, journal);
  }
  if (opts.resume && fs.existsSync(journal)) {
    const { entries, bytes } = readJournal<E>(journal, kind, opts.label, opts.config, opts.settingsHint);
    for (const { entry, offset, bytes: n } of entries) if (!done.has(entry.index)) done.set(entry.index, recordOf(entry, offset, n));
    journalBytes = bytes;
  } else {
    // a fresh start: the entries of an earlier finished run are stale now (a merge must not take them)
    fs.rmSync(entries, { force: true });
    const header = JSON.stringify({ kind, config: opts.config }) + "\n";
    try {
      fs.writeFileSync(journal, header);
    } catch (e) {
      throw inputError(journal, "the journal could not be written", e);
    }
    journalBytes = Buffer.byteLength(header);
  }

  const todo = list.map((item, j) => ({ item, index: j })).filter(({ index }) => !done.has(index));
  const bar = progress(opts.label, todo.length, { quiet: opts.quiet });
  const fd = fs.openSync(journal, "a");
  const t0 = Date.now();
  try {
    const concurrency = Math.max(1, opts.concurrency ?? 1);
    // started items, oldest first; each settles to its entry or its error (handled at once: no unhandled rejection)
    const inFlight: { item: I; index: number; result: Promise<{ entry: E } | { error: unknown }> }[] = [];
    const record = async () => {
      const { item, index, result } = inFlight.shift()!;
      const r = await result;
      let entry: E;
      if ("entry" in r) entry = r.entry;
      else {
        const e = r.error;
        // bad input (unreadable image, ...) is recorded; anything else is a bug: stop
        if (!(e instanceof MaskdistillError)) throw inputError(item.file, `${opts.label} failed on this image`, e);
        const reason = e.file && e.message.startsWith(`${e.file}: `) ? e.message.slice(e.file.length + 2) : e.message;
        entry = { index, image_id: item.id, file: item.file, problem: "error", reason } as E;
      }
      const line = Buffer.from(JSON.stringify(entry) + "\n");
      try {
        // a short write (the disk filling up) returns a count; the rest then fails with the reason
        for (let at = 0; at < line.length;) at += fs.writeSync(fd, line, at, line.length - at);
      } catch (e) {
        // a full disk, a removed folder, ...: what the journal holds so far is kept, without a torn line
        try { fs.ftruncateSync(fd, journalBytes); } catch { /* --resume drops a torn tail too */ }
        throw inputError(journal, `could not append image ${item.file} to the journal after ${done.size} of ${list.length} images${ioFaultHint(e)}; free space or fix the folder, then rerun with --resume`, e);
      }
      done.set(index, recordOf(entry, journalBytes, line.length));
      journalBytes += line.length;
      bar.tick(1, path.basename(item.file));
      opts.onItem?.(index, item, entry);
    };
    try {
      for (const [n, { item, index }] of todo.entries()) {
        if (opts.signal?.aborted) {
          throw new MaskdistillError(`interrupted after ${done.size} of ${list.length} images; rerun with --resume to continue`, journal);
        }
        const result = (async () => opts.process(item, index, n % concurrency))().then((entry) => ({ entry }), (error: unknown) => ({ error }));
        inFlight.push({ item, index, result });
        if (inFlight.length >= concurrency) await record();
      }
      while (inFlight.length) await record();
    } finally {
      // a run stopped early: let the items still in flight finish (their helpers are the caller's to close)
      await Promise.all(inFlight.map((w) => w.result));
    }
  } finally {
    fs.closeSync(fd);
    bar.stop();
  }
  const seconds = (Date.now() - t0) / 1000;
  const records = list.map((_, j) => done.get(j)!);
  return {
    items: list, records, resumed: list.length - todo.length, computed: todo.length, seconds, journal,
    readEntry: (r: RunRecord<S>): E => readJournalLine<E>(journal, r.offset, r.bytes),
  };
}

/** The journal line at `offset` (`bytes` long), parsed. */
function readJournalLine<E>(file: string, offset: number, bytes: number): E {
  const buf = Buffer.alloc(bytes);
  const fd = fs.openSync(file, "r");
  try {
    fs.readSync(fd, buf, 0, bytes, offset);
  } finally {
    fs.closeSync(fd);
  }
  return JSON.parse(buf.toString("utf8")) as E;
}

export interface MergeShardsOptions<I extends RunItem, E extends EntryBase, S> {
  /** Command name, as in the shards' runs. */
  label: string;
  /** All items, as a single run lists them. */
  items: I[];
  /** The single run's output path; shard i of n kept `entriesPath(shardOutputPath(out, {i, n}))`. */
  out: string;
  /** The journal config of a run of `shard` (each shard's header must hold exactly this). */
  configFor: (shard: Shard) => Record<string, unknown>;
  settingsHint?: string;
  summarize: (entry: E) => S;
}

/**
 * The finished shards of `out` (`finishRun` with keepEntries) read back as one run over all items in
 * list order, entries renumbered to their position in the full list: write OUT from it exactly as after
 * `runPerImage`, then call `finishRun(out, run)`. Holds OUT's lock until then. Refuses missing or
 * incomplete shards and shards run with other settings (`configFor`).
 */
export function mergeShardRuns<I extends RunItem, E extends EntryBase, S>(opts: MergeShardsOptions<I, E, S>): PerImageRun<I, E, S> {
  checkOutputLocation(opts.out);
  const { count, files } = findShardOutputs(opts.out, ".entries.jsonl");
  const release = acquireOutputLock(opts.out, opts.label);
  try {
    const kind = `maskdistill ${opts.label} journal`;
    const records: RunRecord<S>[] = new Array(opts.items.length);
    const fileOf: string[] = new Array(opts.items.length);
    files.forEach((file, i) => {
      const shard = { index: i, count };
      const list = shardImages(opts.items, shard);
      const { entries } = readJournal<E>(file, kind, opts.label, opts.configFor(shard), opts.settingsHint,
        `shard ${i} of ${count} was run with other settings than this merge; merge with the shards' flags, or rerun the shard`);
      const seen = new Set<number>();
      for (const { entry, offset, bytes } of entries) {
        const j = entry.index;
        if (seen.has(j)) continue;
        if (!Number.isInteger(j) || j < 0 || j >= list.length || entry.image_id !== list[j].id) {
          throw new MaskdistillError(`entry ${JSON.stringify({ index: j, image_id: entry.image_id })} is not an item of shard ${i} of ${count}; rerun that shard`, file);
        }
        seen.add(j);
        const position = i + j * count;
        entry.index = position;
        fileOf[position] = file;
        records[position] = {
          index: position, image_id: entry.image_id, file: entry.file, offset, bytes, problem: entry.problem, reason: entry.reason, info: opts.summarize(entry),
        };
      }
      if (seen.size !== list.length) throw new MaskdistillError(`shard ${i} of ${count} holds ${seen.size} of its ${list.length} items; rerun it with --resume`, file);
    });
    return {
      items: opts.items.slice(), records, resumed: opts.items.length, computed: 0, seconds: 0, journal: journalPath(opts.out),
      readEntry(r: RunRecord<S>): E {
        const entry = readJournalLine<E>(fileOf[r.index], r.offset, r.bytes);
        entry.index = r.index;
        return entry;
      },
    };
  } catch (e) {
    release();
    throw e;
  }
}

/**
 * Writes OUT.errors.jsonl (problem entries sorted by image id) and removes the journal — or, with
 * keepEntries (a shard whose outputs `mergeShardRuns` joins), renames it to OUT.entries.jsonl.
 */
export function finishRun(out: string, run: { records: RunRecord<unknown>[]; journal: string }, opts: { keepEntries?: boolean } = {}): number {
  const lines = run.records
    .filter((r) => r.problem)
    .sort((a, b) => a.image_id - b.image_id || a.index - b.index)
    .map((r) => JSON.stringify({ file: r.file, image_id: r.image_id, reason: r.reason }));
  try {
    writeLinesAtomic(errorsPath(out), lines);
    if (opts.keepEntries) fs.renameSync(run.journal, entriesPath(out));
    else fs.rmSync(run.journal, { force: true });
  } finally {
    releaseOutputLock(out);
  }
  return lines.length;
}

export const lockPath = (out: string): string => `${out}.lock`;

/**
 * Checks before any work that OUT can be written: its folder exists or can be made, OUT is not a
 * folder, and a file can be created there. ENOTDIR (a file where a folder should be), EACCES, EROFS,
 * ENOSPC, ... become one MaskdistillError naming the path and the fault.
 */
export function checkOutputLocation(out: string): void {
  const abs = path.resolve(out);
  const dir = path.dirname(abs);
  // the nearest part of the path that exists must be a folder; the missing ones are made one by one
  // (not mkdir -p: node's recursive mkdir can spin forever under /proc)
  const missing: string[] = [];
  for (let p = dir; ; p = path.dirname(p)) {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(p);
    } catch {
      st = undefined;
    }
    if (st) {
      if (!st.isDirectory()) throw new MaskdistillError(`cannot write the output here: ${p} is a file, not a folder (ENOTDIR); choose another output path`, out);
      break;
    }
    missing.push(p);
    if (path.dirname(p) === p) break;
  }
  for (const p of missing.reverse()) {
    try {
      fs.mkdirSync(p);
    } catch (e) {
      if ((e as { code?: unknown }).code === "EEXIST" && fs.statSync(p).isDirectory()) continue;
      throw outputError(out, `cannot create the output folder ${dir}`, e);
    }
  }
  if (fs.existsSync(abs) && fs.statSync(abs).isDirectory()) {
    throw new MaskdistillError("the output path is a folder (EISDIR); give a file path", out);
  }
  // a probe file tells read-only folders and file systems, and a full disk, before the work starts
  const probe = path.join(dir, `.${path.basename(abs)}.${process.pid}.probe.tmp`);
  try {
    fs.writeFileSync(probe, "probe\n", { flag: "wx" });
  } catch (e) {
    throw outputError(out, `cannot write in the output folder ${dir}`, e);
  } finally {
    try { fs.rmSync(probe, { force: true }); } catch { /* nothing to clean */ }
  }
}

/** What an I/O fault's code (EACCES, EROFS, ENOSPC, ...) means for a user, as " (…)"; "" when unknown. */
function ioFaultHint(e: unknown): string {
  const code = (e as { code?: unknown })?.code;
  const hint = code === "EACCES" || code === "EPERM" ? "no permission to write there"
    : code === "EROFS" ? "the file system is read-only"
    : code === "ENOSPC" ? "the disk is full"
    : code === "ENOTDIR" ? "a file stands where a folder should be"
    : undefined;
  return hint ? ` (${hint})` : "";
}

/** An I/O fault on an output path: the code and what to do. */
function outputError(out: string, what: string, e: unknown): MaskdistillError {
  return inputError(out, `${what}${ioFaultHint(e)}; choose another output path`, e);
}

/**
 * Removes the files in `dir` whose names match `pattern` (with a `pid` group) and whose process is
 * gone: temporaries that a kill during a write left behind. Returns their names.
 */
export function removeStaleTemporaries(dir: string, pattern: RegExp): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const pid = Number(pattern.exec(name)?.groups?.pid);
    if (!Number.isInteger(pid) || pid === process.pid || pidAlive(pid)) continue;
    try {
      fs.rmSync(path.join(dir, name), { force: true });
      removed.push(name);
    } catch { /* leave it */ }
  }
  return removed;
}

/** Locks this process holds, and the exit hook that removes them if the process ends without `finishRun`. */
const heldLocks = new Set<string>();
let exitHook = false;

/** True when a process with this pid exists (EPERM: it exists but belongs to another user). */
function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: unknown }).code === "EPERM";
  }
}

/**
 * Takes OUT.lock for this process: refused while another live process holds it; a lock left by a dead
 * process (or by an earlier run of this one that did not finish) is taken over. Returns the release.
 */
export function acquireOutputLock(out: string, label = "run"): () => void {
  const lock = lockPath(out);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      fs.writeFileSync(lock, `${process.pid}\n`, { flag: "wx" });
      heldLocks.add(path.resolve(lock));
      if (!exitHook) {
        exitHook = true;
        process.on("exit", () => {
          for (const l of heldLocks) try { fs.rmSync(l, { force: true }); } catch { /* exiting */ }
        });
      }
      return () => releaseOutputLock(out);
    } catch (e) {
      if ((e as { code?: unknown }).code !== "EEXIST") throw outputError(out, `cannot create the lock file ${lock}`, e);
    }
    let text = "";
    try {
      text = fs.readFileSync(lock, "utf8");
    } catch {
      continue; // removed meanwhile: try again
    }
    const pid = Number(text.trim());
    if (pid !== process.pid && pidAlive(pid)) {
      throw new MaskdistillError(`another ${label} run (pid ${pid}) is writing this output (lock ${lock}); wait for it to finish or stop it, or choose another output path. If no such run exists, delete ${lock}`, out);
    }
    // stale: its process is gone
    fs.rmSync(lock, { force: true });
  }
  throw new MaskdistillError(`cannot take the lock ${lock}: other runs keep taking it`, out);
}

/** Removes OUT.lock if this process holds it. */
export function releaseOutputLock(out: string): void {
  const lock = path.resolve(lockPath(out));
  if (!heldLocks.delete(lock)) return;
  try {
    if (Number(fs.readFileSync(lock, "utf8").trim()) === process.pid) fs.rmSync(lock, { force: true });
  } catch { /* already gone */ }
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

/** A journal's header line ({kind, config}), read up to its first newline; undefined when it has none or is not JSON. */
function journalHeader(file: string): { kind?: unknown; config?: unknown } | undefined {
  const fd = fs.openSync(file, "r");
  try {
    const chunks: Buffer[] = [];
    const buf = Buffer.alloc(1 << 16);
    for (let pos = 0; ; ) {
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) return undefined;
      const nl = buf.subarray(0, n).indexOf(0x0a);
      chunks.push(Buffer.from(buf.subarray(0, nl < 0 ? n : nl)));
      if (nl >= 0) break;
      pos += n;
    }
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Reads a journal and checks its header. Bytes after the last newline are a line torn by a kill during
 * the write: they are cut off the file so that appending continues on a clean line.
 */
function readJournal<E>(file: string, kind: string, label: string, config: Record<string, unknown>, hint?: string,
    otherSettings = `journal was written with other settings${hint ? ` (${hint})` : ""}; rerun without --resume to start over`): { entries: { entry: E; offset: number; bytes: number }[]; bytes: number } {
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
        throw new MaskdistillError(otherSettings, file);
      }
    } else {
      entries.push({ entry: obj as E, offset, bytes: end - offset });
    }
    offset = end;
  }
  if (lineNo === 0) throw new MaskdistillError("journal has no header line; rerun without --resume to start over", file);
  return { entries, bytes: complete };
}
