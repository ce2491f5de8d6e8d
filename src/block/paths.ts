// File-name rules for backing files and external data files, as QEMU applies them.

/** "nbd:...", "json:{...}", "http://..." — a protocol prefix before any '/'. */
export function hasProtocol (name: string): boolean {
  const colon = name.indexOf(':')
  if (colon <= 0) return false
  const slash = name.indexOf('/')
  return slash < 0 || colon < slash
}

/**
 * A name stored in an image (backing file, data file) is relative to the
 * directory of the image that stores it; absolute names and protocol names
 * stand as they are.
 */
export function resolveRelative (baseImage: string, name: string): string {
  if (name.startsWith('/') || hasProtocol(name)) return name
  const slash = baseImage.lastIndexOf('/')
  return slash < 0 ? name : baseImage.slice(0, slash + 1) + name
}
