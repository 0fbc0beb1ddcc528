// The progress bar lives below the CLI (library code uses it too); CLI commands import it from here.
export { progress, announceLargeRead, type Progress } from "../runner/progress.js";
