/**
 * Writes the cluster image (src/engines/pglite/image.ts) gzipped to OUT, for
 * scripts/build to embed in the binary: the cache's image, made first if
 * this machine has none yet (as long as PGlite's initdb takes). Run with
 *   ./node_modules/.bin/bun scripts/cluster-image.ts OUT
 */

import { writeFileSync } from "node:fs";
import process from "node:process";
import {
  buildClusterImage,
  findClusterImage,
  gzipImage,
  imagesEnabled,
} from "../src/engines/pglite/image.ts";

const out = process.argv[2];
if (out === undefined || !imagesEnabled()) {
  console.error("usage: scripts/cluster-image.ts OUT (with cluster images on)");
  process.exit(2);
}
const image = findClusterImage() ?? await buildClusterImage();
writeFileSync(out, gzipImage(image));
