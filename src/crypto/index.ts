// qimg's disk encryption: LUKS1 and qcow2's legacy AES, interoperable with
// qemu 7.2. Import lazily (only for encrypted images) to keep start-up fast.
//
// Reading and writing encrypted qcow2 (the qcow2 driver does this):
//   openQcow2Crypto(header, store, ctx) -> ClusterCrypto
//     ctx.options['encrypt.key-secret'] names a secret in ctx.secrets;
//     ctx.noIO (info) opens without it. crypto.decrypt/encrypt(buf, byteOffset)
//     work on whole 512-byte sectors; byteOffset is the host offset in the
//     data file for LUKS (crypto.physicalIV) and the guest offset for AES.
//   crypto.info() -> the `encrypt` object of qcow2's format-specific info.
//   checkUnencryptedOptions(options) -> qemu's refusal of encrypt.format on a plain image.
//
// Creating encrypted qcow2 (qemu-img create -f qcow2 -o encrypt.*|encryption=on):
//   prepareQcow2Encryption(options, secrets) -> null | { cryptMethod, luksArea?, crypto }
//     applies qemu's option rules and messages; for LUKS, store luksArea in
//     whole clusters and point the crypto header extension at it
//     ({ offset, length: luksArea.length }).
//   qcow2EncryptionAreaBytes(options, secrets) -> bytes of that area, for `measure`
//     (same checks, no key derivation); luksAreaBytes(opts) for the luks format.
//
// Amending (qemu-img amend -o encrypt.state=...,keyslot=...,new-secret=...,old-secret=...):
//   amendQcow2Encryption(crypto | null, valuesWithoutPrefix, secrets, force)
//   (the luks format does the same through LuksImage.amend)
//
// Lower level, for other containers of LUKS volumes:
//   createLuksHeader(password, { cipherAlg, cipherMode, ivgenAlg, ivgenHashAlg, hashAlg, iterTime })
//     -> { area, header, spec, masterKey, cipher }  (qemu's defaults and layout)
//   parseLuksCreateOptions(values, prefix) -> LuksCreateOptions (qemu's number/enum messages)
//   LuksVolume.open(io) / .unlock(password) / .info(); amendLuks(volume, options, force)
//   SectorCipher(spec, key).encrypt/decrypt(buf, firstSector)
//   legacyAesCipher(password): qcow2 AES (key = first 16 bytes of the secret)
// Ciphers: aes-128/192/256 (OpenSSL), serpent-* and twofish-* (src/crypto/ciphers);
// cast5-128 is refused when unlocking (info still describes such volumes).
export { openQcow2Crypto, checkUnencryptedOptions, amendQcow2Encryption, Qcow2Crypto } from './qcow2-crypto.js'
export { prepareQcow2Encryption, qcow2EncryptionAreaBytes, QCOW2_ENCRYPT_AMEND_OPTIONS, type Qcow2EncryptionSetup } from './qcow2-setup.js'
export { createLuksHeader, parseLuksCreateOptions, luksLayout, luksAreaBytes, LUKS_ALGORITHM_OPTIONS, DEFAULT_ITER_TIME, type LuksCreateOptions, type LuksCreated } from './luks/create.js'
export { amendLuks, parseLuksAmendOptions, LUKS_AMEND_OPTIONS, type LuksAmendOptions } from './luks/amend.js'
export { LuksVolume, regionIO, type LuksIO } from './luks/volume.js'
export { SectorCipher, SECTOR_SIZE, type SectorCipherSpec } from './sector-cipher.js'
export { legacyAesCipher, legacyAesKey } from './aes-legacy.js'
