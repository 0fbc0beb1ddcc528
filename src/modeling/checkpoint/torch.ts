// PyTorch checkpoints (`torch.save`) without Python: the zip format (torch >= 1.6) and the legacy
// format (before 1.6, e.g. the MoCo v2 release). Both are a pickle whose tensors point, through
// persistent ids, at raw storages stored beside it. The pickle is interpreted by our own VM
// (pickle.ts) with an allow-list of globals; everything on it is re-implemented here as a plain
// function, so loading a checkpoint never executes code from the file.
import * as fsp from "node:fs/promises";
import { MaskdistillError, inputError } from "../../errors.js";
import { unpickle, type UnpickleHooks } from "./pickle.js";
import { openZip, readEntry, type ZipArchive } from "./zip.js";
import { DTYPE_SIZE, allocate, numel, viewAs, type DType, type TensorArray, type TensorData } from "./tensor.js";

// ---------------------------------------------------------------------------------------------
// The allow-list. A global is either a value (storage classes, dtypes, type markers) or a function
// implemented below. Anything else is refused at the moment the pickle names it.

interface StorageType { kind: "storage-type"; qualname: string; dtype: DType | null /* null = untyped bytes */ }
interface DTypeValue { kind: "dtype"; qualname: string; dtype: DType }
interface TypeMarker { kind: "type"; qualname: string }
interface PyFunction {
  kind: "function";
  qualname: string;
  call(args: unknown[], how: "reduce" | "newobj" | "inst"): unknown;
}
type AllowedGlobal = StorageType | DTypeValue | TypeMarker | PyFunction;

/** What a persistent id resolves to: a (view of a) storage whose bytes are read after unpickling. */
interface StorageRef {
  kind: "storage";
  key: string; // root storage key (file data/<key> in a zip, or position in the legacy stream)
  dtype: DType | null;
  /** Elements of `dtype` (bytes when untyped) in the root storage. */
  rootNumel: number;
  /** Legacy storage views: offset of this view into the root, in elements. */
  viewOffset: number;
  /** Elements in this view (= rootNumel without a view). */
  numel: number;
}

interface PendingTensor {
  tensor: TensorData;
  storage: StorageRef;
  offset: number; // elements of tensor.dtype from the start of the root storage
  stride: number[];
}

const STORAGE_DTYPES: Record<string, DType> = {
  FloatStorage: "float32", DoubleStorage: "float64", HalfStorage: "float16", BFloat16Storage: "bfloat16",
  LongStorage: "int64", IntStorage: "int32", ShortStorage: "int16", CharStorage: "int8",
  ByteStorage: "uint8", BoolStorage: "bool",
};

const TORCH_DTYPES: Record<string, DType> = {
  float32: "float32", float: "float32", float64: "float64", double: "float64", float16: "float16",
  half: "float16", bfloat16: "bfloat16", int64: "int64", long: "int64", int32: "int32", int: "int32",
  int16: "int16", short: "int16", int8: "int8", uint8: "uint8", bool: "bool",
};

const NUMPY_SCALARS: Record<string, { size: number; read(v: DataView, le: boolean): number | bigint | boolean }> = {
  f2: { size: 2, read: (v, le) => halfBitsToNumber(v.getUint16(0, le)) },
  f4: { size: 4, read: (v, le) => v.getFloat32(0, le) },
  f8: { size: 8, read: (v, le) => v.getFloat64(0, le) },
  i1: { size: 1, read: (v) => v.getInt8(0) },
  i2: { size: 2, read: (v, le) => v.getInt16(0, le) },
  i4: { size: 4, read: (v, le) => v.getInt32(0, le) },
  i8: { size: 8, read: (v, le) => safeInt(v.getBigInt64(0, le)) },
  u1: { size: 1, read: (v) => v.getUint8(0) },
  u2: { size: 2, read: (v, le) => v.getUint16(0, le) },
  u4: { size: 4, read: (v, le) => v.getUint32(0, le) },
  u8: { size: 8, read: (v, le) => safeInt(v.getBigUint64(0, le)) },
  b1: { size: 1, read: (v) => v.getUint8(0) !== 0 },
};

