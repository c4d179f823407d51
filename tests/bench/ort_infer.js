// ort_infer.js: steady-state inference throughput of onnxruntime-node, for
// tests/bench/bench.py (`make bench`, workload "infer").
//
//   NODE_PATH=$BUILD/ort/node_modules node tests/bench/ort_infer.js MODEL \
//       [--batch N] [--threads N] [--warmup N] [--runs N] [--seed S]
//
// Loads MODEL with intraOpNumThreads = --threads (default 2),
// interOpNumThreads 1, sequential execution and all graph optimisations,
// binds the model's first input to seeded random floats in [-1, 1) of its
// declared shape with dim 0 set to --batch, runs --warmup untimed runs and
// --runs timed ones (process.hrtime around each session.run), and prints one
// JSON line:
//
//   {"tool": "onnxruntime-node", "version", "batch", "threads", "warmup", "runs",
//    "load_s", "median_s", "min_s", "max_s", "images_per_s" (batch / median_s),
//    "peak_rss_bytes" (VmHWM from /proc/self/status, else the largest
//    process.memoryUsage().rss seen), "checksum" (sum of output 0)}
//
// Exit status 1 with a message on stderr on error.
'use strict';

const fs = require('fs');
const ort = require('onnxruntime-node');

function fail(msg) {
    process.stderr.write('ort_infer.js: ' + msg + '\n');
    process.exit(1);
}

function parseArgs(argv) {
    const o = { model: null, batch: 1, threads: 2, warmup: 2, runs: 5, seed: 0 };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const key = a.startsWith('--') ? a.slice(2) : null;
        if (key !== null) {
            if (!(key in o) || key === 'model' || i + 1 >= argv.length) fail('bad option ' + a);
            const v = Number(argv[++i]);
            if (!Number.isInteger(v) || v < 0) fail('bad value for ' + a);
            o[key] = v;
        } else if (o.model === null) {
            o.model = a;
        } else {
            fail('more than one model');
        }
    }
    if (o.model === null) fail('usage: ort_infer.js MODEL [--batch N] [--threads N] ' +
        '[--warmup N] [--runs N] [--seed S]');
    if (o.batch < 1 || o.runs < 1) fail('--batch and --runs must be at least 1');
    return o;
}

// splitmix64 over BigInt: repeatable data for a seed.
function makeRandom(seed) {
    let s = BigInt.asUintN(64, BigInt(seed));
    const M = (1n << 64n) - 1n;
    return () => {
        s = (s + 0x9e3779b97f4a7c15n) & M;
        let z = s;
        z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
        z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
        z ^= z >> 31n;
        return Number(z >> 11n) * 2 ** -53 * 2 - 1;
    };
}

function vmHWM() {
    try {
        const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
        return m ? Number(m[1]) * 1024 : null;
    } catch (e) {
        return null;
    }
}

function median(xs) {
    const s = xs.slice().sort((a, b) => a - b);
    const n = s.length;
    return n % 2 ? s[(n - 1) / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

async function main() {
    const o = parseArgs(process.argv.slice(2));
    let maxRss = process.memoryUsage().rss;
    const t0 = process.hrtime.bigint();
    const session = await ort.InferenceSession.create(o.model, {
        graphOptimizationLevel: 'all',
        executionMode: 'sequential',
        intraOpNumThreads: o.threads,
        interOpNumThreads: 1,
    });
    const loadS = Number(process.hrtime.bigint() - t0) * 1e-9;

    const name = session.inputNames[0];
    let dims = null;
    const meta = session.inputMetadata && session.inputMetadata[0];
    if (meta && Array.isArray(meta.shape)) dims = meta.shape.slice();
    if (!dims) dims = [o.batch, 3, 224, 224]; // no metadata: the ResNet-18 input
    dims = dims.map((d, i) => (i === 0 ? o.batch : d));
    if (dims.some((d) => typeof d !== 'number' || d < 0))
        fail(o.model + ': input ' + name + ' has a dynamic dim other than dim 0');
    const numel = dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(numel);
    const rnd = makeRandom(o.seed);
    for (let i = 0; i < numel; i++) data[i] = rnd();
    const feeds = { [name]: new ort.Tensor('float32', data, dims) };

    const times = [];
    let results = null;
    for (let i = 0; i < o.warmup + o.runs; i++) {
        const s = process.hrtime.bigint();
        results = await session.run(feeds);
        const dt = Number(process.hrtime.bigint() - s) * 1e-9;
        if (i >= o.warmup) times.push(dt);
        maxRss = Math.max(maxRss, process.memoryUsage().rss);
    }
    let checksum = 0;
    const out = results[session.outputNames[0]];
    for (let i = 0; i < out.data.length; i++) checksum += Number(out.data[i]);

    const med = median(times);
    const hwm = vmHWM();
    const version = require('onnxruntime-node/package.json').version;
    process.stdout.write(JSON.stringify({
        tool: 'onnxruntime-node', version, batch: o.batch, threads: o.threads,
        warmup: o.warmup, runs: o.runs, load_s: loadS, median_s: med,
        min_s: Math.min(...times), max_s: Math.max(...times), images_per_s: o.batch / med,
        peak_rss_bytes: hwm !== null ? Math.max(hwm, maxRss) : maxRss, checksum,
    }) + '\n');
    if (session.release) await session.release();
}

main().catch((e) => fail(e && e.message ? e.message : String(e)));
