// Drives the official @actions/cache client against the emulator:
// save, restore by exact key, restore by a restore-keys prefix, and a
// second save of the same key (which the service must refuse).
// Configuration comes from the runner's environment (ACTIONS_RESULTS_URL
// or ACTIONS_CACHE_URL, ACTIONS_RUNTIME_TOKEN, RUNNER_TEMP) plus
// FIDELITY_DIR (a scratch directory) and FIDELITY_KEY (a unique key).
// The last stdout line is "RESULT <json>" for the Go test to check.
import * as cache from '@actions/cache';
import fs from 'node:fs';
import path from 'node:path';

const dir = process.env.FIDELITY_DIR;
const key = process.env.FIDELITY_KEY;
const data = path.join(dir, 'data');
const file = path.join(data, 'payload.txt');
const content = `payload for ${key}\n`.repeat(1000);

fs.mkdirSync(data, { recursive: true });
fs.writeFileSync(file, content);

const result = {};
result.savedId = await cache.saveCache([data], key);
result.resavedId = await cache.saveCache([data], key);

fs.rmSync(data, { recursive: true, force: true });
result.exactKey = await cache.restoreCache([data], key) ?? null;
result.exactOK = fs.existsSync(file) && fs.readFileSync(file, 'utf8') === content;

fs.rmSync(data, { recursive: true, force: true });
const prefix = key.slice(0, key.lastIndexOf('-') + 1);
result.prefixKey = await cache.restoreCache([data], `${prefix}does-not-exist`, ['nope-', prefix]) ?? null;
result.prefixOK = fs.existsSync(file) && fs.readFileSync(file, 'utf8') === content;

result.missKey = await cache.restoreCache([data], 'absent-key', ['absent-']) ?? null;

console.log('RESULT ' + JSON.stringify(result));
