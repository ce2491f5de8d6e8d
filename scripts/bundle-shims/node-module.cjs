// What `node:module` is inside the bundle (scripts/bundle.mjs aliases it
// here). qimg uses it only for createRequire, to load a few modules lazily
// (node:zlib, node:crypto, zstd-napi, fuse-native). In the bundle the
// launcher's own require does that: it resolves packages from the same
// node_modules, and loading the real node:module at every start-up (with the
// ES module loader it brings) cost ~0.3 ms.
'use strict'
exports.createRequire = () => require
