// run_ort_batch.js: runs many models with onnxruntime-node in one process.
//
//   NODE_PATH=$BUILD/ort/node_modules node tests/ort/run_ort_batch.js JOBS.json
//
// JOBS.json is a list of {"model": PATH, "inputs": [INPUT.pb, ...], "out": OUT.json};
// inputs bind by their tensor names, else by position. Each OUT.json gets
// {"outputs": [...]} as run_ort.js writes it, or {"error": MESSAGE} when the
// model does not load or run. Exit status 1 only when JOBS.json is unreadable.
'use strict';

const fs = require('fs');
const ort = require('onnxruntime-node');
const { parseTensor, jsonValue } = require('./run_ort.js');

async function one(job) {
    const session = await ort.InferenceSession.create(job.model,
        { graphOptimizationLevel: 'all', intraOpNumThreads: 1 });
    const feeds = {};
    job.inputs.forEach((p, i) => {
        const t = parseTensor(p);
        const name = session.inputNames.includes(t.name) ? t.name : session.inputNames[i];
        feeds[name] = t.tensor;
    });
    const results = await session.run(feeds);
    return session.outputNames.map((n) => {
        const t = results[n];
        return { name: n, type: t.type, dims: Array.from(t.dims, Number),
            data: Array.from(t.data, jsonValue) };
    });
}

async function main() {
    const jobs = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
    for (const job of jobs) {
        let doc;
        try {
            doc = { outputs: await one(job) };
        } catch (e) {
            doc = { error: String(e && e.message ? e.message : e).split('\n')[0] };
        }
        fs.writeFileSync(job.out, JSON.stringify(doc));
    }
}

main().catch((e) => {
    process.stderr.write('run_ort_batch.js: ' + (e && e.message ? e.message : e) + '\n');
    process.exit(1);
});
