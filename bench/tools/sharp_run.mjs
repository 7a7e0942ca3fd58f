// sharp's side of the benchmark: node sharp_run.mjs <job> <input> <iters> <out_dir>
// One libvips thread (sharp.concurrency(1)), no operation cache. Several outputs from one original
// use clone() of one input pipeline, as sharp's documentation recommends.
import fs from "node:fs";
import path from "node:path";
import sharp from "sharp";

sharp.concurrency(1);
sharp.cache(false);

const [job, input, itersArg, outDir] = process.argv.slice(2);
const iters = Number(itersArg);
const buf = fs.readFileSync(input);

function outputsFor(job) {
  if (job === "thumbs") return [150, 300, 600].map((e) => [String(e), e, "jpeg"]);
  if (job === "variants") return [1280, 2048].flatMap((e) => [[String(e), e, "jpeg"], [String(e), e, "webp"]]);
  // `avif:<edge>@<quality>`: AVIF at another quality than sharp's default (matched-quality rows).
  const [spec, quality] = job.split("@");
  const [fmt, edge] = spec.split(":");
  return [[edge, Number(edge), fmt, quality ? Number(quality) : undefined]];
}

const outs = outputsFor(job);
// sharp's AVIF default (quality 50, effort 4, 4:2:0); Safelight's AVIF rows state theirs.
const AVIF_QUALITY = Number(process.env.SHARP_AVIF_QUALITY || 50);

async function once() {
  const base = sharp(buf).rotate();
  return Promise.all(
    outs.map(([name, edge, fmt, quality]) => {
      const p = base.clone().resize(edge, edge, { fit: "inside", withoutEnlargement: true });
      const enc =
        fmt === "webp"
          ? p.webp({ quality: 80 })
          : fmt === "avif"
            ? p.avif({ quality: quality ?? AVIF_QUALITY })
            : p.jpeg({ quality: 80 });
      return enc.toBuffer({ resolveWithObject: true }).then((r) => [name, fmt, r]);
    }),
  );
}

let last = await once();
const ms = [];
for (let i = 0; i < iters; i++) {
  const t = process.hrtime.bigint();
  last = await once();
  ms.push(Number(process.hrtime.bigint() - t) / 1e6);
}
fs.mkdirSync(outDir, { recursive: true });
const files = last.map(([name, fmt, r]) => {
  const ext = { webp: "webp", avif: "avif" }[fmt] || "jpg";
  const p = path.join(outDir, `${name}.${ext}`);
  fs.writeFileSync(p, r.data);
  return { path: p, bytes: r.data.length, width: r.info.width, height: r.info.height };
});
console.log(JSON.stringify({ ms, outputs: files }));
