// Engine kernel checks with the XNNPACK GEMM provider on the threaded wasm build: see engineKernelChecks.ts.
import { defineEngineKernelTests } from "./engineKernelChecks.js";

defineEngineKernelTests("xnnpack");
