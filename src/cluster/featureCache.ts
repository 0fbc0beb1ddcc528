// On-disk cache of CLS embeddings, so that re-clustering (another seed, --overcluster, evaluation)
// skips the backbone. One cache per (save dir, slot, backbone): an index JSON naming the backbone
// (checkpoint sha256, patch, dim) and, per row, the key of what was embedded; and a float32 file
// (rows × dim, little-endian). A row's key is the annotation id, the image file with its size and
// mtime, and the box — so any changed input (other boxes, a re-generated prediction file, a replaced
// image, another backbone) misses the cache and is embedded again.
// Shards (`cluster --embed-only --shard i/n`) each fill their own cache, `<slot>-<sha12>-p<patch>.shard-i-of-n.json`
// (`shardOutputPath`); the unsharded cache opened with mergeShards takes their rows in and, once it is
// saved, removes them.
import * as fs from "node:fs";
import * as path from "node:path";
import * as crypto from "node:crypto";
import { writeFileAtomic } from "../modeling/session.js";
import { shardOutputPath, type Shard } from "../runner/perImage.js";

export interface CacheIdentity {
  /** sha256 of the backbone checkpoint. */
  backboneSha256: string;
  patch: number;
  dim: number;
}

interface CacheIndex {
  format: 1;
  identity: CacheIdentity;
  /** The float32 file beside the index that holds the rows, in order. */
  data: string;
  keys: string[];
}

export interface FeatureCache {
  readonly identity: CacheIdentity;
  readonly indexFile: string;
  /** Rows read from disk when the cache was opened (0 when it was missing or for another backbone). */
  readonly loaded: number;
  /** The shard caches whose rows were taken in (mergeShards); `save` removes them. */
  readonly mergedShards: readonly string[];
  /** Rows the shard caches added. */
  readonly mergedRows: number;
  get(key: string): Float32Array | undefined;
  set(key: string, vector: Float32Array): void;
  readonly size: number;
  /** Writes the rows (only `keep`, in that order, when given) atomically. */
  save(keep?: readonly string[]): void;
}

/** The key of one embedded annotation: its id, the image file's identity and the box. */
export function rowKey(annotationId: number | string, imageFile: string, bbox: readonly number[]): string {
  let stamp = "missing";
  try {
    const st = fs.statSync(imageFile);
    stamp = `${st.size}@${Math.round(st.mtimeMs)}`;
  } catch { /* a missing image gets no embedding anyway */ }
  return `${annotationId}|${path.resolve(imageFile)}|${stamp}|${bbox.join(",")}`;
}

export interface OpenCacheOptions {
  /** This shard's own cache (`shardOutputPath` of the index file). */
  shard?: Shard;
  /** Also take in the rows of the shard caches beside it (any count); `save` then removes them. */
  mergeShards?: boolean;
}

/**
 * Opens (or starts) the cache `<dir>/<slot>-<sha12>-p<patch>.json` (a shard's: `.shard-i-of-n.json`).
 * A cache for another backbone is ignored.
 */
export function openFeatureCache(dir: string, slot: string, identity: CacheIdentity, opts: OpenCacheOptions = {}): FeatureCache {
  const mainIndex = path.join(dir, `${slot}-${identity.backboneSha256.slice(0, 12)}-p${identity.patch}.json`);
  const indexFile = shardOutputPath(mainIndex, opts.shard);
  const rows = new Map<string, Float32Array>();
  const journal = journalPath(indexFile);
  const loaded = readRows(indexFile, identity, rows) + replayJournal(journal, identity, rows);
  const mergedShards: string[] = [];
  let mergedRows = 0;
  if (opts.mergeShards && !(opts.shard && opts.shard.count > 1)) {
    const stem = path.basename(mainIndex, ".json").replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    // a shard killed before its first save has only its journal
    const pattern = new RegExp(`^${stem}\\.shard-\\d+-of-\\d+\\.(?:json|journal)$`);
    let names: string[] = [];
    try {
      names = [...new Set(fs.readdirSync(dir).filter((n) => pattern.test(n)).map((n) => n.replace(/\.journal$/, ".json")))].sort();
    } catch { /* no folder yet: no shards */ }
    for (const name of names) {
      const before = rows.size;
      const shardIndex = path.join(dir, name);
      if (readRows(shardIndex, identity, rows) + replayJournal(journalPath(shardIndex), identity, rows) === 0) continue;
      mergedShards.push(path.join(dir, name));
      mergedRows += rows.size - before;
    }
  }

  return {
    identity,
    indexFile,
    loaded,
    mergedShards,
    mergedRows,
    get: (key) => rows.get(key),
    set(key, vector) {
      if (vector.length !== identity.dim) throw new RangeError(`cache row has ${vector.length} values, expected ${identity.dim}`);
      rows.set(key, vector);
      appendJournal(journal, identity, key, vector);
    },
    get size() {
      return rows.size;
    },
    save(keep) {
      const keys = keep ? keep.filter((k) => rows.has(k)) : [...rows.keys()];
      const data = new Float32Array(keys.length * identity.dim);
      keys.forEach((k, i) => data.set(rows.get(k)!, i * identity.dim));
      fs.mkdirSync(dir, { recursive: true });
      const previous = readIndex(indexFile);
      const dataName = `${path.basename(indexFile, ".json")}.${crypto.randomBytes(4).toString("hex")}.f32`;
      writeFileAtomic(path.join(dir, dataName), new Uint8Array(data.buffer));
      const idx: CacheIndex = { format: 1, identity, data: dataName, keys };
      writeFileAtomic(indexFile, JSON.stringify(idx));
      // the old data file is unreferenced now, and the journal's rows are in the new one
      if (previous && previous.data !== dataName) fs.rmSync(path.join(dir, previous.data), { force: true });
      fs.rmSync(journal, { force: true });
      // the merged shard caches' rows are in this cache now
      for (const shardIndex of mergedShards) {
        const shardIdx = readIndex(shardIndex);
        if (shardIdx) fs.rmSync(path.join(dir, shardIdx.data), { force: true });
        fs.rmSync(shardIndex, { force: true });
        fs.rmSync(journalPath(shardIndex), { force: true });
      }
      mergedShards.length = 0;
    },
  };
}

