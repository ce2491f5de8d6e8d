// The bridge to the encryption layer for qcow2 create and measure: the LUKS
// header and key slots are built by src/crypto/qcow2-setup.ts, loaded only
// when an image is encrypted.

export async function luksSetup (): Promise<typeof import('../../crypto/qcow2-setup.js')> {
  return import('../../crypto/qcow2-setup.js')
}

