// bkcache action entry point (runs.using: node24, main; dist/post.js is post).
//
// The runner hands ACTIONS_RUNTIME_TOKEN, ACTIONS_RESULTS_URL and
// ACTIONS_CACHE_SERVICE_V2 only to JavaScript and container actions, so the Go
// binary is started from here. This file has no dependencies: it picks
// dist/bkcache-<os>-<arch>, passes the environment and stdio through, and
// hands the child's exit status (or signal) back to the runner.
'use strict';

const childProcess = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const GOOS = { linux: 'linux', darwin: 'darwin', win32: 'windows' };
const GOARCH = { x64: 'amd64', arm64: 'arm64' };
const TARGETS = ['linux-amd64', 'linux-arm64', 'darwin-amd64', 'darwin-arm64', 'windows-amd64'];

// State the main step saves for the post step (dist/post.js):
// bkcache_js_main first thing, bkcache_main_ran once the binary has started.
// The post step runs the binary only after the latter, so a main step that
// failed before starting the binary leaves nothing to clean up.
const JS_MAIN_STATE = 'bkcache_js_main';
const MAIN_RAN_STATE = 'bkcache_main_ran';

// Workflow command data escaping, as @actions/core does it.
function escapeData(s) {
  return String(s).replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

function command(name, message) {
  process.stdout.write(`::${name}::${escapeData(message)}${os.EOL}`);
}

// binaryPath returns dist/bkcache-<os>-<arch>[.exe] for this runner, or
// throws naming the unsupported platform.
function binaryPath(distDir, platform, arch) {
  const target = `${GOOS[platform] || platform}-${GOARCH[arch] || arch}`;
  if (!TARGETS.includes(target)) {
    throw new Error(`bkcache has no binary for ${platform}/${arch}; supported: ${TARGETS.join(', ')}`);
  }
  const ext = platform === 'win32' ? '.exe' : '';
  return path.join(distDir, `bkcache-${target}${ext}`);
}

function onPath(exe) {
  const names = process.platform === 'win32' ? [`${exe}.exe`, `${exe}.cmd`] : [exe];
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    for (const name of names) {
      if (dir && fs.existsSync(path.join(dir, name))) return true;
    }
  }
  return false;
}

// ensureBinary builds the binary from source when it is missing, which is
// the case for a checkout of a branch: only release commits carry binaries.
function ensureBinary(bin, root) {
  if (fs.existsSync(bin)) {
    if (process.platform !== 'win32') {
      try {
        fs.accessSync(bin, fs.constants.X_OK);
      } catch {
        fs.chmodSync(bin, 0o755); // e.g. restored from an artifact without modes
      }
    }
    return true;
  }
  const rel = path.relative(root, bin);
  if (!onPath('go')) {
    command('error', `bkcache: ${rel} is missing. Release tags (such as @v1) ship prebuilt binaries; ` +
      'a branch such as main has none and needs Go to build from source: add actions/setup-go ' +
      'before this step, or use a release tag.');
    return false;
  }
  command('notice', `bkcache: ${rel} is missing (not a release commit); building it from source with Go.`);
  const res = childProcess.spawnSync('go', ['build', '-trimpath', '-o', bin, '.'], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, CGO_ENABLED: '0' },
  });
  if (res.error || res.status !== 0) {
    const why = res.error ? res.error.message : `exit status ${res.status}`;
    command('error', `bkcache: building ${rel} from source failed (${why}).`);
    return false;
  }
  return true;
}

// saveState appends name=value to GITHUB_STATE with a random heredoc
// delimiter, as @actions/core does.
function saveState(name, value) {
  const file = process.env.GITHUB_STATE;
  if (!file) return;
  const delim = `ghadelimiter_${crypto.randomUUID()}`;
  fs.appendFileSync(file, `${name}<<${delim}${os.EOL}${value}${os.EOL}${delim}${os.EOL}`);
}

// exitLike ends this process the way the child ended: same exit code, or the
// same signal re-raised (128+n if the signal does not kill us).
function exitLike(code, signal) {
  if (signal) {
    process.removeAllListeners('SIGINT');
    process.removeAllListeners('SIGTERM');
    const n = os.constants.signals[signal] || 1;
    try {
      process.kill(process.pid, signal);
    } catch {
      // fall through to the exit code
    }
    setTimeout(() => process.exit(128 + n), 100);
    return;
  }
  process.exit(code === null ? 1 : code);
}

// run starts bin with args; onSpawn runs once the process exists.
function run(bin, args, onSpawn) {
  // Listen before spawning: a signal that arrives while the child starts is
  // delivered to it as soon as it exists.
  let child = null;
  let pending = null;
  const forward = (sig) => {
    if (!child) {
      pending = sig;
      return;
    }
    try {
      child.kill(sig);
    } catch {
      // child already gone
    }
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  child = childProcess.spawn(bin, args, { stdio: 'inherit', env: process.env });
  child.on('spawn', () => {
    if (onSpawn) onSpawn();
  });
  child.on('error', (err) => {
    command('error', `bkcache: starting ${path.basename(bin)} failed: ${err.message}`);
    process.exit(1);
  });
  child.on('exit', exitLike);
  if (pending) forward(pending);
}

// main is the main step: find (or build) the binary and run it.
function main() {
  if (process.env[`STATE_${JS_MAIN_STATE}`] !== undefined) {
    // An action.yml that names main.js as its post entry point.
    post();
    return;
  }
  saveState(JS_MAIN_STATE, 'true');
  const root = path.resolve(__dirname, '..');
  let bin;
  try {
    bin = binaryPath(__dirname, process.platform, process.arch);
  } catch (err) {
    command('error', err.message);
    process.exit(1);
  }
  if (!ensureBinary(bin, root)) process.exit(1);
  run(bin, [], () => saveState(MAIN_RAN_STATE, 'true'));
}

// post is the post step (dist/post.js): the binary's cleanup, and only when
// the main step started the binary. It never builds anything: not the
// binary from source, and `bkcache post` runs no build.
function post() {
  if (process.env[`STATE_${MAIN_RAN_STATE}`] !== 'true') {
    process.exit(0); // the main step failed before starting the binary
  }
  let bin;
  try {
    bin = binaryPath(__dirname, process.platform, process.arch);
  } catch {
    process.exit(0);
  }
  if (!fs.existsSync(bin)) process.exit(0);
  run(bin, ['post']);
}

if (require.main === module) {
  main();
}

module.exports = { binaryPath, escapeData, post };