/** A numpy dtype as built by the pickle (`numpy.dtype('f8', False, True)` + BUILD). */
interface NumpyDType { kind: "numpy-dtype"; descr: string; byteorder: string }

/** Per-load state: the tensors waiting for their storages, and the records the pickle built. */
interface LoadContext {
  file: string;
  pending: PendingTensor[];
  tensors: WeakSet<TensorData>;
  namespaces: WeakSet<object>;
  /** numpy arrays made by `_reconstruct`, filled in by their BUILD. */
  ndarrays?: WeakSet<TensorData>;
  ndarrayCount?: number;
}

/** numpy dtype codes (`dtype.str` without the byte order) of the arrays we read, as TensorData dtypes. */
const NUMPY_ARRAY_DTYPES: Record<string, DType> = {
  f4: "float32", f8: "float64", f2: "float16", i8: "int64", i4: "int32", i2: "int16", i1: "int8", u1: "uint8", b1: "bool",
};

function refuse(file: string, qualname: string): never {
  throw new MaskdistillError(
    `refusing to load: the pickle references ${qualname}, which is not on the allow-list; loading never executes code`,
    file,
  );
}

function makeAllowList(ctx: LoadContext): Map<string, AllowedGlobal> {
  const { file } = ctx;
  const list = new Map<string, AllowedGlobal>();
  const fn = (qualname: string, call: PyFunction["call"]): void => { list.set(qualname, { kind: "function", qualname, call }); };
  const bad = (qualname: string, problem: string): never => { throw inputError(file, `${qualname}: ${problem}`); };

  for (const [name, dtype] of Object.entries(STORAGE_DTYPES)) {
    for (const module of ["torch", "torch.cuda"]) {
      const qualname = `${module}.${name}`;
      list.set(qualname, { kind: "storage-type", qualname, dtype });
    }
  }
  list.set("torch.UntypedStorage", { kind: "storage-type", qualname: "torch.UntypedStorage", dtype: null });
  for (const [name, dtype] of Object.entries(TORCH_DTYPES)) {
    list.set(`torch.${name}`, { kind: "dtype", qualname: `torch.${name}`, dtype });
  }
  for (const qualname of ["torch.Tensor", "torch._tensor.Tensor", "torch.nn.parameter.Parameter", "torch.nn.Parameter"]) {
    list.set(qualname, { kind: "type", qualname });
  }

  // Tensors: (storage, storage_offset, size, stride, requires_grad, backward_hooks[, dtype][, metadata]).
  const rebuild = (qualname: string, args: unknown[], dtypeArg?: unknown): TensorData => {
    const [storage, offset, size, stride] = args;
    if (!isStorageRef(storage)) bad(qualname, "the first argument is not a storage");
    const ref = storage as StorageRef;
    let dtype = ref.dtype;
    if (dtypeArg !== undefined) {
      if (!isAllowed(dtypeArg, "dtype")) bad(qualname, "the dtype argument is not a torch dtype");
      dtype = (dtypeArg as DTypeValue).dtype;
      if (ref.dtype !== null && ref.dtype !== dtype) bad(qualname, `dtype ${dtype} does not match its ${ref.dtype} storage`);
    }
    if (dtype === null) bad(qualname, "a tensor on an untyped storage needs a dtype");
    const shape = intTuple(size, file, `${qualname} size`);
    const strides = intTuple(stride, file, `${qualname} stride`);
    if (shape.length !== strides.length) bad(qualname, `size ${fmt(shape)} and stride ${fmt(strides)} differ in length`);
    if (!isNonNegInt(offset)) bad(qualname, `bad storage offset ${String(offset)}`);
    // Offsets count elements of the tensor dtype; an untyped root storage counts bytes.
    const scale = ref.dtype === null ? DTYPE_SIZE[dtype!] : 1;
    if (ref.dtype === null && ref.viewOffset % scale) bad(qualname, "storage view is not aligned to the dtype");
    const tensor: TensorData = { dtype: dtype!, shape, data: allocate(dtype!, 0) };
    ctx.pending.push({ tensor, storage: ref, offset: ref.viewOffset / scale + (offset as number), stride: strides });
    ctx.tensors.add(tensor);
    return tensor;
  };
  fn("torch._utils._rebuild_tensor", (a) => rebuild("torch._utils._rebuild_tensor", a));
  fn("torch._utils._rebuild_tensor_v2", (a) => rebuild("torch._utils._rebuild_tensor_v2", a));
  fn("torch._utils._rebuild_tensor_v3", (a) => rebuild("torch._utils._rebuild_tensor_v3", a, a[6]));
  // nn.Parameter: the tensor itself (requires_grad and hooks mean nothing here).
  fn("torch._utils._rebuild_parameter", (a) => tensorArg(a[0], "torch._utils._rebuild_parameter"));
  fn("torch._utils._rebuild_parameter_with_state", (a) => tensorArg(a[0], "torch._utils._rebuild_parameter_with_state"));
  // Tensors with Python attributes: (func, type, args, state) → func(*args); attributes are dropped.
  fn("torch._tensor._rebuild_from_type_v2", (a) => {
    const [func, type, args] = a;
    if (!isAllowed(type, "type")) bad("torch._tensor._rebuild_from_type_v2", "the type is not torch.Tensor or nn.Parameter");
    if (!isAllowed(func, "function") || !Array.isArray(args)) bad("torch._tensor._rebuild_from_type_v2", "bad arguments");
    return (func as PyFunction).call(args as unknown[], "reduce");
  });
  function tensorArg(x: unknown, qualname: string): unknown {
    if (!isPendingTensor(x, ctx)) bad(qualname, "the argument is not a tensor");
    return x;
  }
  fn("torch.Size", (a) => {
    if (!Array.isArray(a[0])) bad("torch.Size", "expects a tuple");
    return intTuple(a[0], file, "torch.Size");
  });

  // Python containers and records.
  fn("collections.OrderedDict", (a) => {
    const d = new Map<unknown, unknown>();
    if (Array.isArray(a[0])) {
      for (const pair of a[0]) {
        if (!Array.isArray(pair) || pair.length !== 2) bad("collections.OrderedDict", "expects (key, value) pairs");
        d.set((pair as unknown[])[0], (pair as unknown[])[1]);
      }
    }
    return d;
  });
  for (const qualname of ["builtins.set", "builtins.frozenset"]) {
    fn(qualname, (a) => new Set(Array.isArray(a[0]) ? a[0] : []));
  }
  // Protocol 2 pickles bytes as _codecs.encode(latin-1 text, 'latin1').
  fn("_codecs.encode", (a) => {
    const [text, encoding] = a;
    if (typeof text !== "string") bad("_codecs.encode", "expects a str");
    const enc = String(encoding ?? "utf-8").toLowerCase().replace(/[-_]/g, "");
    if (enc === "latin1" || enc === "iso88591") return Uint8Array.from(text as string, (c) => c.charCodeAt(0) & 0xff);
    if (enc === "utf8") return new TextEncoder().encode(text as string);
    return bad("_codecs.encode", `unsupported encoding ${String(encoding)}`);
  });
  // Protocol 2 pickles an empty bytes object as builtins.bytes() (e.g. the data of an empty numpy array).
  fn("builtins.bytes", (a) => {
    if (a.length === 0) return new Uint8Array(0);
    if (a[0] instanceof Uint8Array) return new Uint8Array(a[0]);
    return bad("builtins.bytes", "only bytes() and bytes(bytes) are supported");
  });
  // argparse.Namespace (DINO stores its `args`): a plain record; BUILD fills its fields.
  fn("argparse.Namespace", () => {
    const record: Record<string, unknown> = {};
    ctx.namespaces.add(record);
    return record;
  });
  // numpy scalars (np.float64 etc. in training metadata): numpy.dtype + BUILD, then scalar(dtype, bytes).
  fn("numpy.dtype", (a) => {
    const descr = a[0];
    if (typeof descr !== "string" || !(descr in NUMPY_SCALARS)) bad("numpy.dtype", `unsupported numpy dtype ${String(descr)}`);
    const dt: NumpyDType = { kind: "numpy-dtype", descr: descr as string, byteorder: "=" };
    return dt;
  });
  // numpy arrays (detectron2 model-zoo .pkl files): _reconstruct(numpy.ndarray, (0,), b'b') makes an
  // empty array, BUILD gives (version, shape, dtype, is_fortran, raw bytes); see the build hook.
  list.set("numpy.ndarray", { kind: "type", qualname: "numpy.ndarray" });
  for (const module of ["numpy.core.multiarray", "numpy._core.multiarray"]) {
    fn(`${module}._reconstruct`, (a) => {
      if (!isAllowed(a[0], "type") || a[0].qualname !== "numpy.ndarray") bad(`${module}._reconstruct`, `only plain numpy.ndarray is supported, not ${describe(a[0])}`);
      const t: TensorData = { dtype: "uint8", shape: [0], data: new Uint8Array(0) };
      (ctx.ndarrays ??= new WeakSet()).add(t);
      ctx.ndarrayCount = (ctx.ndarrayCount ?? 0) + 1;
      return t;
    });
  }
  for (const module of ["numpy.core.multiarray", "numpy._core.multiarray"]) {
    fn(`${module}.scalar`, (a) => {
      const [dt, raw] = a;
      if (!isNumpyDType(dt) || !(raw instanceof Uint8Array)) bad(`${module}.scalar`, "expects (numpy.dtype, bytes)");
      const spec = NUMPY_SCALARS[(dt as NumpyDType).descr];
      const bytes = raw as Uint8Array;
      if (bytes.length !== spec.size) bad(`${module}.scalar`, `expects ${spec.size} bytes, got ${bytes.length}`);
      return spec.read(new DataView(bytes.buffer, bytes.byteOffset, bytes.length), (dt as NumpyDType).byteorder !== ">");
    });
  }
  return list;
}