// The journal: every row is appended as it is made (kill -9 loses at most the row being written), and
// `save` folds the journal into the index + data files. Layout: a header line naming the identity, then
// records [u32 key bytes][key utf8][dim float32], little-endian.
const JOURNAL_MAGIC = "maskdistill feature journal 1 ";

export const journalPath = (indexFile: string): string => indexFile.replace(/\.json$/, "") + ".journal";

function appendJournal(file: string, identity: CacheIdentity, key: string, vector: Float32Array): void {
  const k = Buffer.from(key, "utf8");
  const rec = Buffer.alloc(4 + k.length + vector.length * 4);
  rec.writeUInt32LE(k.length, 0);
  k.copy(rec, 4);
  Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).copy(rec, 4 + k.length);
  try {
    if (!fs.existsSync(file)) {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, JOURNAL_MAGIC + JSON.stringify(identity) + "\n");
    }
    fs.appendFileSync(file, rec);
  } catch { /* the cache is an optimisation: a row that cannot be journalled is embedded again next time */ }
}

/** Adds the journal's whole records to `rows` (cutting a torn last record); returns how many it holds. */
function replayJournal(file: string, identity: CacheIdentity, rows: Map<string, Float32Array>): number {
  let buf: Buffer;
  try { buf = fs.readFileSync(file); } catch { return 0; }
  const eol = buf.indexOf(10);
  const header = eol < 0 ? "" : buf.subarray(0, eol).toString("utf8");
  let same = false;
  try { same = header.startsWith(JOURNAL_MAGIC) && sameIdentity(JSON.parse(header.slice(JOURNAL_MAGIC.length)) as CacheIdentity, identity); } catch { /* unreadable header */ }
  if (!same) {
    fs.rmSync(file, { force: true }); // another backbone's or a broken journal
    return 0;
  }
  const rowBytes = identity.dim * 4;
  let at = eol + 1, n = 0;
  while (at + 4 <= buf.length) {
    const klen = buf.readUInt32LE(at);
    const end = at + 4 + klen + rowBytes;
    if (end > buf.length) break;
    const key = buf.subarray(at + 4, at + 4 + klen).toString("utf8");
    const v = new Float32Array(identity.dim);
    Buffer.from(v.buffer).set(buf.subarray(at + 4 + klen, end));
    rows.set(key, v);
    at = end; n++;
  }
  if (at < buf.length) fs.truncateSync(file, at); // a torn record from a kill: later appends follow whole ones
  return n;
}

/** Adds the rows of the cache `indexFile` (when it is for `identity` and readable) to `rows`; returns how many it holds. */
function readRows(indexFile: string, identity: CacheIdentity, rows: Map<string, Float32Array>): number {
  const index = readIndex(indexFile);
  if (!index || !sameIdentity(index.identity, identity)) return 0;
  try {
    const buf = fs.readFileSync(path.join(path.dirname(indexFile), index.data));
    if (buf.length !== index.keys.length * identity.dim * 4) return 0;
    const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
    index.keys.forEach((k, i) => {
      if (!rows.has(k)) rows.set(k, all.subarray(i * identity.dim, (i + 1) * identity.dim));
    });
    return index.keys.length;
  } catch {
    return 0; // unreadable data: start over
  }
}

function readIndex(file: string): CacheIndex | undefined {
  try {
    const idx = JSON.parse(fs.readFileSync(file, "utf8")) as CacheIndex;
    if (idx.format !== 1 || !Array.isArray(idx.keys) || typeof idx.data !== "string" || path.basename(idx.data) !== idx.data) return undefined;
    return idx;
  } catch {
    return undefined;
  }
}

function sameIdentity(a: CacheIdentity, b: CacheIdentity): boolean {
  return a.backboneSha256 === b.backboneSha256 && a.patch === b.patch && a.dim === b.dim;
}
