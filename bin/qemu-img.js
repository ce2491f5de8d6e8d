#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node --interrupt-budget=1000000
// The same CLI under qemu-img's name, so scripts written for qemu-img run unchanged.
require('./launch.cjs').launch('qemu-img')
