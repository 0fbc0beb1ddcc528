// The pretraining colour jitter is configurable (--color-jitter); its default is DINO's, bit for bit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { COLOR_JITTER_DINO, multiCrop, type MultiCropConfig } from "../src/pretrain/augment.js";
import { mulberry32 } from "../src/random.js";
import { renderScene } from "../src/shapes/scene.js";

test("colour jitter: absent = DINO's values exactly; a full hue range changes the crops", () => {
  const img = renderScene(0, 1, { size: 64, distractors: false }).image;
  const base: MultiCropConfig = { globalSize: 32, localSize: 16, localCrops: 2, globalScale: [0.4, 1], localScale: [0.05, 0.4], blurSigma: [0.1, 2] };
  const a = multiCrop(mulberry32(7), img, base);
  const b = multiCrop(mulberry32(7), img, { ...base, colorJitter: COLOR_JITTER_DINO });
  assert.deepEqual(a.globals[0].data, b.globals[0].data);
  assert.deepEqual(a.locals[1].data, b.locals[1].data);
  const c = multiCrop(mulberry32(7), img, { ...base, colorJitter: { ...COLOR_JITTER_DINO, hue: 0.5, p: 1 } });
  assert.notDeepEqual(a.globals[0].data, c.globals[0].data);
  // no jitter and no grayscale: the first global crop (blur always on) is the same crop, only blurred
  const d = multiCrop(mulberry32(7), img, { ...base, colorJitter: { brightness: 0, contrast: 0, saturation: 0, hue: 0, p: 0, grayscale: 0 } });
  assert.equal(d.globals[0].data.length, 3 * 32 * 32);
});
