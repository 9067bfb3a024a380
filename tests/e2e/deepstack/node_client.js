// Runs node-red-contrib-deepstack's request module (0.3.0, the code its
// object detection and custom model nodes call) against a yolod. Prints
// {"IMAGE": [predictions]} as JSON; a refused request prints {"error": "..."}.
//
// usage: node node_client.js PACKAGE_DIR PORT API_KEY CUSTOM_MODEL MIN_CONFIDENCE IMAGE...
// (an empty CUSTOM_MODEL means /v1/vision/detection)
'use strict';
const fs = require('fs');
const path = require('path');

async function main() {
    const [packageDir, port, apiKey, customModel, minConfidence, ...images] = process.argv.slice(2);
    const deepstack = require(path.resolve(packageDir, 'deepstack-integration.js'));
    // The fields of its deepstack-server config node.
    const server = {
        proto: 'http',
        host: '127.0.0.1',
        port: Number(port),
        version: 'v1',
        credentials: { apiKey, adminKey: 'not-used-by-yolod' },
        rejectUnauthorized: true,
    };
    const out = {};
    for (const image of images) {
        const bytes = fs.readFileSync(image);
        let result;
        try {
            result = customModel
                ? await deepstack.customModel(bytes, server, Number(minConfidence), customModel)
                : await deepstack.objectDetection(bytes, server, Number(minConfidence));
        } catch (e) {
            console.log(JSON.stringify({ error: String(e) }));
            return;
        }
        if (!result.success) throw new Error('success is false: ' + JSON.stringify(result));
        // What its nodes draw from.
        const outlines = deepstack.getOutlines(result.predictions);
        if (outlines.some(o => !(o.width >= 0 && o.height >= 0))) throw new Error('bad outline');
        out[path.basename(image)] = result.predictions;
    }
    console.log(JSON.stringify(out));
}

main().catch(e => { console.error(e); process.exit(1); });
