#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node --interrupt-budget=1000000
// qimg. (CommonJS, as bin/package.json says: a CommonJS entry starts a few
// milliseconds sooner than an ES module one.)
require('./launch.cjs').launch('qimg')
