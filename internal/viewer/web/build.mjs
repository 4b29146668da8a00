// Bundles the viewer into ../dist (index.html + app.js) for go:embed.
//   node build.mjs   (make viewer; make build and make test run it)
import { build } from "esbuild";
import { copyFile, mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "..", "dist");
await mkdir(dist, { recursive: true });
await build({
  entryPoints: [join(here, "src", "main.js")],
  bundle: true,
  format: "iife",
  target: ["chrome110", "firefox110", "safari16"],
  minify: true,
  sourcemap: false,
  legalComments: "eof",
  outfile: join(dist, "app.js"),
  logLevel: "warning",
});
await copyFile(join(here, "index.html"), join(dist, "index.html"));
