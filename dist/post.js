// bkcache post step (runs.post): cleanup after the main step, never a build.
// It runs the binary only when the main step started it (see main.js).
'use strict';

require('./main.js').post();
