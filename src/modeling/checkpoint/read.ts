// readCheckpoint: picks the container format from the file's first bytes.
import * as fsp from "node:fs/promises";
import { MaskdistillError, inputError } from "../../errors.js";
import { readNumpyPickle, readTorchLegacy, readTorchZip } from "./torch.js";
import { looksLikeSafetensors, readSafetensors } from "./safetensors.js";
import { readExactly } from "./zip.js";

/**
 * The object tree stored in a checkpoint, with every tensor as TensorData. PyTorch zip (torch.save
 * >= 1.6), legacy (< 1.6), safetensors files and plain pickles of numpy arrays (detectron2 model-zoo
 * .pkl) are recognised by content, not by extension.
 * Python dicts become Maps, tuples/lists arrays, argparse.Namespace a plain record. Unpickling
 * uses an allow-list of globals and never executes code from the file.
 */
export async function readCheckpoint(file: string): Promise<unknown> {
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(file, "r");
  } catch (e) {
    throw inputError(file, "cannot open the checkpoint", e);
  }
  try {
    const { size } = await handle.stat();
    if (size === 0) throw inputError(file, "empty file, not a checkpoint");
    const head = new Uint8Array(Math.min(size, 512));
    await readExactly(handle, file, head, 0);
    if (head[0] === 0x50 && head[1] === 0x4b && (head[2] === 3 || head[2] === 5) && (head[3] === 4 || head[3] === 6)) {
      return await readTorchZip(file, handle, size);
    }
    // safetensors before the pickle tests: its first bytes are the little-endian header length, which can
    // open like a pickle below (0x28 '(' for a 0x..28-byte header, 0x80 then 0x02–0x05 for 0x02..–0x05..80 bytes;
    // a committed Mask R-CNN file had a 0xbc28-byte header). A pickle never passes this test (its bytes 4–7
    // would have to make a length under 100 MB, then byte 8 be '{').
    if (looksLikeSafetensors(head)) return await readSafetensors(file, handle, size);
    // A plain pickle (detectron2 model-zoo .pkl): PROTO without the legacy magic number (LONG1) next,
    // or a protocol 0/1 pickle opening a dict.
    if ((head[0] === 0x80 && head[1] >= 2 && head[1] <= 5 && head[2] !== 0x8a) || head[0] === 0x7d || head[0] === 0x28) {
      const bytes = new Uint8Array(size);
      await readExactly(handle, file, bytes, 0);
      return readNumpyPickle(file, bytes);
    }
    if (head[0] === 0x80 && head[1] >= 2 && head[1] <= 5) {
      // Legacy torch.save is a sequence of pickles followed by raw storages: read it whole.
      const bytes = new Uint8Array(size);
      await readExactly(handle, file, bytes, 0);
      return await readTorchLegacy(file, bytes);
    }
    if (head.length >= 262 && new TextDecoder("latin1").decode(head.subarray(257, 262)) === "ustar") {
      throw inputError(file, "a tar archive: the tar checkpoint format of PyTorch < 0.4 is not supported (re-save it with a newer torch.save)");
    }
    const hex = [...head.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    throw inputError(file, `not a PyTorch checkpoint (zip or legacy pickle) nor a safetensors file (first bytes: ${hex})`);
  } catch (e) {
    if (e instanceof MaskdistillError) throw e;
    throw inputError(file, "cannot read the checkpoint", e);
  } finally {
    await handle.close();
  }
}
