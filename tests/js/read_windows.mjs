// zarrita.js reader for the tesserafs interop tests.
//
//   node read_windows.mjs REQUEST.json
//
// REQUEST.json: {"store": "/abs/path/2024.zarr", "reads": [{"array": "utm30/embeddings",
//   "start": [r0, c0, b0], "stop": [r1, c1, b1], "expected": [...flat C order, null = NaN]}]}
// With "url": "http://127.0.0.1:PORT/2024.zarr" instead of "store", reads over
// HTTP with FetchStore; "suffix": true makes it ask for shard indexes with
// suffix ranges (bytes=-N) instead of HEAD then a range. The output then
// also counts the requests by kind ("requests").
// Prints one JSON object: {"results": [{"array", "shape", "dtype", "mismatches", "first": [...]}]}
// and exits 0; errors (cannot open, cannot read) exit 1 with the message on stderr.
import { readFile } from "node:fs/promises";
import { FetchStore, FileSystemStore } from "@zarrita/storage";
import * as zarr from "zarrita";

const req = JSON.parse(await readFile(process.argv[2], "utf8"));
const requests = { HEAD: 0, suffix: 0, range: 0, whole: 0, status: {} };
const counted = async (request) => {
  const range = request.headers.get("Range");
  if (request.method === "HEAD") requests.HEAD++;
  else if (!range) requests.whole++;
  else if (range.startsWith("bytes=-")) requests.suffix++;
  else requests.range++;
  const resp = await fetch(request);
  requests.status[resp.status] = (requests.status[resp.status] ?? 0) + 1;
  return resp;
};
const store = req.url
  ? new FetchStore(req.url, { useSuffixRequest: !!req.suffix, fetch: counted })
  : new FileSystemStore(req.store);
const results = [];
for (const r of req.reads) {
  const arr = await zarr.open.v3(zarr.root(store).resolve(r.array), { kind: "array" });
  const sel = r.start.map((s, i) => zarr.slice(s, r.stop[i]));
  const chunk = await zarr.get(arr, sel);
  const got = Array.from(chunk.data, (v) => (typeof v === "bigint" ? Number(v) : v));
  const exp = r.expected;
  const mismatches = [];
  if (got.length !== exp.length) {
    mismatches.push({ index: -1, got: got.length, want: exp.length, what: "element count" });
  } else {
    for (let i = 0; i < got.length && mismatches.length < 10; i++) {
      const g = got[i], w = exp[i];
      const same = w === null ? Number.isNaN(g) : g === w;
      if (!same) mismatches.push({ index: i, got: Number.isNaN(g) ? null : g, want: w });
    }
  }
  let nMismatch = 0;
  if (got.length === exp.length) {
    for (let i = 0; i < got.length; i++) {
      const g = got[i], w = exp[i];
      if (!(w === null ? Number.isNaN(g) : g === w)) nMismatch++;
    }
  }
  results.push({
    array: r.array, shape: chunk.shape, dtype: arr.dtype, n: got.length,
    n_mismatch: nMismatch, mismatches, first: got.slice(0, 8).map((v) => (Number.isNaN(v) ? null : v)),
  });
}
process.stdout.write(JSON.stringify({ zarrita: "0.7.5", results, requests: req.url ? requests : undefined }) + "\n");