function makeHooks(ctx: LoadContext, persistentLoad?: (pid: unknown) => unknown): UnpickleHooks {
  const allowed = makeAllowList(ctx);
  const { file } = ctx;
  return {
    findGlobal(module, name) {
      const mod = module === "__builtin__" ? "builtins" : module;
      const qualname = `${mod}.${name}`;
      const g = allowed.get(qualname);
      if (!g) refuse(file, qualname);
      return g;
    },
    call(callable, args) {
      if (!isAllowed(callable, "function")) {
        const what = isAllowedAny(callable) ? (callable as AllowedGlobal).qualname : describe(callable);
        throw inputError(file, `the pickle calls ${what}, which cannot be called`);
      }
      return (callable as PyFunction).call(args, "reduce");
    },
    build(obj, state) {
      if (obj instanceof Map) return; // OrderedDict attributes (state_dict()._metadata): not needed
      if (isNumpyDType(obj)) {
        // numpy dtype state: (version, byteorder, ...)
        if (Array.isArray(state) && typeof state[1] === "string") obj.byteorder = state[1];
        return;
      }
      if (typeof obj === "object" && obj !== null && ctx.ndarrays?.has(obj as TensorData)) {
        buildNdarray(file, obj as TensorData, state);
        return;
      }
      if (typeof obj === "object" && obj !== null && ctx.namespaces.has(obj)) {
        const dict = Array.isArray(state) ? state[0] : state; // (dict, slots) or dict
        if (!(dict instanceof Map)) throw inputError(file, "argparse.Namespace state is not a dict");
        for (const [k, v] of dict) (obj as Record<string, unknown>)[String(k)] = v;
        return;
      }
      throw inputError(file, `corrupt pickle: BUILD on ${describe(obj)}`);
    },
    persistentLoad,
  };
}

