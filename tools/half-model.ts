// A float32 model file (train-maskrcnn's / train-deeplab's model.safetensors) rewritten in float16 to halve
// it for committing; every loader widens float16 exactly. pixel_mean / pixel_std stay float32.
//   node --import tsx tools/half-model.ts IN.safetensors OUT.safetensors
import { readSafetensorsFile, writeSafetensors } from "../src/pretrain/safetensorsIo.js";
import { toFloat16Bits } from "../src/pretrain/vit.js";
import { toFloat32, type StateDict } from "../src/modeling/checkpoint/index.js";

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error("usage: node --import tsx tools/half-model.ts IN.safetensors OUT.safetensors");
  process.exit(2);
}
const { tensors, metadata } = await readSafetensorsFile(input);
const sd: StateDict = new Map();
let maxErr = 0;
for (const [name, t] of tensors) {
  if (/pixel_(mean|std)$/.test(name)) { sd.set(name, { dtype: "float32", shape: t.shape, data: t.data }); continue; }
  const half = { dtype: "float16" as const, shape: t.shape, data: toFloat16Bits(t.data) };
  sd.set(name, half);
  const back = toFloat32(half);
  for (let i = 0; i < t.data.length; i++) maxErr = Math.max(maxErr, Math.abs(t.data[i]) > 1e-3 ? Math.abs(back[i] - t.data[i]) / Math.abs(t.data[i]) : 0);
}
writeSafetensors(output, sd, { ...metadata, halved_from: input });
console.log(`${output}: ${sd.size} tensors in float16 (largest relative rounding error ${maxErr.toExponential(2)} for |w| > 1e-3)`);

