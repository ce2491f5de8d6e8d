#!/usr/bin/env node
// The same CLI under qemu-img's name, so scripts written for qemu-img run unchanged.
require('./launch.cjs').launch('qemu-img')