/**
 * numpy's ndarray.__setstate__((version, shape, dtype, is_fortran, rawdata)) on an array made by
 * `_reconstruct`: the bytes are copied into a fresh typed array (byte-swapped for '>' dtypes,
 * reordered to row-major for Fortran-order arrays). Object arrays (a list instead of bytes) are refused.
 */
function buildNdarray(file: string, t: TensorData, state: unknown): void {
  const bad = (problem: string): never => { throw inputError(file, `numpy array: ${problem}`); };
  if (!Array.isArray(state) || (state.length !== 5 && state.length !== 4)) bad("unexpected __setstate__ state");
  const st = state as unknown[];
  const [shapeArg, dt, fortran, raw] = st.length === 5 ? st.slice(1) : st;
  const shape = intTuple(shapeArg, file, "numpy array shape");
  if (!isNumpyDType(dt)) return bad("the dtype is not a numpy.dtype");
  const dtype = NUMPY_ARRAY_DTYPES[dt.descr];
  if (!dtype) return bad(`unsupported dtype '${dt.descr}'`);
  let bytes: Uint8Array;
  if (raw instanceof Uint8Array) bytes = raw;
  else if (typeof raw === "string") {
    // Python 2 pickles (read as latin-1, as detectron2 does) carry the data as a str
    bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) {
      const c = raw.charCodeAt(i);
      if (c > 0xff) bad("array data is not a byte string");
      bytes[i] = c;
    }
  } else return bad("array data is not bytes (object arrays are not supported)");
  const size = DTYPE_SIZE[dtype], n = numel(shape);
  if (bytes.length !== n * size) bad(`shape [${shape.join(", ")}] of ${dt.descr} needs ${n * size} bytes, the pickle has ${bytes.length}`);
  const copy = new Uint8Array(n * size);
  copy.set(bytes);
  if (dt.byteorder === ">" && size > 1) swapBytes(copy, size);
  let data = viewAs(dtype, copy.buffer, 0, n);
  if (fortran === true && shape.length > 1) {
    const out = allocate(dtype, n) as unknown as { [i: number]: number | bigint };
    const src = data as unknown as { [i: number]: number | bigint };
    const idx = new Array<number>(shape.length).fill(0);
    for (let r = 0; r < n; r++) {
      // row-major position r ↔ multi-index idx; column-major offset Σ idx[d]·Π_{e<d} shape[e]
      let off = 0, mul = 1;
      for (let d = 0; d < shape.length; d++) { off += idx[d] * mul; mul *= shape[d]; }
      out[r] = src[off];
      for (let d = shape.length - 1; d >= 0; d--) { if (++idx[d] < shape[d]) break; idx[d] = 0; }
    }
    data = out as unknown as TensorArray;
  }
  t.dtype = dtype;
  t.shape = shape;
  t.data = data;
}

