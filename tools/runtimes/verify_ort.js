// verify_ort.js: runs a model in onnxruntime-node for `onnxtrain verify`.
//
//   node verify_ort.js MODEL OUT.json NAME=INPUT.npy ...
//
// Inputs are .npy files (little-endian float32, float64, int64, int32, uint8,
// int8 or bool, C order) bound by input name. OUT.json gets
//   {"outputs": [{"name", "dims", "data": [...]}]}   in the session's order, or
//   {"error": "..."} when the model does not load or run (exit status 0).
// Exit status 3: onnxruntime-node is not installed (NODE_PATH); 1: bad usage.
'use strict';

const fs = require('fs');
let ort;
try {
    ort = require('onnxruntime-node');
} catch (e) {
    process.stderr.write('onnxruntime-node is not installed (NODE_PATH)\n');
    process.exit(3);
}

const NPY = {
    '<f4': ['float32', Float32Array], '<f8': ['float64', Float64Array],
    '<i8': ['int64', BigInt64Array], '<i4': ['int32', Int32Array],
    '|u1': ['uint8', Uint8Array], '|i1': ['int8', Int8Array], '|b1': ['bool', Uint8Array],
};

function readNpy(path) {
    const buf = fs.readFileSync(path);
    if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(path + ': not a .npy file');
    const major = buf[6];
    const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
    const start = (major === 1 ? 10 : 12) + hlen;
    const header = buf.toString('latin1', major === 1 ? 10 : 12, start);
    const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
    const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map((s) => s.trim())
        .filter((s) => s.length).map(Number);
    if (/'fortran_order':\s*True/.test(header)) throw new Error(path + ': Fortran order');
    const info = NPY[descr];
    if (!info) throw new Error(path + ': dtype ' + descr + ' is not supported');
    const copy = new ArrayBuffer(buf.length - start);
    new Uint8Array(copy).set(buf.subarray(start));
    return new ort.Tensor(info[0], new info[1](copy), shape);
}

function value(v) {
    if (typeof v === 'bigint') return Number(v);
    if (typeof v === 'boolean') return v ? 1 : 0;
    if (Number.isNaN(v)) return 'NaN';
    if (v === Infinity) return 'Infinity';
    if (v === -Infinity) return '-Infinity';
    return v;
}

async function main() {
    const [model, out, ...specs] = process.argv.slice(2);
    if (!model || !out) {
        process.stderr.write('usage: verify_ort.js MODEL OUT.json NAME=INPUT.npy ...\n');
        process.exit(1);
    }
    let doc;
    try {
        const session = await ort.InferenceSession.create(model,
            { graphOptimizationLevel: 'all', intraOpNumThreads: 1 });
        const feeds = {};
        for (const s of specs) {
            const k = s.indexOf('=');
            feeds[s.slice(0, k)] = readNpy(s.slice(k + 1));
        }
        const results = await session.run(feeds);
        doc = { outputs: session.outputNames.map((n) => ({
            name: n, dims: Array.from(results[n].dims, Number),
            data: Array.from(results[n].data, value) })) };
    } catch (e) {
        doc = { error: String(e && e.message ? e.message : e).split('\n')[0] };
    }
    fs.writeFileSync(out, JSON.stringify(doc));
}

main();
