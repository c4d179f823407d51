// run_ort.js: runs an ONNX model with onnxruntime-node on one input tensor
// file and writes the outputs as JSON, the reference for tests/cli/test_ort.sh.
//
//   NODE_PATH=$BUILD/ort/node_modules node tests/ort/run_ort.js MODEL INPUT.pb OUT.json
//
// INPUT.pb is one TensorProto (the format of ONNX test data and of
// `onnxtrain run --output-dir`). It binds by its name when that names a model
// input, else to the model's first input. OUT.json is
//   {"outputs": [{"name", "type", "dims", "data": [...]}]}
// in the session's output order; non-finite values are written as the strings
// "NaN", "Infinity" and "-Infinity". Exit status 1 with a message on error.
//
// The TensorProto parser reads what the test data uses: dims, data_type, name,
// raw_data and the typed fields float_data, int32_data, int64_data, double_data
// (packed or not). External data, strings and segments are refused. float16
// tensors come in as raw_data and their outputs are written as numbers.
'use strict';

const fs = require('fs');
const ort = require('onnxruntime-node');

// TensorProto.DataType -> [onnxruntime type, TypedArray, bytes per element]
const DTYPES = {
    1: ['float32', Float32Array, 4],
    2: ['uint8', Uint8Array, 1],
    3: ['int8', Int8Array, 1],
    4: ['uint16', Uint16Array, 2],
    5: ['int16', Int16Array, 2],
    6: ['int32', Int32Array, 4],
    7: ['int64', BigInt64Array, 8],
    9: ['bool', Uint8Array, 1],
    10: ['float16', Uint16Array, 2],
    11: ['float64', Float64Array, 8],
    12: ['uint32', Uint32Array, 4],
    13: ['uint64', BigUint64Array, 8],
};

function fail(msg) {
    process.stderr.write('run_ort.js: ' + msg + '\n');
    process.exit(1);
}