/**
 * A plain pickle (no torch.save framing), e.g. a detectron2 model-zoo `.pkl`: a dict whose "model"
 * holds numpy arrays. Arrays become TensorData; the same allow-list as for torch files applies.
 */
export function readNumpyPickle(file: string, bytes: Uint8Array): unknown {
  const ctx: LoadContext = { file, pending: [], tensors: new WeakSet(), namespaces: new WeakSet(), ndarrays: new WeakSet() };
  const { value, end } = unpickle(bytes, 0, file, makeHooks(ctx));
  if (ctx.pending.length) throw inputError(file, "a plain pickle that references torch storages (not a torch.save file)");
  if (end !== bytes.length) throw inputError(file, `${bytes.length - end} bytes after the end of the pickle`);
  if (!ctx.ndarrayCount) throw inputError(file, "a pickle, but not a PyTorch checkpoint (the legacy magic number is missing) nor a pickle of numpy arrays");
  return value;
}

// ---------------------------------------------------------------------------------------------
// Storage views → contiguous tensors.

/**
 * The elements a tensor view selects from its root storage, row-major. A contiguous view shares the
 * storage's memory (like PyTorch); any other stride pattern (transposes, slices) is gathered into a
 * new array.
 */
function materialise(file: string, root: ArrayBuffer, p: PendingTensor): TensorArray {
  const { dtype, shape } = p.tensor;
  const size = DTYPE_SIZE[dtype];
  const n = numel(shape);
  if (n === 0) return allocate(dtype, 0);
  const rootElements = Math.floor(root.byteLength / size);
  let last = p.offset;
  for (let d = 0; d < shape.length; d++) last += (shape[d] - 1) * p.stride[d];
  if (last >= rootElements) {
    throw inputError(file, `corrupt checkpoint: a ${dtype} tensor of shape ${fmt(shape)} (offset ${p.offset}, stride ${fmt(p.stride)}) reaches element ${last} of storage ${p.storage.key}, which has ${rootElements}`);
  }
  const whole = viewAs(dtype, root, 0, rootElements);
  if (isContiguous(shape, p.stride)) return whole.subarray(p.offset, p.offset + n);
  if (n > 64 * rootElements + (1 << 20)) {
    // Stride-0 views can name far more elements than the file holds; don't let a file blow up memory.
    throw inputError(file, `corrupt checkpoint: a ${dtype} tensor of shape ${fmt(shape)} expands a ${rootElements}-element storage more than 64-fold`);
  }
  const out = allocate(dtype, n);
  gather(whole, out, shape, p.stride, p.offset);
  return out;
}

