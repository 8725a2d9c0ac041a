// Inference timing of onnxruntime (onnxruntime-node, CPU) running a file `fnn export` wrote, for
// bench/onnx.sh: ITERS calls of session.run on BATCH Fashion-MNIST test images (pixels 0..255, as
// the exported graph takes them) after a warm-up, with THREADS intra-op threads; prints one JSON
// line like bench/predict_bench.c's.
// Usage: node onnx_ort.js MODEL.onnx DATA_DIR BATCH ITERS THREADS (NODE_PATH finds the package)
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const ort = require('onnxruntime-node');

const WARMUP = 5;

async function main() {
    const [model, dataDir, batchText, itersText, threadsText] = process.argv.slice(2);
    const batch = parseInt(batchText, 10), iters = parseInt(itersText, 10);
    const threads = parseInt(threadsText, 10);
    if (!(batch > 0 && iters > 0 && threads >= 0)) {
        console.error('usage: node onnx_ort.js MODEL.onnx DATA_DIR BATCH ITERS THREADS');
        process.exit(2);
    }
    let file = path.join(dataDir, 't10k-images-idx3-ubyte.gz');
    if (!fs.existsSync(file)) file = path.join(dataDir, 't10k-images-idx3-ubyte');
    let buf = fs.readFileSync(file);
    if (buf[0] === 0x1f && buf[1] === 0x8b) buf = zlib.gunzipSync(buf);
    const n = buf.readUInt32BE(4), rows = buf.readUInt32BE(8), cols = buf.readUInt32BE(12);
    const size = rows * cols, x = new Float32Array(batch * size);
    for (let i = 0; i < batch; i++) // images repeat when the file has fewer than batch
        for (let p = 0; p < size; p++) x[i * size + p] = buf[16 + (i % n) * size + p];
    const session = await ort.InferenceSession.create(model, {
        executionProviders: ['cpu'],
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
    });
    const feeds = { pixels: new ort.Tensor('float32', x, [batch, 1, rows, cols]) };
    const t = [];
    for (let it = -WARMUP; it < iters; it++) {
        const t0 = process.hrtime.bigint();
        await session.run(feeds);
        if (it >= 0) t.push(Number(process.hrtime.bigint() - t0) / 1e3);
    }
    t.sort((a, b) => a - b);
    const f = (v) => Number(v.toFixed(1));
    console.log(JSON.stringify({
        tool: 'onnxruntime', version: require('onnxruntime-node/package.json').version, batch,
        threads, iters, median_us: f(t[iters >> 1]), p10_us: f(t[Math.floor(iters / 10)]),
        p90_us: f(t[Math.floor(iters * 9 / 10)]),
    }));
}

main().catch((e) => { console.error(`onnx_ort: ${e.stack || e}`); process.exit(1); });
