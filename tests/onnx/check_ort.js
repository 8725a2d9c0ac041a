// Runs an ONNX file exported by `fnn export` with onnxruntime (the npm package
// onnxruntime-node, CPU) on the first N images of an IDX file, and compares its probabilities
// with those `fnn predict --json --top K` printed for the same images: the largest absolute
// difference must be at most 1e-5 and every image must get the same most likely class.
// Usage: node check_ort.js MODEL.onnx IMAGES.idx[.gz] PREDICT.json N [BATCH]
// BATCH: the model's fixed batch size, if it has one (the images then go in batches of it).
// Exit status 0 when everything agrees, 1 on any disagreement or error.
'use strict';
const fs = require('fs');
const zlib = require('zlib');

const TOLERANCE = 1e-5;

function fail(msg) {
    console.error(`check_ort: ${msg}`);
    process.exit(1);
}

// The first n images of an IDX image file as pixels 0..255, (n, channels, rows, cols): three
// dimensions (n, rows, cols) are grey images, four (n, channels, rows, cols) channel planes.
function readIdx(path, n) {
    let buf = fs.readFileSync(path);
    if (buf[0] === 0x1f && buf[1] === 0x8b) buf = zlib.gunzipSync(buf);
    const magic = buf.length >= 16 ? buf.readUInt32BE(0) : 0;
    if (magic !== 0x803 && magic !== 0x804) fail(`${path}: not an IDX image file`);
    const head = magic === 0x804 ? 20 : 16;
    if (buf.length < head) fail(`${path}: truncated`);
    const count = buf.readUInt32BE(4);
    const channels = magic === 0x804 ? buf.readUInt32BE(8) : 1;
    const rows = buf.readUInt32BE(head - 8), cols = buf.readUInt32BE(head - 4);
    if (count < n) fail(`${path}: ${count} images, ${n} asked for`);
    const size = channels * rows * cols;
    if (buf.length < head + n * size) fail(`${path}: truncated`);
    const x = new Float32Array(n * size);
    for (let i = 0; i < n * size; i++) x[i] = buf[head + i];
    return { x, channels, rows, cols };
}

// fnn predict's probabilities (n, k) and classes (n) from its JSON document.
function readPredict(path, n) {
    const doc = JSON.parse(fs.readFileSync(path, 'utf8'));
    const images = doc.images;
    if (!Array.isArray(images) || images.length < n) fail(`${path}: fewer than ${n} images`);
    const k = images[0].top.length;
    const probs = new Float64Array(n * k), top1 = new Int32Array(n);
    for (let i = 0; i < n; i++) {
        const top = images[i].top;
        if (top.length !== k) fail(`${path}: image ${i} lists ${top.length} classes, not ${k}`);
        for (const t of top) probs[i * k + t.index] = t.probability;
        top1[i] = top[0].index;
    }
    return { probs, top1, k };
}

async function main() {
    const [modelPath, idxPath, predictPath, nText, batchText] = process.argv.slice(2);
    if (!nText) fail('usage: node check_ort.js MODEL.onnx IMAGES.idx[.gz] PREDICT.json N [BATCH]');
    const n = parseInt(nText, 10);
    let ort;
    try {
        ort = require('onnxruntime-node');
    } catch (e) {
        fail(`cannot load onnxruntime-node (${e.message}); install it with \`make ort\``);
    }
    const version = require('onnxruntime-node/package.json').version;
    const { x, channels, rows, cols } = readIdx(idxPath, n);
    const want = readPredict(predictPath, n);
    const k = want.k, size = channels * rows * cols;
    const batch = batchText ? parseInt(batchText, 10) : n;
    const session = await ort.InferenceSession.create(modelPath, { executionProviders: ['cpu'] });
    const got = new Float32Array(n * k);
    for (let start = 0; start < n; start += batch) {
        const chunk = new Float32Array(batch * size); // the last one padded with black images
        chunk.set(x.subarray(start * size, Math.min(n, start + batch) * size));
        const out = await session.run({ pixels: new ort.Tensor('float32', chunk, [batch, channels, rows, cols]) });
        const p = out.probabilities;
        if (!p || p.dims.length !== 2 || p.dims[1] !== k) fail(`output "probabilities" has dims ${p && p.dims}, expected (${batch}, ${k})`);
        got.set(p.data.subarray(0, (Math.min(n, start + batch) - start) * k), start * k);
    }
    let maxDiff = 0, worst = 0, disagree = 0, firstDisagree = -1;
    for (let i = 0; i < n; i++) {
        let best = 0;
        for (let j = 0; j < k; j++) {
            const d = Math.abs(got[i * k + j] - want.probs[i * k + j]);
            if (!(d <= maxDiff)) { maxDiff = d; worst = i; } // NaN counts as the worst
            if (got[i * k + j] > got[i * k + best]) best = j;
        }
        if (best !== want.top1[i]) {
            disagree++;
            if (firstDisagree < 0) firstDisagree = i;
        }
    }
    const line = `onnxruntime-node ${version}: ${n} images, max |p - fnn| = ${maxDiff.toExponential(2)} (image ${worst}), top-1 differs on ${disagree}`;
    if (!(maxDiff <= TOLERANCE) || disagree) fail(`${line}${firstDisagree >= 0 ? ` (first: image ${firstDisagree})` : ''}; tolerance ${TOLERANCE}`);
    console.log(line);
}

main().catch((e) => fail(e.stack || String(e)));
