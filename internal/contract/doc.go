// Package contract holds the action's contract test: it builds bkcache,
// puts it next to dist/main.js and runs `node dist/main.js` the way the
// GitHub Actions runner does, then reads the runner's files as the runner
// reads them. It has no code of its own.
package contract
