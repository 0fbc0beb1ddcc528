// Engine kernel checks with the onnxruntime GEMM provider (the default): see engineKernelChecks.ts.
import { defineEngineKernelTests } from "./engineKernelChecks.js";

defineEngineKernelTests("onnxruntime");
