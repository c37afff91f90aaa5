// Saves or restores one directory with the official @actions/cache
// client, as actions/cache does around buildkit-cache-dance:
//
//	node actions-cache-dir.mjs save|restore <dir> <key>
//
// The runner's environment configures it (ACTIONS_RESULTS_URL,
// ACTIONS_RUNTIME_TOKEN, ACTIONS_CACHE_SERVICE_V2, RUNNER_TEMP). A restore
// that finds nothing exits 2.
import * as cache from '@actions/cache';

const [op, dir, key] = process.argv.slice(2);
if (op === 'save') {
  // saveCache reports most failures as warnings and returns -1.
  if (await cache.saveCache([dir], key) === -1) {
    console.error(`saving ${key} failed`);
    process.exit(1);
  }
} else if (op === 'restore') {
  if (await cache.restoreCache([dir], key) === undefined) {
    console.error(`no cache entry for ${key}`);
    process.exit(2);
  }
} else {
  console.error('usage: actions-cache-dir.mjs save|restore <dir> <key>');
  process.exit(64);
}
