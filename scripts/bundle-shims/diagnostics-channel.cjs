// What `node:diagnostics_channel` is inside the bundle (scripts/bundle.mjs
// aliases it here). Only lru-cache asks for it: as it loads, it makes a
// channel and a tracing channel for metrics tools, and then publishes to them
// only when they have subscribers. Nothing in a qimg process subscribes, and
// loading the real module (with its dependencies) cost ~0.5 ms of every
// command's start. These channels never have subscribers; should anything
// still trace through one, the traced function just runs.
'use strict'
exports.channel = () => ({ hasSubscribers: false, publish () {} })
exports.tracingChannel = () => ({
  hasSubscribers: false,
  tracePromise: (fn, context, thisArg, ...args) => Reflect.apply(fn, thisArg, args),
  traceSync: (fn, context, thisArg, ...args) => Reflect.apply(fn, thisArg, args),
})