function isContiguous(shape: number[], stride: number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expected) return false;
    expected *= shape[d];
  }
  return true;
}

/** out[i0,…,ik] = src[offset + Σ i_d·stride_d], iterating the last dimension innermost. */
function gather(src: TensorArray, out: TensorArray, shape: number[], stride: number[], offset: number): void {
  const s = src as unknown as { [i: number]: number | bigint };
  const o = out as unknown as { [i: number]: number | bigint };
  const k = shape.length;
  const inner = shape[k - 1], innerStride = stride[k - 1];
  const index = new Array<number>(k - 1).fill(0);
  let base = offset;
  let w = 0;
  const rows = out.length / inner;
  for (let r = 0; r < rows; r++) {
    for (let j = 0, q = base; j < inner; j++, q += innerStride) o[w++] = s[q];
    // Odometer over the outer dimensions.
    for (let d = k - 2; d >= 0; d--) {
      index[d]++;
      base += stride[d];
      if (index[d] < shape[d]) break;
      base -= index[d] * stride[d];
      index[d] = 0;
    }
  }
}

function swapBytes(bytes: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let i = 0; i + size <= bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}

function finish(ctx: LoadContext, roots: Map<string, ArrayBuffer>): void {
  for (const p of ctx.pending) {
    const root = roots.get(p.storage.key);
    if (!root) throw inputError(ctx.file, `corrupt checkpoint: storage ${p.storage.key} has no data`);
    p.tensor.data = materialise(ctx.file, root, p);
  }
}

// ---------------------------------------------------------------------------------------------
// The two container formats.

/** torch.save >= 1.6: `<name>/data.pkl`, `<name>/data/<key>` storages, optional `<name>/byteorder`. */
export async function readTorchZip(file: string, handle: fsp.FileHandle, fileSize: number): Promise<unknown> {
  const zip = await openZip(handle, file, fileSize);
  const pkl = findDataPkl(zip);
  const prefix = pkl.slice(0, -"data.pkl".length);
  let bigEndian = false;
  const order = zip.entries.get(`${prefix}byteorder`);
  if (order) {
    const text = new TextDecoder().decode(await readEntry(zip, order)).trim();
    if (text !== "little" && text !== "big") throw inputError(file, `corrupt checkpoint: byteorder is '${text}'`);
    bigEndian = text === "big";
  }
  const ctx: LoadContext = { file, pending: [], tensors: new WeakSet(), namespaces: new WeakSet() };
  const storages = new Map<string, StorageRef>();
  const hooks = makeHooks(ctx, (pid) => {
    // ('storage', storage_type, key, location, numel)
    if (!Array.isArray(pid) || pid[0] !== "storage" || pid.length < 5) {
      throw inputError(file, `corrupt checkpoint: unknown persistent id ${describe(pid)}`);
    }
    const [, type, key, , count] = pid;
    if (!isAllowed(type, "storage-type") || typeof key !== "string" || !isNonNegInt(count)) {
      throw inputError(file, `corrupt checkpoint: bad storage reference ${describe(pid)}`);
    }
    const known = storages.get(key);
    if (known) return known;
    const ref: StorageRef = { kind: "storage", key, dtype: (type as StorageType).dtype, rootNumel: count as number, viewOffset: 0, numel: count as number };
    storages.set(key, ref);
    return ref;
  });
  const pklBytes = await readEntry(zip, zip.entries.get(pkl)!);
  const { value, end } = unpickle(pklBytes, 0, file, hooks);
  if (end !== pklBytes.length) throw inputError(file, `corrupt checkpoint: ${pkl} has ${pklBytes.length - end} bytes after the pickle`);

  const roots = new Map<string, ArrayBuffer>();
  for (const ref of storages.values()) {
    const entry = zip.entries.get(`${prefix}data/${ref.key}`);
    if (!entry) throw inputError(file, `corrupt checkpoint: storage ${prefix}data/${ref.key} is missing from the archive`);
    const elementSize = ref.dtype ? DTYPE_SIZE[ref.dtype] : 1;
    const nbytes = ref.rootNumel * elementSize;
    if (entry.size < nbytes) throw inputError(file, `corrupt checkpoint: storage ${ref.key} has ${entry.size} bytes, the pickle needs ${nbytes}`);
    const bytes = await readEntry(zip, entry);
    if (bigEndian) {
      if (!ref.dtype) throw inputError(file, "big-endian checkpoints with untyped storages are not supported");
      swapBytes(bytes, elementSize);
    }
    roots.set(ref.key, bytes.buffer as ArrayBuffer);
  }
  finish(ctx, roots);
  return value;
}

