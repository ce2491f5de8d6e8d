#!/usr/bin/env node
// The same CLI under qemu-img's name, so scripts written for qemu-img run unchanged.
import { main } from '../dist/src/cli/main.js'

await main(process.argv.slice(2), 'qemu-img')
