// create with backing files, external data files and legacy AES encryption:
// the same files as qemu-img's.
import t from 'tap'
import fs from 'node:fs'
import { qemuImgOk } from './helpers/run.js'
import { createBoth, sameFile } from './helpers/create-compare.js'

t.test('backing files, data files and legacy encryption', async t => {
  const root = t.testdir()
  const base = (dir: string) => {
    qemuImgOk(['create', '-q', '-f', 'qcow2', `${dir}/base.qcow2`, '5M'])
    qemuImgOk(['create', '-q', '-f', 'raw', `${dir}/base.raw`, '3M'])
    fs.mkdirSync(`${dir}/sub`)
  }
  const cases: string[][] = [
    ['-b', 'base.qcow2', '-F', 'qcow2', 'img.qcow2'],
    ['-b', 'base.qcow2', '-F', 'raw', 'img.qcow2', '1M'],
    ['-b', 'base.raw', '-F', 'raw', '-o', 'cluster_size=4k', 'img.qcow2'],
    ['-o', 'compat=0.10', '-b', 'base.qcow2', '-F', 'qcow2', 'img.qcow2'],
    ['-o', 'cluster_size=512', '-b', 'base.qcow2', '-F', 'qcow2', 'img.qcow2'],
    ['-o', 'backing_file=base.qcow2,backing_fmt=qcow2,size=2M', 'img.qcow2'],
    ['-u', '-b', 'nonexistent.qcow2', '-F', 'qcow2', 'img.qcow2', '1M'],
    ['-o', 'preallocation=full,extended_l2=on', '-b', 'base.qcow2', '-F', 'qcow2', 'img.qcow2', '1M'],
    ['-o', 'data_file=img.data', 'img.qcow2', '1M'],
    ['-o', 'data_file=img.data', 'sub/img.qcow2', '1M'],
    ['-o', 'data_file=img.data,data_file_raw=on,preallocation=metadata', 'img.qcow2', '1M'],
    ['-o', 'data_file=img.data,preallocation=full', 'img.qcow2', '1M'],
    ['-o', 'data_file=img.data,data_file_raw=on,preallocation=falloc', 'img.qcow2', '3M'],
    ['--object', 'secret,id=s0,data=pw', '-o', 'encryption=on,encrypt.key-secret=s0', 'img.qcow2', '1M'],
    ['--object', 'secret,id=s0,data=pw', '-o', 'encrypt.format=aes,encrypt.key-secret=s0,compat=0.10', 'img.qcow2', '1M'],
  ]
  for (const args of cases) {
    const c = await createBoth(t, root, ['-f', 'qcow2', ...args], base)
    // (checking needs the key of an encrypted image, or the backing file -u did not need)
    sameFile(t, c, 'img.qcow2', { check: args.includes('--object') || args.includes('-u') ? undefined : [] })
    sameFile(t, c, 'img.data')
    sameFile(t, c, 'sub/img.qcow2')
  }
})