function findDataPkl(zip: ZipArchive): string {
  const candidates = [...zip.entries.keys()].filter((n) => /^([^/]+\/)?data\.pkl$/.test(n));
  if (candidates.length === 0) {
    const names = [...zip.entries.keys()].slice(0, 5).join(", ");
    throw inputError(zip.file, `a zip archive without data.pkl, so not a PyTorch checkpoint (entries: ${names || "none"})`);
  }
  if (candidates.length > 1) throw inputError(zip.file, `ambiguous checkpoint: several data.pkl entries (${candidates.join(", ")})`);
  return candidates[0];
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

/**
 * torch.save before 1.6 (`_use_new_zipfile_serialization=False`): pickles of the magic number, the
 * protocol version and sys_info, then the object pickle with persistent ids, then the list of storage
 * keys, then each storage as an int64 element count followed by its raw bytes.
 */
export async function readTorchLegacy(file: string, bytes: Uint8Array): Promise<unknown> {
  const noGlobals: UnpickleHooks = {
    findGlobal: (m, n) => refuse(file, `${m}.${n}`),
    call: () => { throw inputError(file, "corrupt checkpoint header"); },
    build: () => { throw inputError(file, "corrupt checkpoint header"); },
  };
  const magic = unpickle(bytes, 0, file, noGlobals);
  if (magic.value !== LEGACY_MAGIC) {
    throw inputError(file, "a pickle, but not a PyTorch checkpoint (the legacy magic number is missing)");
  }
  const protocol = unpickle(bytes, magic.end, file, noGlobals);
  if (protocol.value !== LEGACY_PROTOCOL) throw inputError(file, `unsupported legacy checkpoint protocol ${String(protocol.value)}`);
  const sysInfo = unpickle(bytes, protocol.end, file, noGlobals);
  const littleEndian = sysInfo.value instanceof Map ? sysInfo.value.get("little_endian") !== false : true;

  const ctx: LoadContext = { file, pending: [], tensors: new WeakSet(), namespaces: new WeakSet() };
  const roots = new Map<string, StorageRef>();
  const views = new Map<string, StorageRef>();
  const hooks = makeHooks(ctx, (pid) => {
    // ('storage', storage_type, root_key, location, numel, view_metadata | None)
    if (!Array.isArray(pid) || pid[0] !== "storage" || pid.length < 6) {
      throw inputError(file, `corrupt checkpoint: unsupported persistent id ${describe(pid)}`);
    }
    const [, type, key, , count, viewMeta] = pid;
    if (!isAllowed(type, "storage-type") || typeof key !== "string" || !isNonNegInt(count)) {
      throw inputError(file, `corrupt checkpoint: bad storage reference ${describe(pid)}`);
    }
    let root = roots.get(key);
    if (!root) {
      root = { kind: "storage", key, dtype: (type as StorageType).dtype, rootNumel: count as number, viewOffset: 0, numel: count as number };
      roots.set(key, root);
    }
    if (viewMeta === null || viewMeta === undefined) return root;
    const [viewKey, viewOffset, viewSize] = viewMeta as unknown[];
    if (typeof viewKey !== "string" || !isNonNegInt(viewOffset) || !isNonNegInt(viewSize)) {
      throw inputError(file, `corrupt checkpoint: bad storage view ${describe(viewMeta)}`);
    }
    let view = views.get(viewKey);
    if (!view) {
      if ((viewOffset as number) + (viewSize as number) > root.rootNumel) throw inputError(file, `corrupt checkpoint: storage view ${viewKey} exceeds its root storage ${key}`);
      view = { ...root, viewOffset: viewOffset as number, numel: viewSize as number };
      views.set(viewKey, view);
    }
    return view;
  });
  const main = unpickle(bytes, sysInfo.end, file, hooks);
  const keyList = unpickle(bytes, main.end, file, noGlobals);
  if (!Array.isArray(keyList.value) || !keyList.value.every((k) => typeof k === "string")) {
    throw inputError(file, "corrupt checkpoint: the storage key list is not a list of strings");
  }
  const data = new Map<string, ArrayBuffer>();
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = keyList.end;
  for (const key of keyList.value as string[]) {
    const ref = roots.get(key);
    if (!ref) throw inputError(file, `corrupt checkpoint: storage ${key} is listed but never used`);
    if (pos + 8 > bytes.length) throw inputError(file, `truncated checkpoint: storage ${key} is missing: the file ends at byte ${bytes.length}`);
    const count = dv.getBigInt64(pos, littleEndian);
    if (count !== BigInt(ref.rootNumel)) throw inputError(file, `corrupt checkpoint: storage ${key} holds ${count} elements, the pickle says ${ref.rootNumel}`);
    const elementSize = ref.dtype ? DTYPE_SIZE[ref.dtype] : 1;
    const nbytes = ref.rootNumel * elementSize;
    pos += 8;
    if (pos + nbytes > bytes.length) throw inputError(file, `truncated checkpoint: storage ${key} needs ${nbytes} bytes at byte ${pos}, but the file ends at byte ${bytes.length}`);
    const copy = new Uint8Array(nbytes); // fresh, aligned
    copy.set(bytes.subarray(pos, pos + nbytes));
    if (!littleEndian) swapBytes(copy, elementSize);
    data.set(key, copy.buffer);
    pos += nbytes;
  }
  finish(ctx, data);
  return main.value;
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

function isAllowedAny(x: unknown): x is AllowedGlobal {
  return typeof x === "object" && x !== null && "qualname" in x && "kind" in x;
}
function isAllowed<K extends AllowedGlobal["kind"]>(x: unknown, kind: K): x is Extract<AllowedGlobal, { kind: K }> {
  return isAllowedAny(x) && x.kind === kind;
}
function isStorageRef(x: unknown): x is StorageRef {
  return typeof x === "object" && x !== null && (x as StorageRef).kind === "storage" && typeof (x as StorageRef).key === "string";
}
function isNumpyDType(x: unknown): x is NumpyDType {
  return typeof x === "object" && x !== null && (x as NumpyDType).kind === "numpy-dtype";
}
function isPendingTensor(x: unknown, ctx: LoadContext): boolean {
  return typeof x === "object" && x !== null && ctx.tensors.has(x as TensorData);
}
function isNonNegInt(x: unknown): boolean {
  return typeof x === "number" && Number.isInteger(x) && x >= 0;
}
function intTuple(x: unknown, file: string, what: string): number[] {
  if (!Array.isArray(x) || !x.every(isNonNegInt)) throw inputError(file, `corrupt checkpoint: ${what} is not a tuple of non-negative integers`);
  return (x as number[]).slice();
}
function fmt(xs: number[]): string {
  return `[${xs.join(", ")}]`;
}
function describe(x: unknown): string {
  if (isAllowedAny(x)) return x.qualname;
  if (x === null) return "None";
  if (Array.isArray(x)) return `tuple(${x.slice(0, 4).map(describe).join(", ")}${x.length > 4 ? ", …" : ""})`;
  if (x instanceof Map) return "dict";
  if (typeof x === "string") return JSON.stringify(x.length > 40 ? x.slice(0, 40) + "…" : x);
  if (typeof x === "object") return "an object";
  return String(x);
}
function safeInt(v: bigint): number | bigint {
  return v >= -BigInt(Number.MAX_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}
function halfBitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}