// A protobuf reader over a Buffer: varints as BigInt, lengths as numbers.
function Reader(buf, pos, end) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
}
Reader.prototype.varint = function () {
    let v = 0n, shift = 0n;
    for (;;) {
        if (this.pos >= this.end || shift > 63n) throw new Error('truncated varint');
        const b = this.buf[this.pos++];
        v |= BigInt(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
        shift += 7n;
    }
};
Reader.prototype.bytes = function () {
    const n = Number(this.varint());
    if (n > this.end - this.pos) throw new Error('length runs past the end');
    const start = this.pos;
    this.pos += n;
    return [start, this.pos];
};
Reader.prototype.skip = function (wt) {
    if (wt === 0) this.varint();
    else if (wt === 1) this.pos += 8;
    else if (wt === 5) this.pos += 4;
    else if (wt === 2) this.bytes();
    else throw new Error('unsupported wire type ' + wt);
    if (this.pos > this.end) throw new Error('truncated field');
};

// Reads repeated scalar field values, packed (wire type 2) or one at a time.
function readRepeated(r, wt, kind, out) {
    const one = (rr) => {
        if (kind === 'f32') { const v = rr.buf.readFloatLE(rr.pos); rr.pos += 4; return v; }
        if (kind === 'f64') { const v = rr.buf.readDoubleLE(rr.pos); rr.pos += 8; return v; }
        return BigInt.asIntN(64, rr.varint());
    };
    if (wt === 2) {
        const [s, e] = r.bytes();
        const rr = new Reader(r.buf, s, e);
        while (rr.pos < rr.end) out.push(one(rr));
    } else {
        out.push(one(r));
    }
}

function parseTensor(path) {
    const buf = fs.readFileSync(path);
    const r = new Reader(buf, 0, buf.length);
    const t = { dims: [], dataType: 0, name: '', raw: null, f32: [], i32: [], i64: [], f64: [] };
    while (r.pos < r.end) {
        const key = Number(r.varint());
        const field = key >>> 3, wt = key & 7;
        if (field === 1) {
            const d = [];
            readRepeated(r, wt, 'int', d);
            t.dims.push(...d.map(Number));
        } else if (field === 2 && wt === 0) {
            t.dataType = Number(r.varint());
        } else if (field === 4) {
            readRepeated(r, wt, 'f32', t.f32);
        } else if (field === 5) {
            readRepeated(r, wt, 'int', t.i32);
        } else if (field === 7) {
            readRepeated(r, wt, 'int', t.i64);
        } else if (field === 10) {
            readRepeated(r, wt, 'f64', t.f64);
        } else if (field === 8 && wt === 2) {
            const [s, e] = r.bytes();
            t.name = buf.toString('utf8', s, e);
        } else if (field === 9 && wt === 2) {
            const [s, e] = r.bytes();
            t.raw = buf.subarray(s, e);
        } else if (field === 14 && wt === 0 && r.varint() === 1n) {
            throw new Error('external data is not supported');
        } else if (field === 3 || field === 6) {
            throw new Error('segments and string data are not supported');
        } else if (field !== 14) {
            r.skip(wt);
        }
    }
    const info = DTYPES[t.dataType];
    if (!info) throw new Error('data type ' + t.dataType + ' is not supported');
    const [type, Ctor, size] = info;
    const numel = t.dims.reduce((a, b) => a * b, 1);
    let data;
    if (t.raw) {
        if (t.raw.length !== numel * size)
            throw new Error('raw_data holds ' + t.raw.length + ' bytes, expected ' + numel * size);
        const copy = new ArrayBuffer(t.raw.length); // aligned for the typed array
        new Uint8Array(copy).set(t.raw);
        data = new Ctor(copy);
    } else {
        const src = type === 'float32' ? t.f32 : type === 'float64' ? t.f64
            : type === 'int64' || type === 'uint64' ? t.i64 : t.i32;
        if (src.length !== numel)
            throw new Error('holds ' + src.length + ' values, expected ' + numel);
        data = Ctor.from(src, (v) => (typeof v === 'bigint' && !(Ctor === BigInt64Array ||
            Ctor === BigUint64Array) ? Number(v) : v));
    }
    if (type === 'bool') data = Uint8Array.from(data, (v) => (v ? 1 : 0));
    return { name: t.name, tensor: new ort.Tensor(type, data, t.dims) };
}

function jsonValue(v) {
    if (typeof v === 'bigint') return Number(v);
    if (typeof v === 'boolean') return v ? 1 : 0;
    if (Number.isNaN(v)) return 'NaN';
    if (v === Infinity) return 'Infinity';
    if (v === -Infinity) return '-Infinity';
    return v;
}

// IEEE binary16 bits (how float16 tensors hold their data) to a number.
function halfToFloat(h) {
    const e = (h >> 10) & 0x1f, m = h & 0x3ff, s = h & 0x8000 ? -1 : 1;
    if (e === 0) return s * m * Math.pow(2, -24);
    if (e === 31) return m ? NaN : s * Infinity;
    return s * (1 + m / 1024) * Math.pow(2, e - 15);
}

async function main() {
    const argv = process.argv.slice(2);
    if (argv.length !== 3) fail('usage: run_ort.js MODEL INPUT.pb OUT.json');
    const [modelPath, inputPath, outPath] = argv;
    let input;
    try {
        input = parseTensor(inputPath);
    } catch (e) {
        fail(inputPath + ': ' + e.message);
    }
    const session = await ort.InferenceSession.create(modelPath,
        { graphOptimizationLevel: 'all', intraOpNumThreads: 0 });
    const name = session.inputNames.includes(input.name) ? input.name : session.inputNames[0];
    const results = await session.run({ [name]: input.tensor });
    const outputs = session.outputNames.map((n) => {
        const t = results[n];
        const data = t.data instanceof Uint16Array ? Array.from(t.data, halfToFloat) : t.data;
        return { name: n, type: t.type, dims: Array.from(t.dims, Number),
            data: Array.from(data, jsonValue) };
    });
    const tmp = outPath + '.tmp';
    fs.writeFileSync(tmp, JSON.stringify({ outputs }));
    fs.renameSync(tmp, outPath);
}

if (require.main === module) {
    main().catch((e) => fail(e && e.message ? e.message : String(e)));
}
module.exports = { parseTensor, jsonValue };
